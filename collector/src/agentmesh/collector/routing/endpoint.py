"""``GET /v1/route-table``: the served route table over HTTP, with ETags and long polls.

- The answer is the table's JSON (:meth:`~agentmesh.router.table.RouteTable.to_json`) with its
  ``ETag`` (``"<version>-<digest>"``) and ``Cache-Control: no-cache``.
- ``If-None-Match`` naming the current ETag (or ``*``) answers ``304 Not Modified``; naming
  another ETag answers the table at once, whatever ``after`` says (the client's copy differs).
- ``?after=<version>&wait=<seconds>`` is a long poll: it answers as soon as the served version
  differs from ``after`` (normally: is above it; a client ahead of the collector, after a
  restart, is answered at once), else ``304`` after ``wait`` seconds (at most 30: a longer
  ``wait`` is refused).
  ``If-None-Match`` with ``wait`` (and no ``after``) waits the same way. Without ``wait`` the
  answer is immediate.
- Malformed parameters answer ``400``; methods other than ``GET``/``HEAD`` answer ``405``.

The request handling shared with ``GET /v1/control`` is in
:mod:`agentmesh.collector.http_longpoll`. Mount the routes on the OTLP/HTTP receiver
(``OtlpHttpReceiver(..., extra_routes=...)``).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from agentmesh.collector.http_longpoll import (
    MAX_WAIT_SECONDS,
    LastEncoded,
    long_poll_route,
    not_modified,
    wait_for_change,
)
from agentmesh.collector.routing.table_state import RouteTableState
from agentmesh.router.table import RouteTable

__all__ = ["MAX_WAIT_SECONDS", "ROUTE_TABLE_PATH", "route_table_routes"]

ROUTE_TABLE_PATH: Final = "/v1/route-table"
"""Where the route table is served."""


def route_table_routes(
    state: RouteTableState, *, max_wait_seconds: float = MAX_WAIT_SECONDS
) -> list[web.RouteDef]:
    """Return the route serving ``state``'s table at :data:`ROUTE_TABLE_PATH`.

    Args:
        state: The route table store (its ``current`` table is served; its ``wait_for`` holds
            the long polls).
        max_wait_seconds: Longest long poll; a larger ``wait`` is refused (``400``).

    Returns:
        The routes to mount on the receiver.
    """
    encoded = LastEncoded[RouteTable](lambda table: (table.to_json().encode(), table.etag))

    async def answer(request: web.Request, after: int | None, wait: float) -> web.Response:
        current = state.current
        _, etag = encoded(current)
        tags = request.headers.get("If-None-Match")
        if tags is not None:
            if not _matches(tags, etag):
                return encoded.response(current)
            known = after if after is not None else current.version
        elif after is not None:
            known = after
        else:
            return encoded.response(current)
        if wait > 0:
            table = await wait_for_change(state.wait_for, known, wait, request)
            if table is None:
                return not_modified(encoded(state.current)[1])
            return encoded.response(table)
        if current.version == known:
            return not_modified(etag)
        return encoded.response(current)

    return [long_poll_route(ROUTE_TABLE_PATH, max_wait_seconds, answer)]


def _matches(header: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weakly) or is ``*``."""
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
