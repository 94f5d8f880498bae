"""Serving a versioned document over HTTP long polls: the parts every such endpoint shares.

``GET /v1/control`` (:mod:`agentmesh.collector.recovery.endpoint`) and ``GET /v1/route-table``
(:mod:`agentmesh.collector.routing.endpoint`) both answer ``?after=<version>&wait=<seconds>``
long polls, ``If-None-Match`` with ``304 Not Modified``, and end their long polls when the
server stops. Each decides from the request which version the client holds; this module does
the rest:

- :func:`long_poll_route` answers ``405`` to methods other than ``GET``/``HEAD`` and ``400``
  with ``{"error": "..."}``, as the query API does, to malformed ``after``/``wait``
  (:func:`poll_parameters_of`; a ``wait`` beyond the longest long poll is refused too) and to
  any other parameter or one given twice, else hands them to the endpoint's own answer;
- :func:`wait_for_change` waits for a newer document, ended early by the server stopping;
- :class:`LastEncoded` encodes each document once; :func:`document_response` and
  :func:`not_modified` write the answers (with ``ETag`` and ``Cache-Control: no-cache``).

Example:
    >>> poll_parameters_of({"after": "7", "wait": "25"}, 30.0)
    (7, 25.0)
    >>> poll_parameters_of({"after": "7", "wait": "90"}, 30.0)
    Traceback (most recent call last):
    ValueError: wait must be between 0 and 30 seconds, got 90.0
    >>> not_modified('"7"').status
    304
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Generic, TypeAlias, TypeVar

from aiohttp import web

from agentmesh.collector.api.params import error_response, query_problem
from agentmesh.collector.receiver.http_server import STOPPING

__all__ = [
    "MAX_WAIT_SECONDS",
    "Answer",
    "LastEncoded",
    "document_response",
    "long_poll_route",
    "not_modified",
    "poll_parameters_of",
    "wait_for_change",
]

MAX_WAIT_SECONDS: Final = 30.0
"""Longest long poll; a larger ``wait`` is refused (``400``)."""
_POLL_PARAMETERS: Final = ("after", "wait")
"""The query parameters of a long poll; any other is refused (``400``)."""

_JSON: Final = "application/json"

DocT = TypeVar("DocT")

Answer: TypeAlias = Callable[[web.Request, int | None, float], Awaitable[web.Response]]
"""An endpoint's answer to a well-formed poll: ``(request, after, wait) -> response``."""


def long_poll_route(path: str, max_wait: float, answer: Answer) -> web.RouteDef:
    """Return the route of a long-polled document at ``path``.

    Args:
        path: Where the document is served.
        max_wait: Longest long poll (seconds); a larger ``wait`` is refused.
        answer: Answers a ``GET``/``HEAD`` with well-formed parameters (``after`` ``None`` and
            ``wait`` 0 when absent).

    Returns:
        The route (other methods answer ``405``; malformed, unknown or repeated parameters
        ``400`` with ``{"error": "..."}``).
    """

    async def handler(request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return web.Response(
                status=405,
                text=f"{request.method} is not supported on {path}; send GET\n",
                headers={"Allow": "GET, HEAD"},
            )
        problem = query_problem((name for name, _ in request.query.items()), _POLL_PARAMETERS, path)
        if problem is not None:
            return error_response(problem, 400)
        try:
            after, wait = poll_parameters_of(request.query, max_wait)
        except ValueError as exc:
            return error_response(str(exc), 400)
        return await answer(request, after, wait)

    return web.route("*", path, handler)


def poll_parameters_of(query: Mapping[str, str], max_wait: float) -> tuple[int | None, float]:
    """Return ``after`` (``None`` when absent) and ``wait`` (0 when absent).

    Args:
        query: The query parameters.
        max_wait: Longest long poll (seconds).

    Returns:
        ``(after, wait)``.

    Raises:
        ValueError: ``after`` is not a version or ``wait`` not a number of seconds between 0
            and ``max_wait``.
    """
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
        if not math.isfinite(wait) or not 0 <= wait <= max_wait:
            raise ValueError(f"wait must be between 0 and {max_wait:g} seconds, got {wait}")
    return after, wait


async def wait_for_change(
    wait_for: Callable[[int, float], Awaitable[DocT | None]],
    known: int,
    wait: float,
    request: web.Request,
) -> DocT | None:
    """Wait for a document newer than ``known``; ended early when the server stops.

    Args:
        wait_for: The store's long poll (``state.wait_for``).
        known: The version the client holds.
        wait: Longest wait (seconds).
        request: The request (its application's ``STOPPING`` event, if any, ends the wait).

    Returns:
        The newer document, or ``None`` when the wait ran out or the server is stopping.
    """
    stopping = request.app.get(STOPPING)
    if stopping is None:
        return await wait_for(known, wait)
    polling = asyncio.ensure_future(wait_for(known, wait))
    closing = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({polling, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing.cancel()
        if not polling.done():
            polling.cancel()
    return polling.result() if polling.done() and not polling.cancelled() else None


class LastEncoded(Generic[DocT]):
    """The body and ETag of the last document served, computed once per document.

    Args:
        encode: Makes a document's body and ETag.
    """

    def __init__(self, encode: Callable[[DocT], tuple[bytes, str]]) -> None:
        self._encode = encode
        self._served: list[tuple[DocT, bytes, str]] = []

    def __call__(self, document: DocT) -> tuple[bytes, str]:
        """Return the body and ETag of ``document`` (cached while it is the last one asked).

        Args:
            document: The document.

        Returns:
            ``(body, etag)``.
        """
        served = self._served
        if served and served[0][0] is document:
            return served[0][1], served[0][2]
        body, etag = self._encode(document)
        self._served = [(document, body, etag)]
        return body, etag

    def response(self, document: DocT) -> web.Response:
        """Return the ``200`` answer carrying ``document``.

        Args:
            document: The document.

        Returns:
            The response.
        """
        return document_response(*self(document))


def document_response(body: bytes, etag: str) -> web.Response:
    """Return a ``200`` JSON answer with ``ETag`` and ``Cache-Control: no-cache``.

    Args:
        body: The JSON body.
        etag: The document's ETag.

    Returns:
        The response.
    """
    return web.Response(
        body=body,
        content_type=_JSON,
        headers={"ETag": etag, "Cache-Control": "no-cache"},
    )


def not_modified(etag: str) -> web.Response:
    """Return a ``304 Not Modified`` answer naming the current ``etag``.

    Args:
        etag: The current document's ETag.

    Returns:
        The response.
    """
    return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
