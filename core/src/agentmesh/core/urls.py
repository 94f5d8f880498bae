"""URLs in messages and spans: :func:`masked_url` hides a password, keeps the rest for the reader.

:func:`checkpoint_store_url` names a checkpoint store the way spans and resume plans record it
(``agentmesh.handoff.checkpoint.store_url``): masked, and spelled one way per store, so two
spellings of one store compare equal.

Example:
    >>> masked_url("postgresql://app:s3cret@db.internal:5432/agentmesh")
    'postgresql://app:***@db.internal:5432/agentmesh'
    >>> masked_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    >>> checkpoint_store_url("postgres://app:s3cret@db.internal/agentmesh?password=s3cret")
    'postgresql://app:***@db.internal/agentmesh?password=***'
"""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "MEMORY_STORE_URL", "checkpoint_store_url", "masked_url"]

MASK: Final = "***"
"""What a masked password reads as."""

MEMORY_STORE_URL: Final = "memory://"
"""How an in-process checkpoint store is named (its checkpoints die with the process)."""

_SCHEMES: Final = {"postgres": "postgresql"}
"""Schemes with two spellings, and the one recorded."""

_SECRET_PARAMETERS: Final = frozenset({"password", "sslpassword"})
"""Query parameters that carry a password (redis-py and libpq accept them)."""


def masked_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``.

    Args:
        url: Any URL (one that does not parse is returned as it is).

    Returns:
        The URL, safe to log.
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc[1]}"))
    except ValueError:
        return url


def _masked_query(url: str) -> str:
    """Mask the values of password query parameters (``?password=…``)."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url
    if not any(key.lower() in _SECRET_PARAMETERS for key, _ in pairs):
        return url
    masked = [(k, MASK if k.lower() in _SECRET_PARAMETERS else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(masked, safe="*/:")))


def checkpoint_store_url(url: str) -> str:
    """Name a checkpoint store as spans and resume plans record it: its URL, safe to record.

    Passwords are masked (in the user part and in ``password`` query parameters), the scheme
    is lower-cased (``postgres://`` is written ``postgresql://``), an in-process store is
    ``memory://``, and a DuckDB file's path is made absolute (``duckdb:///abs/path.duckdb``,
    from the current directory), so that two spellings of one store compare equal.

    Args:
        url: A checkpoint store URL: ``memory://``, ``duckdb:///path.duckdb`` (or
            ``duckdb://relative.duckdb``), ``redis://…`` (``rediss://…``), ``postgresql://…``.

    Returns:
        The store's URL, password masked.

    Example:
        >>> checkpoint_store_url("memory:"), checkpoint_store_url("duckdb:///var/ck.duckdb")
        ('memory://', 'duckdb:///var/ck.duckdb')
    """
    text = url.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon:
        return masked_url(text)
    if scheme == "memory":
        return MEMORY_STORE_URL
    rest = rest.removeprefix("//")
    if scheme == "duckdb":
        if rest in ("", ":memory:"):
            return f"duckdb://{rest}"
        path = os.path.abspath(rest)
        if path.startswith("//"):  # duckdb:////abs (a slash too many) names /abs too
            path = "/" + path.lstrip("/")
        return f"duckdb://{path}"
    return _masked_query(masked_url(f"{_SCHEMES.get(scheme, scheme)}://{rest}"))
