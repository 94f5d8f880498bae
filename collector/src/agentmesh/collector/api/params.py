"""What every query API route reads and answers alike: ``since``, ``limit``, plain-word errors."""

from __future__ import annotations

import time

from aiohttp import web

from agentmesh.collector.durations import parse_duration
from agentmesh.collector.store.lookup import RunNotFoundError
from agentmesh.core import ConfigError

__all__ = ["error_response", "limit_param", "not_found_response", "since_param"]


def since_param(request: web.Request) -> int | None:
    """Read ``since`` (``90s``, ``15m``, ``2h``, ``7d``) as a time in Unix nanoseconds.

    Args:
        request: The request.

    Returns:
        Now minus the duration, or ``None`` when the parameter is absent.

    Raises:
        ConfigError: The duration cannot be read.
    """
    since = request.query.get("since")
    if since is None:
        return None
    try:
        return time.time_ns() - parse_duration(since)
    except ConfigError as exc:
        raise ConfigError(f"since {exc}") from exc


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


def error_response(message: str, status: int) -> web.Response:
    """Answer ``{"error": message}`` with ``status``.

    Args:
        message: What is wrong, in plain words.
        status: The HTTP status.

    Returns:
        The response.
    """
    return web.json_response({"error": message}, status=status)


def not_found_response(exc: RunNotFoundError) -> web.Response:
    """Answer a run lookup that failed: ``404`` when no run matches, ``409`` when several do.

    Args:
        exc: The lookup's error.

    Returns:
        The response.
    """
    return error_response(str(exc), 404 if exc.matches == 0 else 409)
