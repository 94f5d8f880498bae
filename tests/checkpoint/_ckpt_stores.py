"""Open a fresh checkpoint store of each backend for the contract suite.

``open_backend(name, request, tmp_path)`` yields an entered store that shares nothing with
other tests: DuckDB in a file under ``tmp_path``, Redis under a unique key prefix (keys deleted
afterwards), Postgres in a unique schema of database ``test`` (schema dropped afterwards).
``open_broken_backend(name)`` builds a store pointed at a closed port.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agentmesh.checkpoint.store import CheckpointStore, MemoryCheckpointStore

BACKENDS = ["memory", "duckdb", "redis", "postgres"]
"""Every backend the contract suite runs against."""

NETWORK_BACKENDS = ["redis", "postgres"]
"""Backends that talk to a server (and can fail to reach it)."""

_CLASSES = {
    "duckdb": ("agentmesh.checkpoint.store.duckdb", "DuckDBCheckpointStore"),
    "redis": ("agentmesh.checkpoint.store.redis", "RedisCheckpointStore"),
    "postgres": ("agentmesh.checkpoint.store.postgres", "PostgresCheckpointStore"),
}


def backend_class(name: str) -> Any:
    """The store class of a backend."""
    module_name, class_name = _CLASSES[name]
    return getattr(importlib.import_module(module_name), class_name)


async def _drop_redis_keys(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client: Any = aioredis.Redis.from_url(url)  # pyright: ignore[reportUnknownMemberType]
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@asynccontextmanager
async def open_backend(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncGenerator[CheckpointStore]:
    """Yield a fresh, entered store of the named backend; clean up after."""
    if name == "memory":
        async with MemoryCheckpointStore() as store:
            yield store
        return
    cls = backend_class(name)
    unique = uuid.uuid4().hex[:12]
    if name == "duckdb":
        async with cls(tmp_path / f"ckpt_{unique}.duckdb") as store:
            yield store
        return
    if name == "redis":
        host, port = request.getfixturevalue("redis_address")
        url = f"redis://{host}:{port}/0"
        prefix = f"agentmesh:test:{unique}"
        try:
            async with cls(url, prefix=prefix) as store:
                yield store
        finally:
            await _drop_redis_keys(url, prefix)
        return
    host, port = request.getfixturevalue("postgres_address")
    dsn = f"postgresql://postgres@{host}:{port}/test"
    schema = f"ckpt_test_{unique}"
    try:
        async with cls(dsn, schema=schema, min_size=1, max_size=4) as store:
            yield store
    finally:
        await _drop_schema(dsn, schema)


def open_broken_backend(name: str) -> CheckpointStore:
    """A (not entered) store of a network backend pointed at a closed port."""
    cls = backend_class(name)
    if name == "redis":
        return cls("redis://127.0.0.1:1/0", prefix="agentmesh:test:broken")
    return cls("postgresql://postgres@127.0.0.1:1/test", schema="ckpt_test_broken")
