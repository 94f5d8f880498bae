"""`agentmesh checkpoints` on stores with their own schema or prefix, and what it reports.

- A Postgres store opened with ``schema=`` and a Redis store opened with ``prefix=`` are reached
  with ``?schema=`` / ``?prefix=`` in ``--url`` or ``AGENTMESH_CHECKPOINT_URL`` (they printed
  ``no checkpoints``, or failed).
- A Redis URL with an option redis-py does not take is a one-line error, exit 2 (it was a
  traceback).
- ``prune`` and ``delete`` say how many checkpoints went and name a thread that does not exist,
  exit 1 (they reported success on a typo).
- ``list`` piped to a file keeps its headers and ids whole (they were cut to ``s…``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, ListQuery
from agentmesh.checkpoint.store.factory import open_store
from agentmesh.collector.cli import main

_CHECKPOINT_IDS = [f"1f1f05b2-659b-639c-800{step}-4827a3cf4d26" for step in range(3)]


def _fill(url: str, threads: dict[str, int]) -> None:
    async def fill() -> None:
        async with open_store(url) as store:
            for thread_id, count in threads.items():
                for step in range(count):
                    record = CheckpointRecord(
                        thread_id,
                        "",
                        _CHECKPOINT_IDS[step],
                        None,
                        Blob("msgpack", b"{}"),
                        {"step": step, "source": "loop"},
                        {"notes": str(step)},
                        run_id=f"run-{thread_id}-0123456789abcdef",
                    )
                    await store.put(record, {("notes", str(step)): Blob("bytes", b"x")})

    asyncio.run(fill())


def _stored(url: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        found: dict[str, int] = {}
        async with open_store(url) as store:
            async for stored in store.list(ListQuery()):
                thread_id = stored.record.thread_id
                found[thread_id] = found.get(thread_id, 0) + 1
        return found

    return asyncio.run(read())


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def _drop_keys(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["postgres", "redis"])
def own_store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty store in its own schema (Postgres) or under its own prefix (Redis)."""
    unique = uuid.uuid4().hex[:10]
    if request.param == "postgres":
        host, port = request.getfixturevalue("postgres_address")
        dsn = f"postgresql://postgres@{host}:{port}/test"
        schema = f"ckpt_cli_{unique}"
        try:
            yield f"{dsn}?schema={schema}"
        finally:
            asyncio.run(_drop_schema(dsn, schema))
        return
    host, port = request.getfixturevalue("redis_address")
    url = f"redis://{host}:{port}/0"
    prefix = f"agentmesh:test:cli:{unique}"
    try:
        yield f"{url}?prefix={prefix}"
    finally:
        asyncio.run(_drop_keys(url, prefix))


def test_a_store_with_its_own_schema_or_prefix_is_reached_by_url_and_environment(
    own_store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    default = own_store_url.split("?")[0]
    _fill(own_store_url, {"race-1": 3, "race-2": 1})
    assert _stored(default).get("race-1") is None  # not where the default store looks

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["checkpoints", "list", "--url", own_store_url, "--thread", "race-1"]) == 0
    assert _CHECKPOINT_IDS[2] in capsys.readouterr().out
    monkeypatch.setenv("AGENTMESH_CHECKPOINT_URL", own_store_url)
    assert main(["checkpoints", "prune", "race-1"]) == 0
    assert "deleted 2 checkpoint(s) of 1 thread(s)" in capsys.readouterr().out
    assert main(["checkpoints", "delete", "race-2"]) == 0
    assert _stored(own_store_url) == {"race-1": 1}


def test_a_redis_url_option_redis_py_does_not_take_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "redis://127.0.0.1:1/14?prefx=qa:race"  # no server needed: refused before connecting
    assert main(["checkpoints", "list", "--url", url, "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert "unsupported query option 'prefx'" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_prune_and_delete_say_what_went_and_name_missing_threads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb://{tmp_path / 'threads.duckdb'}"
    _fill(url, {"essay-1": 3, "essay-2": 2, "essay-3": 1})

    assert main(["checkpoints", "prune", "--url", url, "essay-1", "essay-3", "no-such"]) == 1
    out = capsys.readouterr()
    assert "deleted 2 checkpoint(s) of 2 thread(s)" in out.out
    assert out.err.strip() == "no such thread: no-such"

    assert main(["checkpoints", "delete", "--url", url, "no-such-thread"]) == 1
    out = capsys.readouterr()
    assert "deleted 0 threads" in out.out
    assert out.err.strip() == "no such thread: no-such-thread"

    assert main(["checkpoints", "delete", "--url", url, "essay-2", "essay-1"]) == 0
    assert "deleted 2 thread(s) (3 checkpoint(s))" in capsys.readouterr().out
    assert _stored(url) == {"essay-3": 1}


def test_a_listing_sent_to_a_pipe_keeps_its_headers_and_rows_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb://{tmp_path / 'threads.duckdb'}"
    thread = "a-thread-with-a-long-name-0123456789"
    _fill(url, {thread: 3})
    monkeypatch.setenv("COLUMNS", "80")  # what rich falls back to when stdout is not a TTY

    assert main(["checkpoints", "list", "--url", url, "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "thread",
        "checkpoint",
        "step",
        "source",
        "run",
        "channels",
        "bytes",
        "writes",
    ]
    assert len(lines) == 4  # one line per checkpoint
    assert lines[1].split() == [
        thread,
        _CHECKPOINT_IDS[2],
        "2",
        "loop",
        f"run-{thread}-0123456789abcdef",
        "1",
        "1",
        "0",
    ]
