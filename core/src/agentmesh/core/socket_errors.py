"""A socket failure in plain words: :func:`socket_reason`.

Example:
    >>> socket_reason(ConnectionRefusedError(111, "Connection refused"))
    'connection refused'
    >>> socket_reason(TimeoutError())
    'no answer in time'
"""

from __future__ import annotations

import socket

__all__ = ["socket_reason"]


def socket_reason(exc: OSError) -> str:
    """Say why a connection failed, briefly and in lower case.

    Args:
        exc: What the socket (or asyncio's connection helpers) raised.

    Returns:
        ``connection refused``, ``unknown host``, ``no answer in time``, or the system's
        message.
    """
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
