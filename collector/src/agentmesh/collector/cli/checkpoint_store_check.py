"""Before ``agentmesh resume`` runs the app: can the plan's checkpoint store serve it?

A resume plan names where the run's checkpoints are stored (``checkpoint_store``: the store's
URL, password masked). :func:`store_problem` says, in plain words, why the app could not find
its checkpoint there, or ``None``:

- an in-process store (``memory://``, DuckDB's ``:memory:``): its checkpoints were gone when the
  process that ran the run exited (:func:`in_process`);
- a DuckDB file that does not exist here;
- a Redis server that does not answer a ``PING``, or a PostgreSQL server that does not accept a
  connection, within :data:`CHECK_TIMEOUT_SECONDS`; a PostgreSQL database that does not exist.

The plan's URL carries no password: a server that answers but refuses the credentials counts as
reachable (pass the app's own URL as ``connect_url`` when it names the same store, and the check
logs in as the app will). A store of another kind is not checked. The drivers are imported by
the check that needs them, never with this module.

Example:
    >>> in_process("memory://"), in_process("duckdb:///var/lib/app/threads.duckdb")
    (True, False)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentmesh.core.socket_errors import socket_reason
from agentmesh.core.urls import MASK

__all__ = ["CHECK_TIMEOUT_SECONDS", "in_process", "plain", "store_problem"]

CHECK_TIMEOUT_SECONDS: Final = 2.0
"""How long a server may take to answer the check."""

_DUCKDB_IN_MEMORY: Final = ("", ":memory:")
"""DuckDB paths that name no file: a database in the process's memory."""


def plain(text: str) -> str:
    r"""Make text from spans safe to print as it is: control characters written as ``\xNN``.

    Args:
        text: A store URL or other text a sender chose.

    Returns:
        The text, printable.
    """
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _scheme_and_rest(store_url: str) -> tuple[str, str]:
    scheme, _, rest = store_url.partition(":")
    return scheme.lower(), rest.removeprefix("//")


def in_process(store_url: str) -> bool:
    """Tell whether a store lives in the memory of one process (gone when it exits).

    Args:
        store_url: The plan's ``checkpoint_store``.

    Returns:
        ``True`` for ``memory://`` and DuckDB's in-memory database.
    """
    scheme, rest = _scheme_and_rest(store_url)
    return scheme == "memory" or (scheme == "duckdb" and rest in _DUCKDB_IN_MEMORY)


def _without_masked_password(url: str) -> str:
    """The URL without the password the plan masked (the server then asks for one)."""
    try:
        parts = urlsplit(url)
        password = parts.password
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url
    if password == MASK:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}@{host}" if user else host)
    kept = [(key, value) for key, value in pairs if value != MASK]
    if len(kept) != len(pairs):
        parts = parts._replace(query=urlencode(kept))
    return urlunsplit(parts)


_STORE_OPTIONS: Final = frozenset({"prefix", "schema"})
"""Query options a checkpoint store reads itself (its key prefix, its schema), not the driver."""


def _without_store_options(url: str) -> str:
    """The URL the driver connects to: without the store's own query options."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url
    kept = [(key, value) for key, value in pairs if key not in _STORE_OPTIONS]
    if len(kept) == len(pairs):
        return url
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _cause(exc: BaseException, timeout: float) -> str:
    """The socket failure under a driver's error, in plain words, else the driver's words."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return f"no answer within {timeout:g} s"
        if isinstance(seen, OSError):
            return socket_reason(seen)
        seen = seen.__cause__ or seen.__context__
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _duckdb(store_url: str, rest: str) -> str | None:
    path = Path(rest)
    if path.is_file():
        return None
    what = "is not a file" if path.exists() else "does not exist here"
    return (
        f"its DuckDB checkpoint file {plain(rest)} {what}: run `agentmesh resume` on the machine "
        "(or in the container) where the run's app ran, or copy the file here"
    )


def _redis(store_url: str, connect_url: str, timeout: float) -> str | None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        client = redis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            connect_url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:
        return f"its Redis checkpoint store {plain(store_url)} is not a Redis URL ({exc})"
    try:
        client.ping()  # pyright: ignore[reportUnknownMemberType]
    except redis.AuthenticationError:
        return None  # it answered: the password is the app's to give
    except redis.TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except redis.ConnectionError as exc:
        reason = _cause(exc, timeout)
    except redis.RedisError as exc:
        return (
            f"its Redis checkpoint store {plain(store_url)} answered the ping with an error "
            f"({plain(_first_line(exc))}): check the URL the run used"
        )
    else:
        return None
    finally:
        client.close()
    return (
        f"its Redis checkpoint store {plain(store_url)} did not answer a ping ({plain(reason)}): "
        "start it, or make it reachable from here, and resume again"
    )


def _postgres(store_url: str, connect_url: str, timeout: float) -> str | None:
    import asyncpg

    async def connect() -> None:
        connection = await asyncpg.connect(connect_url, timeout=timeout)
        await connection.close(timeout=timeout)

    where = f"its PostgreSQL checkpoint store {plain(store_url)}"
    try:
        asyncio.run(asyncio.wait_for(connect(), timeout * 2))
    except asyncpg.InvalidCatalogNameError as exc:
        return f"{where} has no such database ({plain(_first_line(exc))}): check the URL"
    except asyncpg.CannotConnectNowError as exc:
        reason = _first_line(exc)
    except OSError as exc:  # refused, unknown host, timed out (TimeoutError)
        reason = _cause(exc, timeout)
    except ValueError as exc:  # asyncpg.ClientConfigurationError: a DSN it cannot use
        return f"{where} is not a PostgreSQL URL asyncpg can use ({plain(_first_line(exc))})"
    except (asyncpg.PostgresError, asyncpg.InterfaceError):
        return None  # it answered (a refused login: the password is the app's to give)
    else:
        return None
    return (
        f"{where} did not accept a connection ({plain(reason)}): start it, or make it "
        "reachable from here, and resume again"
    )


def store_problem(
    store_url: str, *, connect_url: str | None = None, timeout: float = CHECK_TIMEOUT_SECONDS
) -> str | None:
    """Say why the app could not reach the checkpoints of a plan's store from here.

    In-process stores are not checked here (see :func:`in_process`).

    Args:
        store_url: The plan's ``checkpoint_store`` (a masked URL).
        connect_url: The same store's URL with its password (the app's
            ``AGENTMESH_CHECKPOINT_URL``), to log in as the app will.
        timeout: How long a server may take to answer, in seconds.

    Returns:
        The problem in plain words (naming the store by its masked URL and what to do), or
        ``None`` when the store answered or is of a kind that is not checked.
    """
    scheme, rest = _scheme_and_rest(store_url)
    if scheme == "duckdb" and rest not in _DUCKDB_IN_MEMORY:
        return _duckdb(store_url, rest)
    connect = _without_store_options(connect_url or _without_masked_password(store_url))
    if scheme in ("redis", "rediss"):
        return _redis(store_url, connect, timeout)
    if scheme in ("postgresql", "postgres"):
        return _postgres(store_url, connect, timeout)
    return None
