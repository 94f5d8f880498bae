"""What every query API route reads and answers alike: its parameters, strict JSON, errors.

Each route is declared with the query parameters it reads (:func:`query_route`): any other
parameter, or one given twice, is answered ``400`` naming it, so a filter a client asked for is
never silently dropped.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Final, cast

from aiohttp import web

from agentmesh.collector.durations import when_ns
from agentmesh.collector.store.lookup import RunNotFoundError
from agentmesh.core import ConfigError

__all__ = [
    "Handler",
    "before_param",
    "error_response",
    "format_param",
    "json_response",
    "limit_param",
    "not_found_response",
    "query_problem",
    "query_route",
    "since_param",
    "strict_json",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""A route's request handler."""

_NON_FINITE: dict[float, str] = {math.inf: "Infinity", -math.inf: "-Infinity"}
_MAX_NS: Final = 2**63 - 1
"""The latest time the stores hold (a signed 64-bit count of nanoseconds)."""
_WHOLE_NUMBER: Final = re.compile("[0-9]+")


def query_problem(names: Iterable[str], accepted: Collection[str], path: str) -> str | None:
    """Say what is wrong with the names of a request's query parameters, if anything.

    A parameter the route does not read is refused rather than ignored, and so is one given
    more than once (only one of its values would be read).

    Args:
        names: The parameters' names, in the request's order, repeats included.
        accepted: The names the route reads.
        path: The route, for the message.

    Returns:
        The problem in plain words, or ``None``.

    Example:
        >>> query_problem(["limit", "until"], ["limit", "since"], "/v1/runs")
        "unknown parameter 'until' on /v1/runs; it takes limit, since"
        >>> query_problem(["type", "type"], ["type"], "/v1/detections")
        "parameter 'type' given more than once on /v1/detections; give it once"
    """
    given = Counter(names)
    unknown = sorted(name for name in given if name not in accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) if accepted else "no parameters"
        return (
            f"unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} on {path}; it takes {takes}"
        )
    repeated = sorted(name for name, times in given.items() if times > 1)
    if repeated:
        return (
            f"parameter{'s' if len(repeated) > 1 else ''} {', '.join(map(repr, repeated))} "
            f"given more than once on {path}; give {'them' if len(repeated) > 1 else 'it'} once"
        )
    return None


def query_route(path: str, handler: Handler, accepts: Iterable[str] = ()) -> web.RouteDef:
    """Return the ``GET`` route of ``handler``, answering ``400`` to parameters it does not read.

    Args:
        path: The route's path.
        handler: Answers the requests whose parameters are all in ``accepts``, once each.
        accepts: The query parameters the handler reads.

    Returns:
        The route (``HEAD`` is served with it when mounted on the receiver).
    """
    accepted = frozenset(accepts)

    async def checked(request: web.Request) -> web.StreamResponse:
        problem = query_problem((name for name, _ in request.query.items()), accepted, path)
        if problem is not None:
            return error_response(problem, 400)
        return await handler(request)

    return web.route("GET", path, checked)


def since_param(request: web.Request) -> int | None:
    """Read ``since`` (``90s``, ``15m``, ``2h``, ``7d`` ago, or an ISO date-time) in Unix ns.

    Args:
        request: The request.

    Returns:
        The time, or ``None`` when the parameter is absent.

    Raises:
        ConfigError: It is neither a duration nor a date-time.
    """
    since = request.query.get("since")
    if since is None:
        return None
    return when_ns(since, "since")


def format_param(request: web.Request, formats: tuple[str, ...]) -> str:
    """Read ``format``, one of ``formats`` (the first when the parameter is absent).

    Args:
        request: The request.
        formats: The formats offered, the default first.

    Returns:
        The format.

    Raises:
        ConfigError: The parameter names another format.
    """
    fmt = request.query.get("format", formats[0])
    if fmt not in formats:
        raise ConfigError(f"format must be one of {', '.join(formats)}, not {fmt!r}")
    return fmt


def limit_param(request: web.Request, default: int, most: int) -> int:
    """Read ``limit``, a whole number from 1 to ``most``.

    Args:
        request: The request.
        default: The value when the parameter is absent.
        most: The largest value allowed.

    Returns:
        The limit.

    Raises:
        ConfigError: The parameter is not such a number.
    """
    text = request.query.get("limit", str(default))
    if not _WHOLE_NUMBER.fullmatch(text) or not 1 <= int(text) <= most:
        raise ConfigError(f"limit must be a whole number from 1 to {most}, not {text!r}")
    return int(text)


def before_param(request: web.Request, form: str, item: str) -> tuple[int, str] | None:
    """Read ``before``, the cursor of a listing's next page, or a time.

    A listing ends a page with ``next_before``, ``"<ns>:<id>"``: the time and id of the page's
    oldest item, to pass as ``before`` for the items ordered before it. ``before`` may also be
    a bare time in Unix nanoseconds: the items before that time.

    Args:
        request: The request.
        form: How the listing's ``next_before`` reads (``<ns>:<trace id>``), for the error.
        item: A regular expression the id must match whole.

    Returns:
        The time and the id (empty for a bare time), or ``None`` when the parameter is absent.

    Raises:
        ConfigError: Neither form, or a time past what the stores hold.

    Example:
        >>> from aiohttp.test_utils import make_mocked_request
        >>> before_param(make_mocked_request("GET", "/?before=17:det-1"), "<ns>:<id>", "det-.+")
        (17, 'det-1')
    """
    value = request.query.get("before")
    if value is None:
        return None
    ns, colon, found = value.partition(":")
    if (
        not _WHOLE_NUMBER.fullmatch(ns)
        or int(ns) > _MAX_NS
        or (colon and not re.fullmatch(item, found))
    ):
        raise ConfigError(
            f"before must be the next_before of an earlier answer ({form}) or a time in Unix "
            f"nanoseconds, not {value!r}"
        )
    return int(ns), found


def strict_json(data: object) -> str:
    """Serialise ``data`` as JSON that every parser reads, a browser's included.

    Python writes NaN and infinities as the bare words ``NaN`` and ``Infinity``, which are not
    JSON: one span attribute holding NaN would make a whole answer unreadable. They are written
    as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` instead.

    Args:
        data: What ``json.dumps`` accepts.

    Returns:
        The JSON text.

    Example:
        >>> strict_json({"cost": float("nan"), "n": [1.5, float("-inf")]})
        '{"cost": "NaN", "n": [1.5, "-Infinity"]}'
    """
    try:
        return json.dumps(data, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: the rare case pays for the walk
        return json.dumps(_finite(data), allow_nan=False)


def _finite(data: object) -> object:
    if isinstance(data, float) and not math.isfinite(data):
        return _NON_FINITE.get(data, "NaN")
    if isinstance(data, dict):
        items = cast("dict[object, object]", data).items()
        return {key: _finite(value) for key, value in items}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in cast("list[object] | tuple[object, ...]", data)]
    return data


def json_response(data: object, *, status: int = 200) -> web.Response:
    """Answer ``data`` as strict JSON (see :func:`strict_json`).

    Args:
        data: The answer.
        status: The HTTP status.

    Returns:
        The response.
    """
    return web.json_response(data, status=status, dumps=strict_json)


def error_response(message: str, status: int) -> web.Response:
    """Answer ``{"error": message}`` with ``status``.

    Args:
        message: What is wrong, in plain words.
        status: The HTTP status.

    Returns:
        The response.
    """
    return json_response({"error": message}, status=status)


def not_found_response(exc: RunNotFoundError) -> web.Response:
    """Answer a run lookup that failed: ``404`` when no run matches, ``409`` when several do.

    Args:
        exc: The lookup's error.

    Returns:
        The response.
    """
    return error_response(str(exc), 404 if exc.matches == 0 else 409)
