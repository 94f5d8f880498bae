"""The OTLP/gRPC trace receiver.

:class:`OtlpGrpcReceiver` owns a ``grpc.aio`` server implementing the OTLP ``TraceService``.
It knows nothing of storage: each decoded batch goes to an injected :class:`SpanSink`, and the
answer follows the OTLP specification:

- all spans accepted: an empty success;
- some spans had invalid ids: success with ``partial_success.rejected_spans`` and a message;
- the sink refused the batch (its queue is full): ``UNAVAILABLE``, which OTLP exporters retry
  with backoff;
- the request could not be decoded at all: ``INVALID_ARGUMENT`` (not retried).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Protocol, Self

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,  # pyright: ignore[reportUnknownVariableType]
)

from agentmesh.collector.model import SpanRecord
from agentmesh.collector.receiver.decode import DecodeResult, count_spans, decode_request
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ReceiverError
from agentmesh.core.log import get_logger

__all__ = ["OtlpGrpcReceiver", "ReceiverStats", "SpanSink"]

log = get_logger(__name__)

_INLINE_DECODE_MAX_SPANS: Final = 2000
"""Requests with more spans are decoded in a worker thread (in one pass) to keep the loop free."""

_QUEUE_FULL: Final = "the AgentMesh collector is busy (ingest queue full); retry later"
_SINK_FAILED: Final = "the AgentMesh collector could not accept the spans; retry later"

_Context = grpc.aio.ServicerContext[ExportTraceServiceRequest, ExportTraceServiceResponse]


class SpanSink(Protocol):
    """Where the receiver hands each decoded batch.

    A plain function or an ``async`` one; it returns ``True`` when the batch was accepted and
    ``False`` when it cannot take it now (the receiver then answers ``UNAVAILABLE``).
    """

    def __call__(self, spans: list[SpanRecord], /) -> bool | Awaitable[bool]:
        """Accept a batch of spans.

        Args:
            spans: The decoded spans of one request (never empty).

        Returns:
            Whether the batch was accepted, or an awaitable of it.
        """
        ...


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """Counters of a receiver since it started.

    Attributes:
        requests: Export requests answered.
        spans_accepted: Spans handed to the sink and accepted.
        spans_rejected: Spans rejected for invalid ids (reported as partial success).
        requests_refused: Requests answered ``UNAVAILABLE`` or ``INVALID_ARGUMENT``.
    """

    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0
    requests_refused: int = 0


class _TraceService(TraceServiceServicer):
    """The OTLP ``TraceService`` servicer: decode, hand over, answer."""

    def __init__(self, receiver: OtlpGrpcReceiver) -> None:
        self._receiver = receiver

    async def Export(  # noqa: N802 - the gRPC method name
        self, request: ExportTraceServiceRequest, context: _Context
    ) -> ExportTraceServiceResponse:
        """Handle one OTLP trace export.

        Args:
            request: The export request.
            context: The gRPC call context.

        Returns:
            The OTLP response (with a partial success when spans were rejected).
        """
        return await self._receiver.handle(request, context)


class OtlpGrpcReceiver:
    """An OTLP/gRPC trace receiver feeding a :class:`SpanSink`.

    Use it as an async context manager: entering binds and starts the server, leaving stops it,
    giving in-flight requests ``settings.grpc_grace_seconds`` to finish.

    Args:
        sink: Receives each decoded batch.
        settings: Host, port, message size limit and grace period; defaults to
            :meth:`CollectorSettings.load`.

    Example:
        >>> import asyncio
        >>> async def serve_once() -> bool:
        ...     settings = CollectorSettings.load(grpc_port=0)
        ...     async with OtlpGrpcReceiver(lambda spans: True, settings) as receiver:
        ...         return receiver.port > 0
        >>> asyncio.run(serve_once())
        True
    """

    def __init__(self, sink: SpanSink, settings: CollectorSettings | None = None) -> None:
        self._sink = sink
        self._settings = settings if settings is not None else CollectorSettings.load()
        self._server: grpc.aio.Server | None = None
        self._port = 0
        self._requests = 0
        self._spans_accepted = 0
        self._spans_rejected = 0
        self._requests_refused = 0

    @property
    def host(self) -> str:
        """The interface the server binds to."""
        return self._settings.grpc_host

    @property
    def port(self) -> int:
        """The bound TCP port (the free port chosen when configured with 0).

        Raises:
            ReceiverError: The receiver is not running.
        """
        if self._server is None:
            raise ReceiverError("the OTLP receiver is not running")
        return self._port

    @property
    def endpoint(self) -> str:
        """The URL exporters use, for example ``http://127.0.0.1:4317``."""
        return f"http://{_hostport(self.host, self.port)}"

    @property
    def stats(self) -> ReceiverStats:
        """A snapshot of the receiver's counters."""
        return ReceiverStats(
            requests=self._requests,
            spans_accepted=self._spans_accepted,
            spans_rejected=self._spans_rejected,
            requests_refused=self._requests_refused,
        )

    async def start(self) -> None:
        """Bind and start the gRPC server.

        Raises:
            ReceiverError: Already running, or the address could not be bound.
        """
        if self._server is not None:
            raise ReceiverError("the OTLP receiver is already running")
        settings = self._settings
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
                # Refuse to share a busy port silently (gRPC enables SO_REUSEPORT by default).
                ("grpc.so_reuseport", 0),
            ]
        )
        add_TraceServiceServicer_to_server(_TraceService(self), server)
        address = _hostport(settings.grpc_host, settings.grpc_port)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ReceiverError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from exc
        if port == 0:
            raise ReceiverError(f"cannot listen for OTLP/gRPC on {address}: address in use?")
        await server.start()
        self._server = server
        self._port = port
        log.info("otlp grpc receiver started", endpoint=self.endpoint)

    async def stop(self) -> None:
        """Stop accepting requests and let in-flight ones finish within the grace period."""
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop(self._settings.grpc_grace_seconds)
        log.info("otlp grpc receiver stopped", port=self._port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def handle(
        self, request: ExportTraceServiceRequest, context: _Context
    ) -> ExportTraceServiceResponse:
        """Decode a request, hand its spans to the sink and build the OTLP answer.

        Args:
            request: The export request.
            context: The gRPC call context, used to abort with a status code.

        Returns:
            The OTLP response.
        """
        self._requests += 1
        try:
            result = await _decode(request)
        except ReceiverError as exc:
            self._requests_refused += 1
            log.warning("otlp request refused", reason=str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if result.spans:
            try:
                verdict = self._sink(result.spans)
                accepted = await verdict if inspect.isawaitable(verdict) else verdict
            except Exception:
                self._requests_refused += 1
                log.exception("span sink failed", spans=len(result.spans))
                await context.abort(grpc.StatusCode.UNAVAILABLE, _SINK_FAILED)
            if not accepted:
                self._requests_refused += 1
                log.debug("otlp request refused, queue full", spans=len(result.spans))
                await context.abort(grpc.StatusCode.UNAVAILABLE, _QUEUE_FULL)
            self._spans_accepted += len(result.spans)
        response = ExportTraceServiceResponse()
        if result.rejected:
            self._spans_rejected += result.rejected
            log.warning(
                "otlp spans rejected", rejected=result.rejected, reason=result.error_message
            )
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = result.error_message
        return response


async def _decode(request: ExportTraceServiceRequest) -> DecodeResult:
    if count_spans(request) > _INLINE_DECODE_MAX_SPANS:
        return await asyncio.to_thread(decode_request, request)
    return decode_request(request)


def _hostport(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"
