"""``GET /v1/route-table``: the served route table over HTTP, with ETags and long polls.

- The answer is the table's JSON (:meth:`~agentmesh.router.table.RouteTable.to_json`) with its
  ``ETag`` (``"<version>-<digest>"``) and ``Cache-Control: no-cache``.
- ``If-None-Match`` naming the current ETag (or ``*``) answers ``304 Not Modified``; naming
  another ETag answers the table at once, whatever ``after`` says (the client's copy differs).
- ``?after=<version>&wait=<seconds>`` is a long poll: it answers as soon as the served version
  differs from ``after`` (normally: is above it; a client ahead of the collector, after a
  restart, is answered at once), else ``304`` after ``wait`` seconds (at most 30).
  ``If-None-Match`` with ``wait`` (and no ``after``) waits the same way. Without ``wait`` the
  answer is immediate.
- Malformed parameters answer ``400``; methods other than ``GET``/``HEAD`` answer ``405``.

Mount the routes on the OTLP/HTTP receiver (``OtlpHttpReceiver(..., extra_routes=...)``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Final

from aiohttp import web

from agentmesh.collector.receiver.http_server import STOPPING
from agentmesh.collector.routing.table_state import RouteTableState
from agentmesh.router.table import RouteTable

__all__ = ["MAX_WAIT_SECONDS", "ROUTE_TABLE_PATH", "route_table_routes"]

ROUTE_TABLE_PATH: Final = "/v1/route-table"
"""Where the route table is served."""

MAX_WAIT_SECONDS: Final = 30.0
"""Longest long poll; a larger ``wait`` is cut to this."""

_JSON: Final = "application/json"


def route_table_routes(
    state: RouteTableState, *, max_wait_seconds: float = MAX_WAIT_SECONDS
) -> list[web.RouteDef]:
    """Return the route serving ``state``'s table at :data:`ROUTE_TABLE_PATH`.

    Args:
        state: The route table store.
        max_wait_seconds: Longest long poll.

    Returns:
        The routes to mount.
    """
    served: list[tuple[RouteTable, bytes, str]] = []

    def encoded(table: RouteTable) -> tuple[bytes, str]:
        """The body and ETag of a table, computed once per table."""
        if served and served[0][0] is table:
            return served[0][1], served[0][2]
        body, etag = table.to_json().encode(), table.etag
        served[:] = [(table, body, etag)]
        return body, etag

    async def handler(request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return web.Response(
                status=405,
                text=f"{request.method} is not supported on {ROUTE_TABLE_PATH}; send GET\n",
                headers={"Allow": "GET, HEAD"},
            )
        try:
            after, wait = _parameters(request.query, max_wait_seconds)
        except ValueError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        current = state.current
        _, etag = encoded(current)
        tags = request.headers.get("If-None-Match")
        if tags is not None:
            if not _matches(tags, etag):
                return _table(current, encoded)
            known = after if after is not None else current.version
        elif after is not None:
            known = after
        else:
            return _table(current, encoded)
        if wait > 0:
            table = await _wait(state, known, wait, request.app.get(STOPPING))
            if table is None:
                return _not_modified(encoded(state.current)[1])
            return _table(table, encoded)
        if current.version == known:
            return _not_modified(etag)
        return _table(current, encoded)

    return [web.route("*", ROUTE_TABLE_PATH, handler)]


def _parameters(query: Mapping[str, str], max_wait: float) -> tuple[int | None, float]:
    after: int | None = None
    if "after" in query:
        try:
            after = int(query["after"])
        except ValueError:
            raise ValueError(
                f"after must be a version (an integer), got {query['after']!r}"
            ) from None
        if after < 0:
            raise ValueError(f"after must be 0 or more, got {after}")
    wait = 0.0
    if "wait" in query:
        try:
            wait = float(query["wait"])
        except ValueError:
            raise ValueError(f"wait must be a number of seconds, got {query['wait']!r}") from None
        if not math.isfinite(wait) or wait < 0:
            raise ValueError(f"wait must be between 0 and {max_wait:g} seconds, got {wait}")
    return after, min(wait, max_wait)


def _matches(header: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weakly) or is ``*``."""
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


async def _wait(
    state: RouteTableState, known: int, wait: float, stopping: asyncio.Event | None
) -> RouteTable | None:
    if stopping is None:
        return await state.wait_for(known, wait)
    polling = asyncio.ensure_future(state.wait_for(known, wait))
    closing = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({polling, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing.cancel()
        if not polling.done():
            polling.cancel()
    return polling.result() if polling.done() and not polling.cancelled() else None


def _table(table: RouteTable, encoded: Callable[[RouteTable], tuple[bytes, str]]) -> web.Response:
    body, etag = encoded(table)
    return web.Response(
        body=body,
        content_type=_JSON,
        headers={"ETag": etag, "Cache-Control": "no-cache"},
    )


def _not_modified(etag: str) -> web.Response:
    return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
