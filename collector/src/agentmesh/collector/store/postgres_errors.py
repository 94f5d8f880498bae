"""Plain-words errors for the PostgreSQL store: asyncpg and socket failures → ``StoreError``.

A DSN or connection option asyncpg cannot use (``mysql://…``, an unknown ``sslmode``, a
certificate file that is missing) is a :class:`~agentmesh.core.errors.ConfigError` instead: not
a lost connection, and not worth trying again.

Example:
    >>> server_address("postgresql://app:secret@db.internal:6543/agentmesh")
    'db.internal:6543'
    >>> str(store_error(ConnectionRefusedError(111, "Connection refused"), "127.0.0.1:5432"))
    'cannot reach PostgreSQL at 127.0.0.1:5432: connection refused'
    >>> wrong = asyncpg.ClientConfigurationError("invalid DSN: scheme is expected to be …")
    >>> connection_lost(wrong), str(store_error(wrong, "127.0.0.1:5432"))
    (False, 'invalid configuration: PostgreSQL connection: invalid DSN: scheme is expected to be …')
"""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg

from agentmesh.core.errors import ConfigError, StoreError, StoreUnavailableError
from agentmesh.core.socket_errors import socket_reason

__all__ = ["connection_lost", "server_address", "store_error"]

_NOT_NOW = (
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,  # starting up, shutting down, in recovery
    asyncpg.CrashShutdownError,  # another backend crashed: the server is restarting
    asyncpg.DiskFullError,  # room comes back (the operator, or retention)
    asyncpg.OutOfMemoryError,
    asyncpg.ReadOnlySQLTransactionError,  # a fail-over left this session on a standby
    asyncpg.SerializationError,  # a transaction lost a race: trying it again is the remedy
    asyncpg.DeadlockDetectedError,
)
"""Server answers that mean "not now": the same call may succeed later. Other refusals (a
value or statement the server rejects, a statement timeout, a configured limit) would fail
the same way again: they are not retried."""


def connection_lost(exc: BaseException) -> bool:
    """Tell whether a failure means the connection died (so the call may be tried again).

    Args:
        exc: What asyncpg or the socket raised.

    Returns:
        ``True`` for a reset or closed connection, a server shutting down, or asyncpg finding
        its connection in a broken state; ``False`` for connection options asyncpg cannot use
        (``asyncpg.ClientConfigurationError``), which no new connection would fix.
    """
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return False
    return isinstance(
        exc,
        ConnectionError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | asyncpg.PostgresConnectionError
        | asyncpg.AdminShutdownError,
    )


def server_address(dsn: str) -> str:
    """Return ``host:port`` of a DSN, without user or password, for messages.

    Args:
        dsn: A ``postgresql://`` URL.

    Returns:
        The address (port 5432 when not given), or ``the configured server`` when the DSN
        names none.
    """
    try:
        parts = urlsplit(dsn)
        host = parts.hostname
        port = parts.port or 5432
    except ValueError:
        return "the configured server"
    return f"{host}:{port}" if host else "the configured server"


def store_error(exc: BaseException, address: str) -> StoreError | ConfigError:
    """Describe a failure of PostgreSQL (or of reaching it) in plain words.

    Args:
        exc: What asyncpg or the socket raised.
        address: ``host:port`` of the server.

    Returns:
        The error to raise (``from exc``): a :class:`StoreUnavailableError` when the server
        cannot be reached, the connection was lost or the server says "not now" (too many
        connections, starting up, disk full, out of memory, read-only after a fail-over, a
        serialization failure or deadlock), so the caller may try again; a
        :class:`~agentmesh.core.errors.ConfigError` when asyncpg cannot use the DSN or a
        connection option (no server was asked: the address may be a guess).
    """
    if isinstance(exc, StoreError | ConfigError):
        return exc
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return ConfigError(f"invalid configuration: PostgreSQL connection: {_first_line(exc)}")
    if isinstance(exc, OSError):  # includes TimeoutError and ConnectionRefusedError
        return StoreUnavailableError(f"cannot reach PostgreSQL at {address}: {socket_reason(exc)}")
    if connection_lost(exc):
        return StoreUnavailableError(
            f"lost the connection to PostgreSQL at {address}: {_first_line(exc)}"
        )
    if isinstance(exc, _NOT_NOW):
        return StoreUnavailableError(f"PostgreSQL at {address}: {_first_line(exc)}")
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"PostgreSQL at {address}: {_first_line(exc)}")
    return StoreError(f"PostgreSQL at {address}: {type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
