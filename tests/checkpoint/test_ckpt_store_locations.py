"""Each checkpoint store, and a saver on it, says where its checkpoints live (no password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.checkpoint.handoff_writer import HandoffCheckpointWriter
from agentmesh.checkpoint.store.memory import MemoryCheckpointStore


def test_every_backend_names_its_location_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    duckdb = pytest.importorskip("agentmesh.checkpoint.store.duckdb")
    redis = pytest.importorskip("agentmesh.checkpoint.store.redis")
    postgres = pytest.importorskip("agentmesh.checkpoint.store.postgres")
    monkeypatch.chdir(tmp_path)
    assert MemoryCheckpointStore().location == "memory://"
    assert duckdb.DuckDBCheckpointStore("c.duckdb").location == f"duckdb://{tmp_path}/c.duckdb"
    assert (
        redis.RedisCheckpointStore("redis://:s3cret@cache:6379/0").location
        == "redis://:***@cache:6379/0"
    )
    assert (
        postgres.PostgresCheckpointStore("postgres://app:s3cret@db/ck").location
        == "postgresql://app:***@db/ck"
    )


async def test_a_saver_names_its_stores_location_and_a_store_of_its_own_none() -> None:
    pytest.importorskip("langgraph")
    from agentmesh.checkpoint.langgraph import AgentMeshSaver, MemorySaver

    async with MemorySaver.from_conn_string() as saver:
        assert saver.store_url == "memory://"

    class Bare(MemoryCheckpointStore):
        location = ""  # a store that does not say

    async with Bare() as store:
        assert AgentMeshSaver(store).store_url is None


def test_the_handoff_writer_names_its_store_masked() -> None:
    writer = HandoffCheckpointWriter("redis://:s3cret@127.0.0.1:1/0")
    try:
        assert (writer.kind, writer.location) == ("redis", "redis://:***@127.0.0.1:1/0")
    finally:
        writer.close(timeout=5.0)
