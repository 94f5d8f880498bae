"""`agentmesh checkpoints`: list, prune, delete, expire and size a real checkpoint store.

Each backend for real: a DuckDB file, a Redis database of this machine's server, a throwaway
Postgres database. The store is filled through its own API, then the command reads and cleans
it up, and the store is read back to check what the command did.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, ListQuery, WriteRecord
from agentmesh.checkpoint.store.factory import open_store
from agentmesh.collector.cli import main

_REDIS_DB = 9
"""A Redis database no other test uses: this test empties it before and after."""


async def _flush_redis(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def _postgres(admin_dsn: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(params=["duckdb", "redis", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty checkpoint store of each backend."""
    if request.param == "duckdb":
        yield f"duckdb://{tmp_path / 'threads.duckdb'}"
        return
    if request.param == "redis":
        host, port = request.getfixturevalue("redis_address")
        url = f"redis://{host}:{port}/{_REDIS_DB}"
        asyncio.run(_flush_redis(url))
        try:
            yield url
        finally:
            asyncio.run(_flush_redis(url))
        return
    host, port = request.getfixturevalue("postgres_address")
    name = f"agentmesh_cli_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://postgres@{host}:{port}/postgres"
    asyncio.run(_postgres(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@{host}:{port}/{name}"
    finally:
        asyncio.run(_postgres(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _fill(url: str, threads: dict[str, int]) -> None:
    """Put ``count`` checkpoints in each thread (and a pending write on the newest)."""

    async def fill() -> None:
        async with open_store(url) as store:
            for thread_id, count in threads.items():
                parent: str | None = None
                for step in range(count):
                    checkpoint_id = f"{step:04d}"
                    record = CheckpointRecord(
                        thread_id,
                        "",
                        checkpoint_id,
                        parent,
                        Blob("msgpack", b"{}"),
                        {"step": step, "source": "loop"},
                        {"notes": str(step)},
                        run_id=f"run-{thread_id}",
                    )
                    await store.put(record, {("notes", str(step)): Blob("bytes", b"x" * 100)})
                    parent = checkpoint_id
                write = WriteRecord("task-1", "", 0, "notes", Blob("bytes", b"y"))
                await store.put_writes(thread_id, "", parent or "", [write])

    asyncio.run(fill())


def _stored(url: str) -> dict[str, list[str]]:
    async def read() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        async with open_store(url) as store:
            async for stored in store.list(ListQuery()):
                found.setdefault(stored.record.thread_id, []).append(stored.record.checkpoint_id)
        return found

    return asyncio.run(read())


def _json_rows(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert main(["checkpoints", "list", "--json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_list_prune_delete_expire_and_size(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(store_url, {"essay-1": 3, "essay-2": 2})

    rows = _json_rows(capsys, "--url", store_url)
    assert [(r["thread_id"], r["checkpoint_id"]) for r in rows] == [  # newest first, every thread
        ("essay-1", "0002"),
        ("essay-2", "0001"),
        ("essay-1", "0001"),
        ("essay-2", "0000"),
        ("essay-1", "0000"),
    ]
    newest = next(r for r in rows if r["thread_id"] == "essay-1" and r["checkpoint_id"] == "0002")
    assert newest == {
        "thread_id": "essay-1",
        "namespace": "",
        "checkpoint_id": "0002",
        "parent_id": "0001",
        "step": 2,
        "source": "loop",
        "run_id": "run-essay-1",
        "channels": 1,
        "value_bytes": 100,
        "pending_writes": 1,
    }
    one = _json_rows(capsys, "--url", store_url, "--thread", "essay-1", "--limit", "2")
    assert [r["checkpoint_id"] for r in one] == ["0002", "0001"]

    assert main(["checkpoints", "list", "--url", store_url, "--thread", "essay-1"]) == 0
    table = capsys.readouterr().out
    assert "checkpoint" in table.splitlines()[0]
    assert "0002" in table  # ids and runs printed whole
    assert "run-essay-1" in table

    assert main(["checkpoints", "prune", "essay-1", "--url", store_url]) == 0
    assert "1 thread(s)" in capsys.readouterr().out
    assert _stored(store_url) == {"essay-1": ["0002"], "essay-2": ["0001", "0000"]}

    assert main(["checkpoints", "size", "--url", store_url]) == 0
    size = int(capsys.readouterr().out.split()[0].replace(",", ""))
    assert size > 0

    assert main(["checkpoints", "delete", "essay-2", "--url", store_url]) == 0
    assert _stored(store_url) == {"essay-1": ["0002"]}

    time.sleep(1.1)
    _fill(store_url, {"fresh": 1})  # written just now: kept
    assert main(["checkpoints", "expire", "--older-than", "1s", "--url", store_url]) == 0
    assert "deleted 1 thread(s)" in capsys.readouterr().out
    assert _stored(store_url) == {"fresh": ["0000"]}


def test_the_store_comes_from_the_environment_or_the_command_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb://{tmp_path / 'env.duckdb'}"
    _fill(url, {"t": 1})
    monkeypatch.setenv("AGENTMESH_CHECKPOINT_URL", url)
    assert [r["thread_id"] for r in _json_rows(capsys)] == ["t"]

    monkeypatch.delenv("AGENTMESH_CHECKPOINT_URL")
    assert main(["checkpoints", "list"]) == 2
    assert "pass --url or set AGENTMESH_CHECKPOINT_URL" in capsys.readouterr().err
    assert main(["checkpoints", "size", "--url", "mysql://db/x"]) == 2
    assert "supported: memory://, duckdb://" in capsys.readouterr().err
    assert main(["checkpoints", "expire", "--older-than", "soon", "--url", url]) == 2
    assert "--older-than" in capsys.readouterr().err
    assert main(["checkpoints", "list", "--limit", "0", "--url", url]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


def test_a_path_that_is_not_a_checkpoint_store_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import duckdb

    typo = tmp_path / "typo" / "ck.duckdb"
    for command in (["list"], ["size"]):  # they created the directory and an empty store
        assert main(["checkpoints", *command, "--url", f"duckdb://{typo}"]) == 2
        assert f"no DuckDB file at {typo}" in capsys.readouterr().err
    assert not typo.parent.exists()
    other = tmp_path / "collector.duckdb"  # another DuckDB file: it gained ckpt_* tables
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE spans (trace_id VARCHAR)")
    assert main(["checkpoints", "size", "--url", f"duckdb://{other}"]) == 2
    assert "holds no checkpoints (no ckpt_migrations table)" in capsys.readouterr().err
    with duckdb.connect(str(other), read_only=True) as con:
        assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("spans",)]


def test_a_duckdb_file_held_by_the_app_is_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    path = tmp_path / "held.duckdb"
    _fill(f"duckdb://{path}", {"t": 1})
    holder = subprocess.Popen(  # another process holds the file, as a running app does
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(path)!r}); "
         "print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        assert main(["checkpoints", "list", "--url", f"duckdb://{path}"]) == 2
        assert "another process holds the file" in capsys.readouterr().err
    finally:
        holder.communicate("")
