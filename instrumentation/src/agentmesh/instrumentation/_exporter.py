"""A span exporter that never raises, stops at once when shut down, and tracks its outcome.

The OTLP/gRPC exporter retries transient failures with exponential backoff until its timeout
and logs a warning when shut down twice; this wrapper makes shutdown idempotent, turns exports
after shutdown into immediate failures (no retry loop at exit), and records whether the last
export succeeded. It builds the real exporter on the first export, on the exporter thread, so
importing gRPC costs the application's start-up nothing (and nothing at all when the collector
turns out to be unreachable before anything was exported). Each batch goes out with its start
markers first (:func:`~agentmesh.instrumentation._markers.markers_first`), so the collector
meets a step's marker before the calls made in the step. :func:`collector_reachable` probes
a TCP connection to the endpoint, so exit does not wait for an export that cannot succeed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentmesh.core.log import get_logger
from agentmesh.instrumentation._markers import markers_first

__all__ = ["GuardedSpanExporter", "collector_reachable", "endpoint_address"]

_log = get_logger(__name__)

_DEFAULT_OTLP_GRPC_PORT = 4317


class GuardedSpanExporter(SpanExporter):
    """Wraps an exporter: lazy, fail-open, idempotent shutdown, remembers the last outcome.

    Args:
        factory: Builds the real exporter (OTLP/gRPC) when the first batch is exported.
    """

    def __init__(self, factory: Callable[[], SpanExporter]) -> None:
        self._factory = factory
        self._inner: SpanExporter | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._last_export_ok: bool | None = None
        self._handed_over = 0

    @property
    def handed_over(self) -> int:
        """Number of spans passed to :meth:`export` so far (delivered or not)."""
        return self._handed_over

    @property
    def prepared(self) -> bool:
        """Whether the real exporter has been built."""
        return self._inner is not None

    def prepare(self) -> None:
        """Build the real exporter now (fail-open): done before the interpreter shuts down.

        Importing the OTLP exporter creates a resource, which runs detectors on a thread pool;
        once Python has begun to exit, thread pools refuse work, so an exporter first built by
        the final export would fail and the run's spans would be lost.
        """
        try:
            self._exporter()
        except Exception as exc:  # noqa: BLE001 - never raise into the app
            _log.warning("agentmesh.exporter_failed", error_type=type(exc).__name__, error=str(exc))

    def _exporter(self) -> SpanExporter | None:
        with self._lock:
            if self._inner is None and not self._closed.is_set():
                self._inner = self._factory()
            return self._inner

    @property
    def last_export_ok(self) -> bool | None:
        """Whether the last export succeeded; ``None`` before the first one."""
        return self._last_export_ok

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closed.is_set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export a batch; after shutdown, fail at once.

        Args:
            spans: The finished spans.

        Returns:
            The inner exporter's result, or ``FAILURE`` when it raised or is shut down.
        """
        self._handed_over += len(spans)  # only the exporter thread exports
        if self._closed.is_set():
            return SpanExportResult.FAILURE
        try:
            inner = self._exporter()
            # start markers first: OTLP groups the batch by scope, the first one seen first
            result = (
                SpanExportResult.FAILURE if inner is None else inner.export(markers_first(spans))
            )
        except Exception as exc:  # noqa: BLE001 - the exporter thread must survive
            _log.warning("agentmesh.export_failed", error_type=type(exc).__name__, error=str(exc))
            result = SpanExportResult.FAILURE
        self._last_export_ok = result is SpanExportResult.SUCCESS
        return result

    def shutdown(self) -> None:
        """Shut the inner exporter down once: aborts its retry backoff, closes its channel."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            inner = self._inner
        if inner is None:
            return
        try:
            inner.shutdown()
        except Exception as exc:  # noqa: BLE001 - shutdown runs at exit: never raise
            _log.warning("agentmesh.exporter_shutdown_failed", error=str(exc))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here.

        Args:
            timeout_millis: Unused.

        Returns:
            Always ``True``.
        """
        return True


def endpoint_address(endpoint: str) -> tuple[str, int] | None:
    """Return the TCP host and port an OTLP/gRPC endpoint names.

    Args:
        endpoint: ``http://host:4317``, ``https://host``, or ``host:port``.

    Returns:
        ``(host, port)``, or ``None`` when the endpoint is not a TCP address (a unix socket,
        something unparsable).

    Example:
        >>> endpoint_address("http://127.0.0.1:4317"), endpoint_address("collector:4317")
        (('127.0.0.1', 4317), ('collector', 4317))
        >>> endpoint_address("https://otel.example.com")
        ('otel.example.com', 443)
    """
    text = endpoint.strip()
    if text.startswith("unix:"):
        return None
    try:  # urlsplit itself refuses some ("http://[::1"), .port others ("host:abc")
        parts = urlsplit(text if "://" in text else f"grpc://{text}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if port is None:
        port = 443 if parts.scheme == "https" else _DEFAULT_OTLP_GRPC_PORT
    return host, port


def collector_reachable(endpoint: str, timeout_s: float) -> bool:
    """Tell whether a TCP connection to the endpoint opens within ``timeout_s``.

    Endpoints that are not TCP addresses count as reachable (nothing to probe).

    Args:
        endpoint: The OTLP/gRPC endpoint.
        timeout_s: Longest wait for the connection.

    Returns:
        Whether the collector accepts connections.
    """
    address = endpoint_address(endpoint)
    if address is None:
        return True
    try:
        with socket.create_connection(address, timeout=max(timeout_s, 0.001)):
            return True
    except OSError:
        return False
