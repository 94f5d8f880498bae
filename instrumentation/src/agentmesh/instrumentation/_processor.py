"""A batch span processor whose shutdown and flush never take longer than a fixed budget.

The SDK's ``BatchSpanProcessor`` exports on a daemon thread, so spans never block the app
while it runs; but its ``shutdown()`` (called by the tracer provider's ``atexit`` hook) joins
the worker for up to 30 s, and the worker's last export retries with backoff while the
collector is down. :class:`BoundedSpanProcessor` runs that shutdown on a helper daemon thread
and waits at most ``timeout_s`` in total. It first probes the collector: when nobody listens it
closes the exporter straight away (the spans could not be delivered anyway), so exit does not
wait at all. When the budget runs out it closes the exporter, which aborts the retry backoff
and the in-flight call, and returns: the pending spans are dropped, the process exits on time.
Before that final flush, shutdown ends the provider calls still open (a stream the application
stopped reading), so that their spans go out with the rest
(:mod:`~agentmesh.instrumentation._open_calls`).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentmesh.core.log import get_logger
from agentmesh.instrumentation import _open_calls
from agentmesh.instrumentation._exporter import GuardedSpanExporter, collector_reachable
from agentmesh.instrumentation._failopen import guarded

__all__ = ["BoundedSpanProcessor"]

_log = get_logger(__name__)

_PROBE_SHARE = 0.25
"""Share of the shutdown budget the reachability probe may use."""


_LIVE_SCHEDULE_DELAY_MS = 200
"""Export delay when ``OTEL_BSP_SCHEDULE_DELAY`` is not set: the SDK's default (5 s) would make
the collector see a loop or a runaway seconds late; at 200 ms, detection acts within a step."""


def _schedule_delay_ms() -> float:
    configured = os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "").strip()
    if configured:
        try:
            return float(configured)
        except ValueError:
            _log.warning("agentmesh.bad_setting", name="OTEL_BSP_SCHEDULE_DELAY", value=configured)
    return _LIVE_SCHEDULE_DELAY_MS


def _run_bounded(name: str, fn: Callable[[], object], timeout_s: float) -> bool:
    finished = threading.Event()

    def target() -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - runs at exit: log, never raise
            _log.warning("agentmesh.span_processor_failed", step=name, error=str(exc))
        finally:
            finished.set()

    thread = threading.Thread(target=target, name=f"agentmesh-{name}", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # CPython 3.12.0 and 3.12.1 start no thread at exit: run it here
        target()
        return True
    return finished.wait(max(timeout_s, 0.0))


class BoundedSpanProcessor(SpanProcessor):
    """Batches spans to an exporter; shutdown and flush are bounded by ``timeout_s``.

    Args:
        exporter: The guarded exporter (closing it aborts an export in progress).
        endpoint: The collector endpoint (probed at shutdown).
        timeout_s: Longest time :meth:`shutdown` (or :meth:`force_flush`) may take.
    """

    def __init__(self, exporter: GuardedSpanExporter, endpoint: str, timeout_s: float) -> None:
        self._exporter = exporter
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self._batch = BatchSpanProcessor(exporter, schedule_delay_millis=_schedule_delay_ms())
        self._shutdown_lock = threading.Lock()
        self._is_shut_down = False
        self._queued = itertools.count()
        self._queued_total = 0
        self._spent_at_exit = 0.0  # seconds the exit hook waited: shutdown has the rest
        register = getattr(threading, "_register_atexit", None)
        if callable(register):  # runs before thread pools refuse work, unlike atexit hooks
            register(self._prepare_exporter_at_exit)

    def _prepare_exporter_at_exit(self) -> None:
        """:meth:`_prepare_exporter`, never raising.

        When a ``threading`` exit hook raises, Python stops calling the others and no longer
        waits for the app's own threads.
        """
        with guarded("exporter-prepare-at-exit"):
            self._prepare_exporter()

    def _prepare_exporter(self) -> None:
        """At interpreter exit: build the exporter if spans wait for it (short-lived apps).

        Spans wait for it when some were queued, or when a provider call is still open (it
        ends at exit, see :meth:`shutdown`). The time it takes comes out of the exit's budget:
        :meth:`shutdown` gets the rest.
        """
        if self._is_shut_down or self._exporter.prepared:
            return
        if self._queued_total == 0 and not _open_calls.any_open():
            return
        started = time.monotonic()
        try:
            # Spans already handed over may wait on a build in progress on the export thread:
            # waiting for it here (prepare takes the same lock) lets it finish while thread
            # pools still take work.
            if not collector_reachable(self._endpoint, self._timeout_s * _PROBE_SHARE):
                return
            remaining = self._timeout_s - (time.monotonic() - started)
            _run_bounded("exporter-prepare", self._exporter.prepare, remaining)
        finally:
            self._spent_at_exit += time.monotonic() - started

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Forward to the batch processor.

        Args:
            span: The started span.
            parent_context: Its parent context.
        """
        self._batch.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the finished span (never blocks).

        Args:
            span: The finished span.
        """
        if span.context is not None and span.context.trace_flags.sampled:
            self._queued_total = next(self._queued) + 1  # atomic under the GIL
        self._batch.on_end(span)

    def shutdown(self) -> None:
        """End open calls, flush what can be flushed within the budget, then stop; never raises.

        A provider call still open (a stream the application stopped reading) is ended first,
        so that its span is in the final flush. Never waits longer than the budget.
        """
        with guarded("span-processor-shutdown"):
            self._shutdown()

    def _shutdown(self) -> None:
        with self._shutdown_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        _open_calls.end_open_calls()
        budget = max(self._timeout_s - self._spent_at_exit, 0.0)  # "in total", exit hook included
        deadline = time.monotonic() + budget
        if self._exporter.last_export_ok is not True and not collector_reachable(
            self._endpoint, budget * _PROBE_SHARE
        ):
            self._exporter.shutdown()  # nobody listens: do not wait for retries
            dropped = self._queued_total - self._exporter.handed_over
            if dropped > 0:
                _log.warning(
                    "agentmesh.collector_unreachable",
                    endpoint=self._endpoint,
                    dropped_spans=dropped,
                )
        if not _run_bounded("span-shutdown", self._batch.shutdown, deadline - time.monotonic()):
            self._exporter.shutdown()
            _log.warning(
                "agentmesh.shutdown_timeout",
                endpoint=self._endpoint,
                timeout_s=self._timeout_s,
                detail="spans not exported in time were dropped",
            )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export queued spans, waiting at most the smaller of ``timeout_millis`` and the budget.

        Args:
            timeout_millis: Longest wait asked by the caller.

        Returns:
            Whether the flush finished in time.
        """
        timeout_s = min(timeout_millis / 1000, self._timeout_s)
        return _run_bounded("span-flush", self._batch.force_flush, timeout_s)
