"""Open a checkpoint store from a URL: :func:`open_store`.

The scheme picks the backend; the optional backends are imported only when asked for, so a
``memory://`` store needs none of Redis, asyncpg or DuckDB installed.

========================================  ==============================================
URL                                       Store
========================================  ==============================================
``memory://``                             :class:`MemoryCheckpointStore`
``duckdb:///abs/path.duckdb``             ``DuckDBCheckpointStore("/abs/path.duckdb")``
``duckdb://relative.duckdb``              ``DuckDBCheckpointStore("relative.duckdb")``
``redis://host:port/db``, ``rediss://…``  ``RedisCheckpointStore(url)``
``postgresql://…``, ``postgres://…``      ``PostgresCheckpointStore(url)``
========================================  ==============================================

A store opened with a non-default schema or key prefix is named with a query option, taken out
of the URL before the driver sees it: ``postgresql://…/db?schema=team_a`` is
``PostgresCheckpointStore("postgresql://…/db", schema="team_a")``, and
``redis://host:6379/0?prefix=team:a`` is ``RedisCheckpointStore("redis://host:6379/0",
prefix="team:a")``. The stores name themselves the same way (their ``location``).

Example:
    >>> open_store("memory://").name
    'memory'
    >>> try:
    ...     open_store("mysql://localhost/db")
    ... except ConfigError as exc:
    ...     print(str(exc).split("; ")[1])
    supported: memory://, duckdb://, redis://, rediss://, postgresql://, postgres://
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from agentmesh.checkpoint.store._url_options import pop_query_option
from agentmesh.checkpoint.store.base import CheckpointStore
from agentmesh.checkpoint.store.memory import MemoryCheckpointStore
from agentmesh.core.errors import CheckpointError, ConfigError
from agentmesh.core.urls import masked_url

__all__ = ["SUPPORTED_SCHEMES", "open_store"]

SUPPORTED_SCHEMES: tuple[str, ...] = (
    "memory",
    "duckdb",
    "redis",
    "rediss",
    "postgresql",
    "postgres",
)
"""The URL schemes :func:`open_store` accepts."""

_BACKENDS: dict[str, tuple[str, str, str, str]] = {
    # scheme: (module, class, extra, third-party package the backend imports)
    "duckdb": ("agentmesh.checkpoint.store.duckdb", "DuckDBCheckpointStore", "duckdb", "duckdb"),
    "redis": ("agentmesh.checkpoint.store.redis", "RedisCheckpointStore", "redis", "redis"),
    "postgres": (
        "agentmesh.checkpoint.store.postgres",
        "PostgresCheckpointStore",
        "postgres",
        "asyncpg",
    ),
}


_URL_OPTIONS: dict[str, tuple[str, str]] = {
    # backend: (query option naming a constructor argument, what the option is)
    "postgres": ("schema", "the schema of its tables"),
    "redis": ("prefix", "the prefix of its keys"),
}


def _url_options(backend: str, url: str) -> tuple[str, dict[str, str]]:
    """Take the backend's store option out of the URL; refuse another backend's option.

    Returns:
        The URL for the driver, and the store's keyword arguments.
    """
    option, _ = _URL_OPTIONS[backend]
    connect, value = pop_query_option(url, option)
    for other, (name, what) in _URL_OPTIONS.items():
        if other != backend and pop_query_option(connect, name)[1] is not None:
            raise ConfigError(
                f"checkpoint store URL {masked_url(url)!r}: {name}= ({what}) is an option of "
                f"{other} stores; a {backend} store takes {option}="
            )
    return connect, {} if value is None else {option: value}


def _construct(backend: str, url: str) -> CheckpointStore:
    """Create a network backend's store from its URL and URL options."""
    connect, options = _url_options(backend, url)
    cls = _backend_class(backend, url)
    try:
        return cast(CheckpointStore, cls(connect, **options))
    except CheckpointError as exc:  # a schema or prefix the store refuses
        raise ConfigError(f"checkpoint store URL {masked_url(url)!r}: {exc}") from exc


def _backend_class(backend: str, url: str) -> Any:
    """Import a backend's store class lazily, translating a missing dependency."""
    module_name, class_name, extra, package = _BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == package or exc.name.startswith(package + ".")):
            raise ConfigError(
                f"checkpoint store URL {masked_url(url)!r} needs the {backend} backend, whose "
                f"dependency {package!r} is not installed; install it with: "
                f"pip install 'agentmesh-checkpoint[{extra}]'"
            ) from exc
        if exc.name == module_name:
            raise ConfigError(
                f"checkpoint store URL {masked_url(url)!r}: the {backend} backend "
                f"({module_name}) is not part of this installation of agentmesh-checkpoint"
            ) from exc
        raise
    return getattr(module, class_name)


def open_store(url: str) -> CheckpointStore:
    """Create (not yet open) the checkpoint store a URL names.

    Use the result as an async context manager: ``async with open_store(url) as store:``.

    Args:
        url: ``memory://``, ``duckdb:///abs/path.duckdb`` (or ``duckdb://relative.duckdb``),
            ``redis://host:port/db`` (or ``rediss://``; ``?prefix=`` for another key prefix),
            ``postgresql://user@host/db`` (or ``postgres://``; ``?schema=`` for another
            schema).

    Returns:
        The store, not yet entered.

    Raises:
        ConfigError: The scheme is not supported, the URL lacks a path, an option is not one
            the store takes (or has a value it refuses), or the backend's optional dependency
            is not installed (the message says which extra to install).
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SUPPORTED_SCHEMES:
        supported = ", ".join(f"{name}://" for name in SUPPORTED_SCHEMES)
        raise ConfigError(
            f"checkpoint store URL {masked_url(url)!r} has an unsupported scheme; "
            f"supported: {supported}"
        )
    if scheme == "memory":
        return MemoryCheckpointStore()
    if scheme == "duckdb":
        if not rest:
            raise ConfigError(
                f"checkpoint store URL {url!r} names no DuckDB file; use "
                "duckdb:///absolute/path.duckdb or duckdb://relative/path.duckdb"
            )
        return cast(CheckpointStore, _backend_class("duckdb", url)(rest))
    return _construct("redis" if scheme in ("redis", "rediss") else "postgres", url)
