"""A socket failure in plain words: :func:`socket_reason`.

Example:
    >>> socket_reason(ConnectionRefusedError(111, "Connection refused"))
    'connection refused'
    >>> socket_reason(TimeoutError())
    'no answer in time'
"""

from __future__ import annotations

import socket
import ssl

__all__ = ["socket_reason"]


def socket_reason(exc: OSError) -> str:
    """Say why a connection failed, briefly (lower case, but for TLS failures).

    Args:
        exc: What the socket (or asyncio's connection helpers) raised.

    Returns:
        ``connection refused``, ``unknown host``, ``no answer in time``, a TLS failure as
        :mod:`ssl` words it (``[SSL: CERTIFICATE_VERIFY_FAILED] …``), or the system's message.
    """
    if isinstance(exc, ssl.SSLError):  # ssl's own words name the check that failed
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
