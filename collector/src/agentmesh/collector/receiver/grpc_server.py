"""The OTLP/gRPC trace receiver.

:class:`OtlpGrpcReceiver` owns a ``grpc.aio`` server implementing the OTLP ``TraceService``.
It knows nothing of storage: each decoded batch goes to an injected :class:`SpanSink`, and the
answer follows the OTLP specification:

- all spans accepted: an empty success;
- some spans had invalid ids, or limits shortened some: success with ``partial_success``
  (``rejected_spans`` and a message in plain words);
- the sink refused the batch (its queue is full): ``UNAVAILABLE`` with a ``google.rpc.RetryInfo``
  (``settings.retry_after_seconds``), which OTLP exporters retry after that delay;
- missing or wrong credentials (when auth is configured): ``UNAUTHENTICATED``;
- the request could not be decoded at all: ``INVALID_ARGUMENT`` (not retried).

The same server answers the standard health protocol (``grpc.health.v1.Health``, see
:mod:`~agentmesh.collector.receiver.grpc_health`) from a readiness check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NoReturn

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentmesh.collector.receiver.base import OtlpReceiver, bind_problem, hostport
from agentmesh.collector.receiver.decode_pool import DecodePool
from agentmesh.collector.receiver.grpc_health import GrpcHealth
from agentmesh.collector.receiver.ingest import (
    ReceiverBusyError,
    ReceiverStats,
    SpanSink,
)
from agentmesh.collector.receiver.retry_info import retry_trailers
from agentmesh.collector.receiver.tls import ReloadingTls
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ReceiverError
from agentmesh.core.log import get_logger

__all__ = ["OtlpGrpcReceiver", "ReceiverStats", "SpanSink"]

log = get_logger(__name__)

_Context = grpc.aio.ServicerContext[bytes, ExportTraceServiceResponse]


_SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"


class OtlpGrpcReceiver(OtlpReceiver):
    """An OTLP/gRPC trace receiver feeding a :class:`SpanSink`.

    Use it as an async context manager: entering binds and starts the server, leaving stops it,
    giving in-flight requests ``settings.grpc_grace_seconds`` to finish.

    Args:
        sink: Receives each decoded batch.
        settings: Host, port, limits, auth and grace period; defaults to
            :meth:`CollectorSettings.load`.
        decode_pool: Worker processes that decode requests (the server takes each request's
            raw bytes); without one, requests are decoded in this process.
        tls: The TLS to serve; by default, loaded from the settings.
        ready: What the health service answers (``SERVING`` when true); by default, whether
            the server runs. The collector passes its readiness (``GET /readyz``'s verdict).

    Example:
        >>> import asyncio
        >>> async def serve_once() -> bool:
        ...     settings = CollectorSettings.load(grpc_port=0)
        ...     async with OtlpGrpcReceiver(lambda spans: True, settings) as receiver:
        ...         return receiver.port > 0
        >>> asyncio.run(serve_once())
        True
    """

    def __init__(
        self,
        sink: SpanSink,
        settings: CollectorSettings | None = None,
        *,
        decode_pool: DecodePool | None = None,
        tls: ReloadingTls | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(sink, settings, decode_pool=decode_pool, tls=tls)
        self._server: grpc.aio.Server | None = None
        self._ready = ready
        self._health: GrpcHealth | None = None

    @property
    def host(self) -> str:
        """The interface the server binds to."""
        return self._settings.grpc_host

    @property
    def running(self) -> bool:
        """Whether the server is started."""
        return self._server is not None

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
        # The request stays raw bytes: it is parsed where it is decoded (maybe in a worker).
        export: grpc.RpcMethodHandler[bytes, ExportTraceServiceResponse]
        export = grpc.unary_unary_rpc_method_handler(  # pyright: ignore[reportUnknownVariableType]
            self.handle,
            request_deserializer=None,
            response_serializer=ExportTraceServiceResponse.SerializeToString,
        )
        health = GrpcHealth(
            self._ready if self._ready is not None else lambda: self.running,
            [_SERVICE],
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE, {"Export": export}), health.handler())
        )
        address = hostport(settings.grpc_host, settings.grpc_port)
        try:
            if self._tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, self._tls.grpc_credentials())
        except RuntimeError as exc:
            reason = bind_problem(settings.grpc_host, settings.grpc_port) or str(exc)
            raise ReceiverError(f"cannot listen for OTLP/gRPC on {address}: {reason}") from exc
        if port == 0:
            reason = bind_problem(settings.grpc_host, settings.grpc_port) or "address in use?"
            raise ReceiverError(f"cannot listen for OTLP/gRPC on {address}: {reason}")
        await server.start()
        self._server = server
        self._health = health
        self._port = port
        log.info(
            "otlp grpc receiver started",
            endpoint=self.endpoint,
            auth=self._auth.enabled,
            mutual_tls=self._tls is not None and self._tls.mutual,
        )

    async def stop(self) -> None:
        """Stop accepting requests and let in-flight ones finish within the grace period."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._health is not None:
            self._health.close()  # probes see NOT_SERVING during the grace period
        await server.stop(self._settings.grpc_grace_seconds)
        log.info("otlp grpc receiver stopped", port=self._port)

    async def handle(
        self, request: bytes | ExportTraceServiceRequest, context: _Context
    ) -> ExportTraceServiceResponse:
        """Check credentials, decode a request, hand its spans to the sink, build the answer.

        Args:
            request: The export request: its protobuf bytes, or parsed.
            context: The gRPC call context, used to abort with a status code.

        Returns:
            The OTLP response.
        """
        if self._auth.enabled:
            problem = self._auth.check(*_credentials(context))
            if problem is not None:
                self._ingestor.refused(unauthenticated=True)
                log.info("otlp grpc request unauthenticated", peer=context.peer())
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)
        try:
            if isinstance(request, bytes):
                result = await self._ingestor.ingest_payload(request)
            else:
                result = await self._ingestor.ingest(request)
        except ReceiverBusyError as exc:
            await self._abort_busy(context, str(exc))
        except ReceiverError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        response = ExportTraceServiceResponse()
        if result.error_message:
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = result.error_message
        return response

    async def _abort_busy(self, context: _Context, message: str) -> NoReturn:
        code = grpc.StatusCode.UNAVAILABLE
        delay = self._settings.retry_after_seconds
        await context.abort(code, message, trailing_metadata=retry_trailers(code, message, delay))


def _credentials(context: _Context) -> tuple[str | None, str | None]:
    authorization: str | None = None
    api_key: str | None = None
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, bytes):
            continue
        if key == "authorization":
            authorization = value
        elif key == "x-api-key":
            api_key = value
    return authorization, api_key
