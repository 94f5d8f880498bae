"""What every query API route reads and answers alike: ``since``, ``limit``, strict JSON, errors."""

from __future__ import annotations

import json
import math
from typing import cast

from aiohttp import web

from agentmesh.collector.durations import when_ns
from agentmesh.collector.store.lookup import RunNotFoundError
from agentmesh.core import ConfigError

__all__ = [
    "error_response",
    "format_param",
    "json_response",
    "limit_param",
    "not_found_response",
    "since_param",
    "strict_json",
]

_NON_FINITE: dict[float, str] = {math.inf: "Infinity", -math.inf: "-Infinity"}


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
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise ConfigError(f"limit must be a whole number from 1 to {most}, not {text!r}")
    return int(text)


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
