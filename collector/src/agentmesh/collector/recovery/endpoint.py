"""``GET /v1/control``: the control document over HTTP, with ETags and long polls.

- The answer is the public document (JSON) with ``ETag: "<version>"`` and
  ``Cache-Control: no-cache``.
- ``If-None-Match: "<version>"`` (or ``*``) answers ``304 Not Modified`` while the version is
  the same.
- ``?after=<version>&wait=<seconds>`` is a long poll: it answers as soon as the version differs
  from ``after`` (normally: is above it; a client ahead of the collector, after a reset, is
  answered at once), else ``304`` after ``wait`` seconds (at most 30: a longer ``wait`` is
  refused). ``If-None-Match`` with ``wait`` works the same way. Without ``wait`` the answer is
  immediate.
- Malformed parameters, and any but ``after`` and ``wait`` or one given twice, answer ``400``
  with ``{"error": "..."}`` in plain words, as the query API does; methods other than
  ``GET``/``HEAD`` answer ``405``.

The request handling shared with ``GET /v1/route-table`` is in
:mod:`agentmesh.collector.http_longpoll`. Mount the routes on the OTLP/HTTP receiver
(``OtlpHttpReceiver(..., extra_routes=...)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web

from agentmesh.collector import http_longpoll as longpoll
from agentmesh.collector.http_longpoll import MAX_WAIT_SECONDS
from agentmesh.collector.recovery.control_state import ControlState
from agentmesh.collector.recovery.document import ControlDocument

__all__ = ["CONTROL_PATH", "MAX_WAIT_SECONDS", "control_routes"]

CONTROL_PATH: Final = "/v1/control"
"""Where the control document is served."""


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


def control_routes(
    control: ControlState, *, max_wait_seconds: float = MAX_WAIT_SECONDS
) -> list[web.RouteDef]:
    """Return the route serving ``control``'s document at :data:`CONTROL_PATH`.

    Args:
        control: The control document store.
        max_wait_seconds: Longest long poll; a larger ``wait`` is refused (``400``).

    Returns:
        The routes to mount.
    """
    encoded = longpoll.LastEncoded[ControlDocument](
        lambda document: (document.to_json(public=True).encode(), document.etag)
    )

    async def answer(request: web.Request, after: int | None, wait: float) -> web.Response:
        current = control.current
        known = after if after is not None else _known(request.headers, current)
        if known is None:
            return encoded.response(current)
        if wait > 0:
            document = await longpoll.wait_for_change(control.wait_for, known, wait, request)
            if document is None:
                return longpoll.not_modified(control.current.etag)
        else:
            document = current
            if document.version == known:
                return longpoll.not_modified(document.etag)
        return encoded.response(document)

    return [longpoll.long_poll_route(CONTROL_PATH, max_wait_seconds, answer)]
