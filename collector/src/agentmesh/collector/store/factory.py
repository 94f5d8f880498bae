"""Choose and open the storage backend the settings name.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.settings import CollectorSettings
    >>> async def kind() -> str:
    ...     store = await open_store(CollectorSettings.load(store="memory"))
    ...     await store.close()
    ...     return type(store).__name__
    >>> asyncio.run(kind())
    'MemoryStore'

Only the backend chosen is imported (DuckDB with pyarrow, or asyncpg), so a command reading one
store does not load the others' drivers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentmesh.collector.settings import CollectorSettings
    from agentmesh.collector.store.base import SpanStore

__all__ = ["make_store", "open_store"]


def make_store(settings: CollectorSettings) -> SpanStore:
    """Build the backend ``settings.store`` names, without connecting yet.

    Args:
        settings: The collector's settings (``store``, ``duckdb_path``, ``postgres_*``).

    Returns:
        A :class:`DuckDBStore`, :class:`PostgresStore` or :class:`MemoryStore`; it connects on
        :meth:`~agentmesh.collector.store.base.SpanStore.open` or on first use.
    """
    if settings.store == "postgres":
        from agentmesh.collector.store.postgres_store import PostgresStore

        return PostgresStore(
            settings.postgres_dsn.get_secret_value(),
            schema=settings.postgres_schema,
            min_size=settings.postgres_pool_min_size,
            max_size=settings.postgres_pool_max_size,
            connect_timeout_seconds=settings.postgres_connect_timeout_seconds,
            command_timeout_seconds=settings.postgres_command_timeout_seconds,
        )
    if settings.store == "memory":
        from agentmesh.collector.store.memory_store import MemoryStore

        return MemoryStore()
    from agentmesh.collector.store.duckdb_store import DuckDBStore

    return DuckDBStore(
        settings.duckdb_path,
        dedupe_spans=settings.duckdb_dedupe_spans,
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads,
        checkpoint_threshold=settings.duckdb_checkpoint_threshold,
    )


async def open_store(settings: CollectorSettings) -> SpanStore:
    """Build and open the backend ``settings.store`` names.

    Args:
        settings: The collector's settings.

    Returns:
        The open store; the caller closes it.

    Raises:
        StoreError: The backend cannot be opened (PostgreSQL unreachable, DuckDB file locked…);
            the message says why in plain words.
    """
    store = make_store(settings)
    try:
        return await store.open()
    except BaseException:
        await store.close()
        raise
