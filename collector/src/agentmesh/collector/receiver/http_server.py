"""The OTLP/HTTP trace receiver (``POST /v1/traces``), on aiohttp.

Follows the OTLP/HTTP specification:

- bodies in ``application/x-protobuf`` or ``application/json`` (OTLP/JSON, hex ids), plain or
  ``Content-Encoding: gzip``; the answer is an ``ExportTraceServiceResponse`` in the request's
  encoding, with ``partial_success`` when spans were rejected or shortened by the limits;
- errors carry a ``google.rpc.Status`` in the request's encoding (plain text when the encoding
  is unknown), with a message in plain words: 400 malformed body, 401 missing or wrong
  credentials, 404 unknown path, 405 other method, 413 body over
  ``max_receive_message_bytes`` (compressed or decompressed), 415 unsupported content type or
  encoding;
- a full ingest queue answers 503 with ``Retry-After`` (``retry_after_seconds``), which the
  OpenTelemetry exporters and the Collector retry after that delay.

Other routes can share the port (``extra_routes``: the control document ``GET /v1/control``),
and ``GET /metrics`` serves a Prometheus text renderer when one is given. With authentication
configured they require the same credentials as ``/v1/traces``. Long-running handlers (long
polls) can end early when the server stops: ``request.app[STOPPING]`` is set then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal

from aiohttp import ClientPayloadError, web
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentmesh.collector.receiver.base import OtlpReceiver, hostport
from agentmesh.collector.receiver.decode import DecodeResult
from agentmesh.collector.receiver.decode_errors import protobuf_problem
from agentmesh.collector.receiver.decode_pool import DecodePool
from agentmesh.collector.receiver.http_body import BodyTooLargeError, gunzip_capped, read_capped
from agentmesh.collector.receiver.ingest import (
    ReceiverBusyError,
    SpanSink,
)
from agentmesh.collector.receiver.otlp_json import parse_json_request, to_json
from agentmesh.collector.receiver.tls import ReloadingTls
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ReceiverError, StoreError, StoreUnavailableError
from agentmesh.core.log import get_logger

__all__ = ["METRICS_CONTENT_TYPE", "METRICS_PATH", "STOPPING", "TRACES_PATH", "OtlpHttpReceiver"]

log = get_logger(__name__)

TRACES_PATH: Final = "/v1/traces"
"""The OTLP/HTTP path of trace exports."""

METRICS_PATH: Final = "/metrics"
"""Where the Prometheus renderer, when given, is served."""

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4"
"""The Prometheus text exposition format."""

STOPPING: Final = web.AppKey("agentmesh_stopping", asyncio.Event)
"""Set when the server begins to stop, so long polls can answer at once."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
_CHUNK_BYTES: Final = 64 * 1024
_INLINE_BYTES: Final = 256 * 1024
"""Bodies larger than this are decompressed and parsed in a worker thread."""

_Encoding = Literal["protobuf", "json"]

# google.rpc.Code values for the Status bodies of error answers.
_CODES: Final[dict[int, int]] = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,  # INVALID_ARGUMENT
    503: 14,  # UNAVAILABLE
}


class OtlpHttpReceiver(OtlpReceiver):
    """An OTLP/HTTP trace receiver feeding a :class:`SpanSink`.

    Use it as an async context manager: entering binds and starts the server, leaving stops it,
    giving in-flight requests ``settings.grpc_grace_seconds`` to finish.

    Args:
        sink: Receives each decoded batch.
        settings: Host, port, limits, auth and retry delay; defaults to
            :meth:`CollectorSettings.load`.
        decode_pool: Worker processes that decode requests.
        extra_routes: More routes on the same server (``aiohttp.web.get(path, handler)``…);
            they take precedence over the catch-all 404 and need the receiver's credentials
            when authentication is configured.
        public_routes: Routes served without credentials, for what holds no data (the web
            dashboard's page and scripts, which then call the guarded API).
        metrics: Renders the Prometheus text format, served at ``GET /metrics``.
        tls: The TLS to serve; by default, loaded from the settings.

    Raises:
        ReceiverError: An extra route uses ``/v1/traces`` (or ``/metrics`` with ``metrics``).

    Example:
        >>> import asyncio
        >>> async def serve_once() -> str:
        ...     settings = CollectorSettings.load(http_port=0)
        ...     async with OtlpHttpReceiver(lambda spans: True, settings) as receiver:
        ...         return receiver.traces_url.rsplit(":", 1)[1].split("/", 1)[1]
        >>> asyncio.run(serve_once())
        'v1/traces'
    """

    transport = "OTLP/HTTP"

    def __init__(
        self,
        sink: SpanSink,
        settings: CollectorSettings | None = None,
        *,
        decode_pool: DecodePool | None = None,
        extra_routes: Sequence[web.RouteDef] = (),
        public_routes: Sequence[web.RouteDef] = (),
        metrics: Callable[[], bytes] | None = None,
        tls: ReloadingTls | None = None,
    ) -> None:
        super().__init__(sink, settings, decode_pool=decode_pool, tls=tls)
        reserved = {TRACES_PATH, METRICS_PATH} if metrics is not None else {TRACES_PATH}
        for route in (*extra_routes, *public_routes):
            if route.path in reserved:
                raise ReceiverError(
                    f"an extra route cannot take {route.path}: it is served already"
                )
        self._extra_routes = tuple(extra_routes)
        self._public_routes = tuple(public_routes)
        self._metrics = metrics
        self._runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        """The interface the server binds to."""
        return self._settings.http_host

    @property
    def running(self) -> bool:
        """Whether the server is started."""
        return self._runner is not None

    @property
    def traces_url(self) -> str:
        """The full URL trace exporters post to, for example ``http://127.0.0.1:4318/v1/traces``."""
        return self.endpoint + TRACES_PATH

    async def start(self) -> None:
        """Bind and start the HTTP server.

        Raises:
            ReceiverError: Already running, or the address could not be bound.
        """
        if self._runner is not None:
            raise ReceiverError("the OTLP/HTTP receiver is already running")
        settings = self._settings
        app = web.Application(
            client_max_size=settings.max_receive_message_bytes,
            middlewares=[_store_errors(settings.retry_after_seconds)],
        )
        stopping = asyncio.Event()
        app[STOPPING] = stopping

        async def on_shutdown(_app: web.Application) -> None:
            stopping.set()

        app.on_shutdown.append(on_shutdown)
        app.router.add_route("*", TRACES_PATH, self._traces)
        for route in self._extra_routes:
            _add_route(app, route.method, route.path, self._guarded(route.handler), route.kwargs)
        for route in self._public_routes:
            _add_route(app, route.method, route.path, route.handler, route.kwargs)
        if self._metrics is not None:
            _add_route(app, "GET", METRICS_PATH, self._guarded(self._serve_metrics))
        app.router.add_route("*", "/{tail:.*}", _not_found)
        runner = web.AppRunner(
            app,
            access_log=None,
            auto_decompress=False,  # decompressed here, under the size cap
            shutdown_timeout=settings.grpc_grace_seconds,
        )
        await runner.setup()
        address = hostport(settings.http_host, settings.http_port)
        try:
            site = web.TCPSite(
                runner,
                settings.http_host,
                settings.http_port,
                ssl_context=None if self._tls is None else self._tls.ssl_context(),
            )
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ReceiverError(f"cannot listen for OTLP/HTTP on {address}: {exc}") from exc
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        log.info(
            "otlp http receiver started",
            endpoint=self.endpoint,
            auth=self._auth.enabled,
            mutual_tls=self._tls is not None and self._tls.mutual,
        )

    async def stop(self) -> None:
        """Stop accepting requests and let in-flight ones finish within the grace period."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        log.info("otlp http receiver stopped", port=self._port)

    def _guarded(self, handler: _Handler) -> _Handler:
        """Wrap a handler so it needs the receiver's credentials (when auth is configured)."""
        if not self._auth.enabled:
            return handler

        async def guarded(request: web.Request) -> web.StreamResponse:
            problem = self._auth.check(
                request.headers.get("Authorization"), request.headers.get("x-api-key")
            )
            if problem is not None:
                log.info("http request unauthenticated", path=request.path, peer=request.remote)
                return web.Response(
                    status=401, text=problem + "\n", headers={"WWW-Authenticate": "Bearer"}
                )
            return await handler(request)

        return guarded

    async def _serve_metrics(self, request: web.Request) -> web.StreamResponse:
        render = self._metrics
        if render is None:  # pragma: no cover - only routed with a renderer
            return await _not_found(request)
        try:
            body = render()
        except Exception:
            log.exception("metrics rendering failed")
            return web.Response(status=500, text="metrics rendering failed\n")
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _traces(self, request: web.Request) -> web.Response:
        encoding = _encoding_of(request.content_type)
        if request.method != "POST":
            self._ingestor.refused()
            return _error(
                405,
                f"{request.method} is not supported on {TRACES_PATH}; send POST",
                encoding,
                {"Allow": "POST"},
            )
        if self._auth.enabled:
            problem = self._auth.check(
                request.headers.get("Authorization"), request.headers.get("x-api-key")
            )
            if problem is not None:
                self._ingestor.refused(unauthenticated=True)
                log.info("otlp http request unauthenticated", peer=request.remote)
                return _error(401, problem, encoding, {"WWW-Authenticate": "Bearer"})
        if encoding is None:
            self._ingestor.refused()
            return _error(
                415,
                f"unsupported Content-Type {request.content_type!r}; send {_PROTOBUF} or {_JSON}",
                None,
            )
        content_encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if content_encoding not in ("", "identity", "gzip"):
            self._ingestor.refused()
            return _error(
                415,
                f"unsupported Content-Encoding {content_encoding!r}; send gzip or no encoding",
                encoding,
            )
        try:
            parsed = await self._read(request, encoding, gzip=content_encoding == "gzip")
        except BodyTooLargeError as exc:
            self._ingestor.refused()
            return _error(413, str(exc), encoding)
        except ReceiverError as exc:
            self._ingestor.refused()
            log.warning("otlp http request refused", reason=str(exc))
            return _error(400, str(exc), encoding)
        request_message, rejected = parsed
        try:
            if isinstance(request_message, bytes):
                result = await self._ingestor.ingest_payload(request_message)
            else:
                result = await self._ingestor.ingest(request_message, rejected=rejected)
        except ReceiverBusyError as exc:
            retry_after = str(self._settings.retry_after_seconds)
            return _error(503, str(exc), encoding, {"Retry-After": retry_after})
        except ReceiverError as exc:
            return _error(400, str(exc), encoding)
        return _success(result, encoding)

    async def _read(
        self, request: web.Request, encoding: _Encoding, *, gzip: bool
    ) -> tuple[ExportTraceServiceRequest | bytes, list[str]]:
        limit = self._settings.max_receive_message_bytes
        try:
            body = await read_capped(
                request.content.iter_chunked(_CHUNK_BYTES), request.content_length, limit
            )
        except (ClientPayloadError, ConnectionError) as exc:
            raise ReceiverError(f"the request body was cut short or malformed: {exc}") from exc
        if self._pooled and encoding == "protobuf" and not gzip:
            return body, []  # the decode pool parses it (or the ingestor, when it is tiny)
        if len(body) > _INLINE_BYTES:
            return await asyncio.to_thread(_parse, body, encoding, gzip, limit, self._pooled)
        return _parse(body, encoding, gzip, limit, self._pooled)


def _parse(
    body: bytes, encoding: _Encoding, gzip: bool, limit: int, pooled: bool
) -> tuple[ExportTraceServiceRequest | bytes, list[str]]:
    if gzip:
        body = gunzip_capped(body, limit)
    if encoding == "json":
        parsed = parse_json_request(body)
        return parsed.request, parsed.rejected
    if pooled:
        return body, []
    try:
        return ExportTraceServiceRequest.FromString(body), []
    except (DecodeError, RecursionError) as exc:
        raise ReceiverError(
            f"the body is not a valid OTLP protobuf trace export: {protobuf_problem(str(exc))}"
        ) from exc


def _encoding_of(content_type: str) -> _Encoding | None:
    if content_type == _PROTOBUF:
        return "protobuf"
    if content_type == _JSON:
        return "json"
    return None


def _success(result: DecodeResult, encoding: _Encoding) -> web.Response:
    response = ExportTraceServiceResponse()
    if result.error_message:
        response.partial_success.rejected_spans = result.rejected
        response.partial_success.error_message = result.error_message
    return _message(200, response, encoding)


def _error(
    status: int,
    message: str,
    encoding: _Encoding | None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if encoding is None:
        return web.Response(status=status, text=message + "\n", headers=headers)
    body = Status(code=_CODES.get(status, 2), message=message)
    return _message(status, body, encoding, headers)


def _message(
    status: int,
    message: Message,
    encoding: _Encoding,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if encoding == "json":
        return web.Response(
            status=status, body=to_json(message), content_type=_JSON, headers=headers
        )
    return web.Response(
        status=status,
        body=message.SerializeToString(),
        content_type=_PROTOBUF,
        headers=headers,
    )


_NO_OPTIONS: Final[Mapping[str, Any]] = {}


def _add_route(
    app: web.Application,
    method: str,
    path: str,
    handler: _Handler,
    kwargs: Mapping[str, Any] = _NO_OPTIONS,
) -> None:
    """Route ``method`` (and ``HEAD`` with a ``GET``: probes and link checkers send it)."""
    app.router.add_route(method, path, handler, **kwargs)
    if method == "GET":
        app.router.add_route("HEAD", path, handler)


async def _not_found(request: web.Request) -> web.Response:
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical == "/{tail}":  # this catch-all itself
            continue
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    encoding = _encoding_of(request.content_type)
    if allowed:  # the path exists, not for this method
        listed = ", ".join(sorted(allowed))
        return _error(
            405,
            f"{request.method} is not served at {request.path!r}; it answers {listed}",
            encoding,
            {"Allow": listed},
        )
    return _error(
        404, f"no such path {request.path!r}; OTLP traces go to POST {TRACES_PATH}", encoding
    )


def _store_errors(retry_after_seconds: int) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware answering a store failure of any route in plain words, as JSON.

    An unreachable store is ``503`` with ``Retry-After`` (try again later); any other store
    failure is ``500`` with the store's message (logged), never a bare traceback page.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except StoreUnavailableError as exc:
            return web.json_response(
                {"error": str(exc)},
                status=503,
                headers={"Retry-After": str(retry_after_seconds)},
            )
        except StoreError as exc:
            log.warning("request failed in the store", path=request.path, error=str(exc))
            return web.json_response({"error": str(exc)}, status=500)

    return middleware
