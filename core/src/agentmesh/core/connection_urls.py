"""Redis URLs, PostgreSQL DSNs and HTTP URLs checked before a driver or a client is given them.

redis-py refuses a malformed URL only when a client is made, with a bare ``ValueError``, and
reads a database that is not a number (``redis://host:6379/abc``) as database 0; asyncpg
refuses a malformed DSN only when it connects, with an error that reads like a lost
connection. :func:`redis_url_problem` and :func:`postgres_dsn_problem` say what is wrong in
plain words, for settings validators and store constructors to raise a
:class:`~agentmesh.core.errors.ConfigError` with. They accept what the drivers accept
(redis-py's ``redis://``, ``rediss://`` and ``unix://`` URLs; asyncpg's ``postgresql://`` and
``postgres://`` URLs, several hosts included) and never repeat the URL, which may hold a
password. :func:`http_url_problem` does the same for the ``http://`` and ``https://`` URLs of
a collector an application talks to (its control document, its route table).

Example:
    >>> redis_url_problem("redis://:secret@cache.internal:6380/2") is None
    True
    >>> redis_url_problem("redis://127.0.0.1:6379/abc")
    'the database must be a number, like redis://host:6379/0'
    >>> redis_url_problem("http://127.0.0.1:6379/7")
    'expected a redis://, rediss:// or unix:// URL, like redis://host:6379/0 (not http://)'
    >>> postgres_dsn_problem("postgresql://app@db.internal:5432/agentmesh") is None
    True
    >>> postgres_dsn_problem("postgresql://app@db.internal:port/agentmesh")
    'the port must be a number from 1 to 65535'
    >>> http_url_problem("http://collector:4318") is None
    True
    >>> http_url_problem("ftp://collector:4318")
    'expected an http:// or https:// URL, like http://host:4318 (not ftp://)'
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["http_url_problem", "postgres_dsn_problem", "redis_url_problem"]

_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
"""What redis-py's ``from_url`` takes (case-insensitive)."""

_REDIS_DB_PATH: Final = re.compile(r"/\d+/?")
"""A database number as the path of a ``redis://`` URL (``/0``)."""

_POSTGRES_SCHEMES: Final = ("postgresql", "postgres")
"""What asyncpg takes."""

_IPV6_HOST: Final = re.compile(r"(?:\[([^\]]+)\])(?::([0-9]+))?")
"""An IPv6 host of a DSN, with its port: asyncpg's own pattern."""

_SSL_MODES: Final = frozenset({"disable", "allow", "prefer", "require", "verify_ca", "verify_full"})
"""``sslmode`` values asyncpg knows (``-`` read as ``_``)."""

_HTTP_SCHEMES: Final = ("http://", "https://")
"""What an HTTP client takes (case-insensitive)."""

_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,30})://")
"""A scheme worth naming in a message (nothing else of a refused URL is repeated)."""


def _not_scheme(url: str) -> str:
    match = _SCHEME.match(url)
    return f" (not {match.group(1).lower()}://)" if match else ""


def _is_number(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def redis_url_problem(url: str) -> str | None:
    """Say what is wrong with a Redis URL, or ``None`` when redis-py can use it as it is.

    Refused: another scheme than ``redis://``, ``rediss://`` or ``unix://``; a port that is
    not a number from 0 to 65535; a database (the path, or ``?db=``) that is not a number,
    which redis-py would quietly read as database 0; a ``unix://`` URL without a socket path.

    Args:
        url: The URL.

    Returns:
        The problem in words (the URL is not repeated: it may hold a password), or ``None``.
    """
    if not url.lower().startswith(_REDIS_SCHEMES):
        return (
            "expected a redis://, rediss:// or unix:// URL, like redis://host:6379/0"
            + _not_scheme(url)
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    db = parse_qs(parts.query).get("db")
    if db is not None and not _is_number(db[0]):
        return "the db query parameter must be a number, like ?db=0"
    if parts.scheme == "unix":
        if not parts.path:
            return "a unix:// URL needs the socket's path, like unix:///run/redis/redis.sock"
        return None
    path = unquote(parts.path)
    if db is None and path not in ("", "/") and _REDIS_DB_PATH.fullmatch(path) is None:
        return "the database must be a number, like redis://host:6379/0"
    return None


def _port_problem(text: str) -> str | None:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        return "the port must be a number from 1 to 65535"
    return None


def _hosts_problem(hostspecs: str) -> str | None:
    """The hosts of a DSN (``host:port``, ``[v6]:port``, ``/socket/dir``), as asyncpg reads them."""
    for hostspec in hostspecs.split(","):
        if not hostspec:
            return "the list of hosts has an empty item"
        if hostspec.startswith("/"):
            continue
        if hostspec.startswith("["):
            match = _IPV6_HOST.match(hostspec)
            if match is None:
                return "an IPv6 host must be written in brackets, like [::1]:5432"
            port = match.group(2)
        else:
            port = unquote(hostspec.partition(":")[2])
        if port:
            problem = _port_problem(port)
            if problem is not None:
                return problem
    return None


def postgres_dsn_problem(dsn: str) -> str | None:
    """Say what is wrong with a PostgreSQL DSN, or ``None`` when asyncpg can use it as it is.

    asyncpg takes ``postgresql://`` and ``postgres://`` URLs (several hosts separated by
    commas, a Unix socket directory as the host or as ``?host=``), not libpq's
    ``key=value`` form; an empty DSN leaves everything to the ``PG*`` variables. Refused: another
    form or scheme, a query string that is not ``key=value`` pairs, a port that is not a number
    from 1 to 65535, an ``sslmode`` asyncpg does not know.

    Args:
        dsn: The DSN.

    Returns:
        The problem in words (the DSN is not repeated: it may hold a password), or ``None``.
    """
    if not dsn:
        return None
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in _POSTGRES_SCHEMES:
        libpq = "; key=value DSNs are not supported" if "://" not in dsn and "=" in dsn else ""
        return (
            "expected a postgresql:// or postgres:// URL, like "
            f"postgresql://user@host:5432/database{_not_scheme(dsn)}{libpq}"
        )
    query: dict[str, list[str]] = {}
    if parts.query:
        try:
            query = parse_qs(parts.query, strict_parsing=True)
        except ValueError:
            return "the query string must be key=value pairs joined by &, like ?sslmode=require"
    hostspecs = parts.netloc.partition("@")[2] if "@" in parts.netloc else parts.netloc
    if hostspecs:
        problem = _hosts_problem(hostspecs)
        if problem is not None:
            return problem
    if "port" in query:
        for port in query["port"][-1].split(","):
            problem = _port_problem(port)
            if problem is not None:
                return problem
    if "sslmode" in query:
        mode = query["sslmode"][-1]
        if mode.replace("-", "_") not in _SSL_MODES:
            return (
                f"sslmode {mode!r} is not one of disable, allow, prefer, require, verify-ca, "
                "verify-full"
            )
    return None


def http_url_problem(url: str, *, example: str = "http://host:4318") -> str | None:
    """Say what is wrong with an ``http://`` or ``https://`` URL, or ``None`` when it can be used.

    Refused: another scheme (or none), white space, no host, a port that is not a number from
    1 to 65535, brackets that do not close around an IPv6 address.

    Args:
        url: The URL.
        example: A URL of the right form, for the message.

    Returns:
        The problem in words (the URL is not repeated: it may hold a password), or ``None``.

    Example:
        >>> http_url_problem("http://collector:port")
        'the port must be a number from 1 to 65535'
        >>> http_url_problem("https://:4318")
        'no host in the URL, like http://host:4318'
    """
    if not url.lower().startswith(_HTTP_SCHEMES):
        return f"expected an http:// or https:// URL, like {example}{_not_scheme(url)}"
    if any(character.isspace() for character in url):
        return "the URL holds white space"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        if "port" in str(exc).lower():  # not a number, or out of range
            return "the port must be a number from 1 to 65535"
        return f"not a valid URL: {exc}"
    if not parts.hostname:
        return f"no host in the URL, like {example}"
    if port == 0:
        return "the port must be a number from 1 to 65535"
    return None
