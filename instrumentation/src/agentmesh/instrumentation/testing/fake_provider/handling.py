"""Request plumbing shared by the routes: in-flight tracking, body parsing and recording."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from agentmesh.core.log import get_logger
from agentmesh.instrumentation.testing.fake_provider.jsontypes import (
    JSONObject,
    get_bool,
    get_str,
    parse_json_object,
)
from agentmesh.instrumentation.testing.fake_provider.state import ProviderState, RecordedRequest

__all__ = ["InFlight", "read_and_record"]

logger = get_logger(__name__)


class InFlight:
    """The request handlers in progress, so that stopping the server can cancel them at once.

    Hung requests (``hang: true``) and long latencies would otherwise hold the server's
    shutdown until aiohttp's own timeout.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._stopping = False

    def middleware(self) -> Middleware:
        """Return an aiohttp middleware that tracks each handler's task.

        Returns:
            The middleware.
        """

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self._stopping:
                raise web.HTTPServiceUnavailable(text="the fake provider is stopping")
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                return await handler(request)
            finally:
                if task is not None:
                    self._tasks.discard(task)

        return track

    async def hang(self) -> None:
        """Wait until the handler is cancelled (client gone, or server stopping)."""
        await asyncio.Event().wait()

    def cancel_all(self) -> int:
        """Refuse new requests and cancel every handler in progress.

        Returns:
            How many handlers were cancelled.
        """
        self._stopping = True
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        return len(tasks)

    def reopen(self) -> None:
        """Accept requests again (after a restart)."""
        self._stopping = False


async def read_and_record(
    request: web.Request, state: ProviderState
) -> tuple[JSONObject | None, str | None, bool]:
    """Read a request's JSON body and record the request.

    Args:
        request: The request.
        state: Where to record it.

    Returns:
        The decoded body (``None`` when missing or invalid), its ``model`` and ``stream``.
    """
    raw = await request.read()
    body = parse_json_object(raw) if raw else None
    model = get_str(body, "model") if body is not None else None
    stream = get_bool(body, "stream") if body is not None else False
    state.record(
        RecordedRequest(
            method=request.method,
            route=request.path,
            model=model,
            stream=stream,
            body=body,
            headers={name.lower(): value for name, value in request.headers.items()},
        )
    )
    logger.debug("fake_provider.request", route=request.path, model=model, stream=stream)
    return body, model, stream
