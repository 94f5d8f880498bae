"""A local OTLP/HTTP sink for forwarding tests: records what arrives, answers as scripted.

:class:`SinkServer` is a real aiohttp server on loopback standing in for LangSmith, Braintrust
or any OTLP/HTTP endpoint: each request's path, headers and (gunzipped) body are recorded before
it is answered; answers come from a script (:meth:`SinkServer.script`), then ``200``.
``SinkAnswer(hang=True)`` holds the request open until the server stops.

Example:
    >>> import asyncio, aiohttp
    >>> async def main() -> tuple[int, int, str]:
    ...     async with SinkServer() as sink, aiohttp.ClientSession() as client:
    ...         sink.script(SinkAnswer(429, retry_after="0"))
    ...         first = await client.post(sink.url("/otel/v1/traces"), data=b"")
    ...         second = await client.post(sink.url("/otel/v1/traces"), data=b"")
    ...         return first.status, second.status, sink.requests[0].path
    >>> asyncio.run(main())
    (429, 200, '/otel/v1/traces')
"""

from __future__ import annotations

import asyncio
import gzip
from collections import deque
from dataclasses import dataclass

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["SinkAnswer", "SinkRequest", "SinkServer"]


@dataclass(frozen=True, slots=True)
class SinkAnswer:
    """How the sink answers one request.

    Attributes:
        status: HTTP status.
        retry_after: ``Retry-After`` header value, if any.
        hang: Hold the request open until the server stops (then answer 503).
    """

    status: int = 200
    retry_after: str | None = None
    hang: bool = False


@dataclass(frozen=True, slots=True)
class SinkRequest:
    """One request the sink received.

    Attributes:
        method: HTTP method.
        path: Request path.
        headers: Request headers, names in lower case.
        body: The body, gunzipped when it was sent with ``Content-Encoding: gzip``.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def export_request(self) -> ExportTraceServiceRequest:
        """Parse the body as an OTLP protobuf trace export.

        Returns:
            The request.
        """
        return ExportTraceServiceRequest.FromString(self.body)

    def span_names(self) -> list[str]:
        """Names of every span in the body, in order.

        Returns:
            The names.
        """
        return [
            span.name
            for resource in self.export_request().resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


class SinkServer:
    """A recording OTLP/HTTP endpoint on ``127.0.0.1`` and a free port.

    Args:
        always: Answer used once the script is empty (``200`` by default).
    """

    def __init__(self, always: SinkAnswer | None = None) -> None:
        self.requests: list[SinkRequest] = []
        self._always = always if always is not None else SinkAnswer()
        self._script: deque[SinkAnswer] = deque()
        self._release = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0

    def url(self, path: str = "") -> str:
        """The sink's base URL with ``path`` appended.

        Args:
            path: Path to append, starting with ``/``.

        Returns:
            For example ``http://127.0.0.1:40123/otel/v1/traces``.
        """
        return f"http://127.0.0.1:{self._port}{path}"

    def script(self, *answers: SinkAnswer) -> None:
        """Queue answers for the next requests, in order.

        Args:
            answers: The answers.
        """
        self._script.extend(answers)

    async def wait_for(self, count: int) -> list[SinkRequest]:
        """Wait until at least ``count`` requests arrived (wrap in ``asyncio.timeout``).

        Args:
            count: Requests to wait for.

        Returns:
            The requests received so far.
        """
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    async def __aenter__(self) -> SinkServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, auto_decompress=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        headers = {key.lower(): value for key, value in request.headers.items()}
        async with self._arrived:
            self.requests.append(SinkRequest(request.method, request.path, headers, body))
            self._arrived.notify_all()
        answer = self._script.popleft() if self._script else self._always
        if answer.hang:
            await self._release.wait()
            return web.Response(status=503)
        response_headers = {} if answer.retry_after is None else {"Retry-After": answer.retry_after}
        if 200 <= answer.status < 300:
            return web.Response(
                status=answer.status,
                body=ExportTraceServiceResponse().SerializeToString(),
                content_type="application/x-protobuf",
            )
        return web.Response(status=answer.status, text="scripted failure", headers=response_headers)
