"""``GET /v1/control``: the control document over HTTP, with ETags and long polls.

- The answer is the public document (JSON) with ``ETag: "<version>"`` and
  ``Cache-Control: no-cache``.
- ``If-None-Match: "<version>"`` (or ``*``) answers ``304 Not Modified`` while the version is
  the same.
- ``?after=<version>&wait=<seconds>`` is a long poll: it answers as soon as the version differs
  from ``after`` (normally: is above it; a client ahead of the collector, after a reset, is
  answered at once), else ``304`` after ``wait`` seconds (at most 30). ``If-None-Match`` with
  ``wait`` works the same way. Without ``wait`` the answer is immediate.
- Malformed parameters answer ``400``; methods other than ``GET``/``HEAD`` answer ``405``.

Mount the routes on the OTLP/HTTP receiver (``OtlpHttpReceiver(..., extra_routes=...)``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from agentmesh.collector.receiver.http_server import STOPPING
from agentmesh.collector.recovery.control_state import ControlState
from agentmesh.collector.recovery.document import ControlDocument

__all__ = ["CONTROL_PATH", "MAX_WAIT_SECONDS", "control_routes"]

CONTROL_PATH: Final = "/v1/control"
"""Where the control document is served."""

MAX_WAIT_SECONDS: Final = 30.0
"""Longest long poll; a larger ``wait`` is cut to this."""

_JSON: Final = "application/json"


def control_routes(
    control: ControlState, *, max_wait_seconds: float = MAX_WAIT_SECONDS
) -> list[web.RouteDef]:
    """Return the route serving ``control``'s document at :data:`CONTROL_PATH`.

    Args:
        control: The control document store.
        max_wait_seconds: Longest long poll.

    Returns:
        The routes to mount.
    """
    served: list[tuple[ControlDocument, bytes]] = []

    def body_of(document: ControlDocument) -> bytes:
        if served and served[0][0] is document:
            return served[0][1]
        body = document.to_json(public=True).encode()
        served[:] = [(document, body)]
        return body

    async def handler(request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return web.Response(
                status=405,
                text=f"{request.method} is not supported on {CONTROL_PATH}; send GET\n",
                headers={"Allow": "GET, HEAD"},
            )
        try:
            after, wait = _parameters(request.query, max_wait_seconds)
        except ValueError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        current = control.current
        known = after if after is not None else _known(request.headers, current)
        if known is None:
            return _document(current, body_of(current))
        if wait > 0:
            document = await _wait(control, known, wait, request.app.get(STOPPING))
            if document is None:
                return _not_modified(control.current)
        else:
            document = current
            if document.version == known:
                return _not_modified(document)
        return _document(document, body_of(document))

    return [web.route("*", CONTROL_PATH, handler)]


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


def _known(headers: Mapping[str, str], current: ControlDocument) -> int | None:
    """The version an ``If-None-Match`` names (``*``: the current one), or ``None``."""
    header = headers.get("If-None-Match")
    if header is None:
        return None
    versions: list[int] = []
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return current.version
        tag = tag.removeprefix("W/").strip('"')
        if tag.isdigit():
            versions.append(int(tag))
    if current.version in versions:
        return current.version
    return versions[0] if versions else None


async def _wait(
    control: ControlState, known: int, wait: float, stopping: asyncio.Event | None
) -> ControlDocument | None:
    if stopping is None:
        return await control.wait_for(known, wait)
    polling = asyncio.ensure_future(control.wait_for(known, wait))
    closing = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({polling, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing.cancel()
        if not polling.done():
            polling.cancel()
    return polling.result() if polling.done() and not polling.cancelled() else None


def _document(document: ControlDocument, body: bytes) -> web.Response:
    return web.Response(
        body=body,
        content_type=_JSON,
        headers={"ETag": document.etag, "Cache-Control": "no-cache"},
    )


def _not_modified(document: ControlDocument) -> web.Response:
    return web.Response(status=304, headers={"ETag": document.etag, "Cache-Control": "no-cache"})
