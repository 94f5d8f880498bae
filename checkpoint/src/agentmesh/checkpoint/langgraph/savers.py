"""The AgentMesh LangGraph savers, one per backend, each with ``from_conn_string``.

=====================  ======================================  ============================
Saver                  ``from_conn_string(...)``               Sync methods use
=====================  ======================================  ============================
:class:`MemorySaver`   ``"memory://"``                         the store's loop
:class:`DuckDBSaver`   a path or ``"duckdb:///abs/path"``      ``SyncDuckDBCheckpointStore``
:class:`RedisSaver`    ``"redis://host:port/db"``, ``prefix``  ``SyncRedisCheckpointStore``
:class:`PostgresSaver` a DSN, ``schema``, pool sizes           the store's loop
=====================  ======================================  ============================

``from_conn_string`` returns a :class:`SaverContext`: ``with`` it for sync use (``invoke``,
``stream``), ``async with`` it for async use (``ainvoke``, ``astream``). The backend modules
are imported only when their saver is opened, so each needs only its own extra installed.

Example:
    >>> from langgraph.graph import START, StateGraph
    >>> from typing_extensions import TypedDict
    >>> class State(TypedDict):
    ...     count: int
    >>> builder = StateGraph(State)
    >>> _ = builder.add_node("inc", lambda state: {"count": state["count"] + 1})
    >>> _ = builder.add_edge(START, "inc")
    >>> with MemorySaver.from_conn_string() as saver:
    ...     graph = builder.compile(checkpointer=saver)
    ...     config = {"configurable": {"thread_id": "t1"}}
    ...     graph.invoke({"count": 1}, config)["count"], graph.get_state(config).values
    (2, {'count': 2})
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, cast

from langgraph.checkpoint.serde.base import SerializerProtocol

from agentmesh.checkpoint.langgraph._chunks import LIST_MIN_BYTES
from agentmesh.checkpoint.langgraph._compress import DEFAULT_THRESHOLD
from agentmesh.checkpoint.langgraph._context import SaverContext
from agentmesh.checkpoint.langgraph._fence import DEFAULT_CAPACITY
from agentmesh.checkpoint.langgraph._lanes import DEFAULT_LANES, LaneStore
from agentmesh.checkpoint.langgraph._saver import AgentMeshSaver
from agentmesh.checkpoint.langgraph._sync import SyncCheckpointStore, SyncTwin
from agentmesh.checkpoint.store.base import DEFAULT_COMMAND_TIMEOUT_SECONDS, CheckpointStore
from agentmesh.checkpoint.store.memory import MemoryCheckpointStore, SyncMemoryCheckpointStore
from agentmesh.core.errors import ConfigError

__all__ = ["DuckDBSaver", "MemorySaver", "PostgresSaver", "RedisSaver"]


def _open_twin(make: Callable[[], object]) -> SyncCheckpointStore:
    """Create and open a synchronous store (entered when it is a context manager)."""
    store = make()
    enter = getattr(store, "__enter__", None)
    opened = enter() if callable(enter) else store
    return cast(SyncCheckpointStore, opened)


def _close_twin(store: SyncCheckpointStore) -> None:
    """Close a synchronous store opened by :func:`_open_twin`."""
    exit_ = getattr(store, "__exit__", None)
    if callable(exit_):
        exit_(None, None, None)
        return
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _twin(make: Callable[[], object]) -> SyncTwin:
    return SyncTwin(opener=lambda: _open_twin(make), closer=_close_twin)


class MemorySaver(AgentMeshSaver):
    """A saver on the in-process :class:`MemoryCheckpointStore` (tests, notebooks).

    Everything is lost when the context exits.
    """

    @classmethod
    def from_conn_string(
        cls,
        conn_string: str = "memory://",
        *,
        serde: SerializerProtocol | None = None,
        compress_threshold: int | None = DEFAULT_THRESHOLD,
        chunk_threshold: int | None = LIST_MIN_BYTES,
        fence_capacity: int = DEFAULT_CAPACITY,
    ) -> SaverContext[Self]:
        """A context opening a memory store and a saver on it.

        Args:
            conn_string: ``"memory://"``.
            serde: The serializer (StrictJsonPlusSerializer by default).
            compress_threshold: zstd-compress payloads above this many bytes (None: never).
            chunk_threshold: Store lists of at least this many bytes as content-addressed
                chunks, so a growing history is stored about once (None: never).
            fence_capacity: Entries the fence keeps.

        Raises:
            ConfigError: Another URL than ``memory://``.
        """
        if conn_string not in ("memory://", "memory:", ""):
            raise ConfigError(f"MemorySaver takes 'memory://', not {conn_string!r}")

        def make_saver(store: CheckpointStore, loop: Any) -> Self:
            return cls(
                store,
                serde=serde,
                loop=loop,
                # sync calls run in the caller's thread, even inside the store's own event loop
                sync_store=SyncTwin(
                    store=SyncMemoryCheckpointStore(cast("MemoryCheckpointStore", store))
                ),
                compress_threshold=compress_threshold,
                chunk_threshold=chunk_threshold,
                fence_capacity=fence_capacity,
            )

        return SaverContext("memory", MemoryCheckpointStore, make_saver)


def _duckdb_path(path: str | Path) -> str:
    """A DuckDB file path from a path or a ``duckdb://`` URL."""
    text = str(path)
    if text.startswith("duckdb://"):
        text = text[len("duckdb://") :]
    if not text:
        raise ConfigError("DuckDBSaver needs a file path, e.g. 'checkpoints.duckdb'")
    return text


class DuckDBSaver(AgentMeshSaver):
    """A saver on a DuckDB file (single process, no service to run)."""

    @classmethod
    def from_conn_string(
        cls,
        path: str | Path,
        *,
        durable: bool = False,
        cache_bytes: int | None = None,
        serde: SerializerProtocol | None = None,
        compress_threshold: int | None = None,
        chunk_threshold: int | None = None,
        fence_capacity: int = DEFAULT_CAPACITY,
    ) -> SaverContext[Self]:
        """A context opening a DuckDB store (and its sync twin on first sync use).

        Puts are written behind by default: they return once queued (and are readable at
        once); a worker commits them within milliseconds, and leaving the context commits the
        rest. A process crash can lose the last few milliseconds of puts, as LangGraph's own
        ``durability="async"`` can. ``durable=True`` makes each put wait for its commit.

        Args:
            path: The database file, or ``"duckdb:///abs/path.duckdb"``.
            durable: Wait for each put's commit.
            cache_bytes: Budget of the store's in-memory caches (default 64 MiB each).
            serde: The serializer (StrictJsonPlusSerializer by default).
            compress_threshold: zstd-compress payloads above this many bytes (default None:
                never; a local file gains less from smaller values than reads lose to
                decompressing them).
            chunk_threshold: Store lists of at least this many bytes as content-addressed
                chunks, so a growing history is stored about once (default None: never; reads
                of the newest checkpoint, answered from memory here, cost about 4x more with
                chunks, and DuckDB's own column compression already shares much).
            fence_capacity: Entries the fence keeps.
        """
        from agentmesh.checkpoint.store.duckdb import (
            CACHE_BYTES,
            DuckDBCheckpointStore,
            SyncDuckDBCheckpointStore,
        )

        file = _duckdb_path(path)
        budget = CACHE_BYTES if cache_bytes is None else cache_bytes

        def make_saver(store: CheckpointStore, loop: Any) -> Self:
            return cls(
                store,
                serde=serde,
                loop=loop,
                sync_store=_twin(
                    lambda: SyncDuckDBCheckpointStore(file, cache_bytes=budget, durable=durable)
                ),
                compress_threshold=compress_threshold,
                chunk_threshold=chunk_threshold,
                fence_capacity=fence_capacity,
            )

        return SaverContext(
            "duckdb",
            lambda: DuckDBCheckpointStore(file, cache_bytes=budget, durable=durable),
            make_saver,
        )


class RedisSaver(AgentMeshSaver):
    """A saver on Redis (plain Redis 7; compare-and-set in Lua)."""

    @classmethod
    def from_conn_string(
        cls,
        url: str,
        *,
        prefix: str = "agentmesh:ckpt",
        serde: SerializerProtocol | None = None,
        compress_threshold: int | None = DEFAULT_THRESHOLD,
        chunk_threshold: int | None = LIST_MIN_BYTES,
        fence_capacity: int = DEFAULT_CAPACITY,
    ) -> SaverContext[Self]:
        """A context opening a Redis store (and its sync twin on first sync use).

        Args:
            url: ``"redis://host:port/db"`` (or ``rediss://``).
            prefix: Key prefix of this store's keys.
            serde: The serializer (StrictJsonPlusSerializer by default).
            compress_threshold: zstd-compress payloads above this many bytes (None: never).
            chunk_threshold: Store lists of at least this many bytes as content-addressed
                chunks, so a growing history is stored about once (None: never).
            fence_capacity: Entries the fence keeps.
        """
        from agentmesh.checkpoint.store.redis import (
            RedisCheckpointStore,
            SyncRedisCheckpointStore,
        )

        def make_saver(store: CheckpointStore, loop: Any) -> Self:
            return cls(
                store,
                serde=serde,
                loop=loop,
                sync_store=_twin(lambda: SyncRedisCheckpointStore(url, prefix=prefix)),
                compress_threshold=compress_threshold,
                chunk_threshold=chunk_threshold,
                fence_capacity=fence_capacity,
            )

        return SaverContext("redis", lambda: RedisCheckpointStore(url, prefix=prefix), make_saver)


class PostgresSaver(AgentMeshSaver):
    """A saver on PostgreSQL (asyncpg pool; compare-and-set in one statement).

    Sync methods run on a few connections of their own, each driven from the calling thread
    (see :mod:`._lanes`), rather than waiting on the async store's event loop thread.
    """

    @classmethod
    def from_conn_string(
        cls,
        dsn: str,
        *,
        schema: str = "agentmesh",
        min_size: int = 1,
        max_size: int = 10,
        synchronous_commit: bool = True,
        command_timeout_seconds: float | None = DEFAULT_COMMAND_TIMEOUT_SECONDS,
        serde: SerializerProtocol | None = None,
        compress_threshold: int | None = DEFAULT_THRESHOLD,
        chunk_threshold: int | None = LIST_MIN_BYTES,
        fence_capacity: int = DEFAULT_CAPACITY,
    ) -> SaverContext[Self]:
        """A context opening a Postgres store (migrated on open).

        Args:
            dsn: ``"postgresql://user@host:port/db"``.
            schema: The schema holding the checkpoint tables.
            min_size: Smallest connection pool size.
            max_size: Largest connection pool size.
            synchronous_commit: Wait for each commit to reach the disk (Postgres's default).
                ``False`` answers puts before the flush: a database crash can lose the last
                ~0.6 s of puts (never half of one), at about half the put latency.
            command_timeout_seconds: How long a call waits for PostgreSQL's answer before it
                raises ``CheckpointError`` (``None``: for ever); a partitioned server would
                otherwise hold the run until TCP gives up.
            serde: The serializer (StrictJsonPlusSerializer by default).
            compress_threshold: zstd-compress payloads above this many bytes (None: never).
            chunk_threshold: Store lists of at least this many bytes as content-addressed
                chunks, so a growing history is stored about once (None: never).
            fence_capacity: Entries the fence keeps.
        """
        from agentmesh.checkpoint.store.postgres import PostgresCheckpointStore

        def make_store(pool_min: int = min_size, pool_max: int = max_size) -> CheckpointStore:
            return PostgresCheckpointStore(
                dsn,
                schema=schema,
                min_size=pool_min,
                max_size=pool_max,
                command_timeout_seconds=command_timeout_seconds,
                synchronous_commit=synchronous_commit,
            )

        def make_lanes() -> LaneStore:
            # one connection per lane, driven by the calling thread: no hop to the loop thread
            return LaneStore(
                lambda: make_store(1, 1), "postgres", lanes=min(DEFAULT_LANES, max_size)
            )

        def make_saver(store: CheckpointStore, loop: Any) -> Self:
            return cls(
                store,
                serde=serde,
                loop=loop,
                sync_store=_twin(make_lanes),
                compress_threshold=compress_threshold,
                chunk_threshold=chunk_threshold,
                fence_capacity=fence_capacity,
            )

        return SaverContext("postgres", make_store, make_saver)
