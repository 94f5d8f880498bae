"""Plain-words errors for the Redis hot state: redis-py and socket failures → ``StoreError``.

Example:
    >>> redis_address("redis://:secret@cache.internal:6380/2")
    'cache.internal:6380'
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import redis.exceptions

from agentmesh.core.errors import StoreError

__all__ = ["redis_address", "redis_error"]


def redis_address(url: str) -> str:
    """Return ``host:port`` of a Redis URL, without credentials, for messages.

    Args:
        url: ``redis://[user:password@]host:port/db`` (or ``rediss://``, ``unix://``).

    Returns:
        The address (port 6379 when not given), or the socket path of a ``unix://`` URL.
    """
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        return "the configured server"


def _root(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def redis_error(exc: BaseException, address: str, timeout_seconds: float) -> StoreError:
    """Describe a failure of Redis (or of reaching it) in plain words.

    Args:
        exc: What redis-py or the socket raised.
        address: ``host:port`` of the server.
        timeout_seconds: The command timeout in force (named when it ran out).

    Returns:
        The error to raise (``from exc``).
    """
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return StoreError(f"Redis at {address} refused the login: {_first_line(exc)}")
    if isinstance(exc, redis.exceptions.TimeoutError | TimeoutError):
        return StoreError(f"Redis at {address} did not answer within {timeout_seconds:g} s")
    if isinstance(exc, redis.exceptions.ConnectionError | OSError):
        root = _root(exc)
        if isinstance(root, ConnectionRefusedError):
            reason = "connection refused"
        elif isinstance(root, socket.gaierror):
            reason = "unknown host"
        elif isinstance(root, TimeoutError):
            reason = f"no answer within {timeout_seconds:g} s"
        else:
            reason = _first_line(exc)
        return StoreError(f"cannot reach Redis at {address}: {reason}")
    return StoreError(f"Redis at {address}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
