"""Shared by the LangGraph saver tests: one :class:`SaverBackend` per AgentMesh saver.

``make_backend(name, request, tmp_path)`` gives a way to open the saver of a backend on
storage unique to the test (a DuckDB file under ``tmp_path``, a Redis key prefix, a Postgres
schema in database ``test``), removed when the test ends. Redis and Postgres come from the
``redis_address`` / ``postgres_address`` fixtures (skip locally, fail in CI when down).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentmesh.checkpoint.langgraph import (
    AgentMeshSaver,
    DuckDBSaver,
    MemorySaver,
    PostgresSaver,
    RedisSaver,
    SaverContext,
)
from agentmesh.checkpoint.store.memory import MemoryCheckpointStore

BACKENDS = ("memory", "duckdb", "redis", "postgres")


@dataclass
class SaverBackend:
    """How to open one backend's saver on this test's storage."""

    name: str
    open: Callable[[], SaverContext[AgentMeshSaver]]
    persistent: bool
    """State survives closing and reopening the saver."""
    sync_twin: bool
    """The backend has a synchronous twin store (sync methods work inside the loop)."""

    @asynccontextmanager
    async def two_savers(self) -> AsyncIterator[tuple[AgentMeshSaver, AgentMeshSaver]]:
        """Two independent savers (two writers) on the same storage, opened on this loop."""
        if not self.persistent:
            async with MemoryCheckpointStore() as store:
                yield AgentMeshSaver(store), AgentMeshSaver(store)
            return
        async with self.open() as first, self.open() as second:
            yield first, second


def _in_thread(coro_factory: Callable[[], object]) -> None:
    """Run a cleanup coroutine on a fresh loop in a worker thread."""

    def run() -> None:
        asyncio.run(coro_factory())  # type: ignore[arg-type]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> SaverBackend:
    """The backend ``name`` on storage of its own, cleaned up at the end of the test."""
    token = uuid.uuid4().hex[:12]
    if name == "memory":
        return SaverBackend(name, MemorySaver.from_conn_string, persistent=False, sync_twin=True)
    if name == "duckdb":
        path = tmp_path / f"ckpt-{token}.duckdb"
        return SaverBackend(
            name, lambda: DuckDBSaver.from_conn_string(path), persistent=True, sync_twin=True
        )
    if name == "redis":
        host, port = request.getfixturevalue("redis_address")
        url = f"redis://{host}:{port}/0"
        prefix = f"agentmesh:test:{token}"

        def drop_keys() -> None:
            import redis

            client = redis.Redis(host=host, port=port)
            try:
                keys = list(client.scan_iter(match=f"*{token}*", count=1000))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()

        request.addfinalizer(drop_keys)
        return SaverBackend(
            name,
            lambda: RedisSaver.from_conn_string(url, prefix=prefix),
            persistent=True,
            sync_twin=True,
        )
    if name == "postgres":
        host, port = request.getfixturevalue("postgres_address")
        dsn = f"postgresql://postgres@{host}:{port}/test"
        schema = f"ckpt_test_{token}"

        async def drop_schema() -> None:
            import asyncpg

            connection = await asyncpg.connect(dsn)
            try:
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await connection.close()

        request.addfinalizer(lambda: _in_thread(drop_schema))
        return SaverBackend(
            name,
            lambda: PostgresSaver.from_conn_string(dsn, schema=schema, max_size=4),
            persistent=True,
            sync_twin=True,
        )
    raise ValueError(name)
