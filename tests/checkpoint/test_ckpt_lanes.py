"""The Postgres saver's synchronous twin: lanes driven from the calling thread (real Postgres)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from agentmesh.checkpoint.langgraph._lanes import LaneStore
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, ListQuery
from agentmesh.checkpoint.store.postgres import PostgresCheckpointStore
from agentmesh.core.errors import CheckpointConflictError, CheckpointError


@pytest.fixture
def dsn_schema(postgres_address: tuple[str, int]) -> Iterator[tuple[str, str]]:
    host, port = postgres_address
    dsn = f"postgresql://postgres@{host}:{port}/test"
    schema = f"ckpt_lanes_{uuid.uuid4().hex[:12]}"
    yield dsn, schema

    async def drop() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()

    asyncio.run(drop())


def _lanes(dsn: str, schema: str, lanes: int) -> LaneStore:
    return LaneStore(
        lambda: PostgresCheckpointStore(dsn, schema=schema, min_size=1, max_size=1),
        "postgres",
        lanes=lanes,
    )


def _record(thread: str, checkpoint_id: str, parent: str | None = None) -> CheckpointRecord:
    return CheckpointRecord(
        thread_id=thread,
        namespace="",
        checkpoint_id=checkpoint_id,
        parent_id=parent,
        checkpoint=Blob("json", b"{}"),
        metadata={"step": int(checkpoint_id[-3:])},
        channel_versions={"messages": checkpoint_id},
    )


def _chain(store: LaneStore, thread: str, n: int) -> None:
    parent: str | None = None
    for step in range(n):
        checkpoint_id = f"c{step:03d}"
        store.put(
            _record(thread, checkpoint_id, parent),
            {("messages", checkpoint_id): Blob("json", f'"{step}"'.encode())},
            extends=parent,
            check_extends=True,
        )
        parent = checkpoint_id


def test_more_threads_than_lanes_all_get_through(dsn_schema: tuple[str, str]) -> None:
    store = _lanes(*dsn_schema, lanes=2)
    try:
        threads = [f"t{n}" for n in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda thread: _chain(store, thread, 5), threads))
        for thread in threads:
            head = store.get(thread, "")
            assert head is not None
            assert head.record.checkpoint_id == "c004"
            assert head.values["messages"].data == b'"4"'
        # never more connections than lanes, however many threads call at once
        assert 1 <= len(store._lanes) <= 2  # pyright: ignore[reportPrivateUsage]
        # the compare-and-set still refuses a fork, through a lane
        with pytest.raises(CheckpointConflictError):
            store.put(_record("t0", "c100", "c002"), {}, extends="c002", check_extends=True)
    finally:
        store.close()


def test_a_listing_leaves_its_lane_free_between_chunks(dsn_schema: tuple[str, str]) -> None:
    store = _lanes(*dsn_schema, lanes=1)  # one lane: a held lane would deadlock below
    try:
        _chain(store, "t", 4)
        seen: list[str] = []
        for stored in store.list(ListQuery(thread_id="t")):
            seen.append(stored.record.checkpoint_id)
            assert store.get("t", "", stored.record.checkpoint_id) is not None
        assert seen == ["c003", "c002", "c001", "c000"]

        # a listing given up half way releases its lane
        items = store.list(ListQuery(thread_id="t"))
        assert next(items).record.checkpoint_id == "c003"
        items.close()
        assert store.get("t", "") is not None
    finally:
        store.close()


def test_a_long_listing_is_driven_a_chunk_at_a_time(
    dsn_schema: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _lanes(*dsn_schema, lanes=1)
    try:
        _chain(store, "t", 150)  # past a chunk (64) and a Postgres page (100)
        drives = 0
        drive = store._drive  # pyright: ignore[reportPrivateUsage]

        def counted(*args: Any) -> Any:
            nonlocal drives
            drives += 1
            return drive(*args)

        monkeypatch.setattr(store, "_drive", counted)
        seen = [s.record.checkpoint_id for s in store.list(ListQuery(thread_id="t"))]
        assert seen == [f"c{step:03d}" for step in reversed(range(150))]
        assert drives == 3  # 64 + 64 + 22 items, not one drive an item
    finally:
        store.close()


async def test_a_sync_call_from_async_code_runs_beside_the_running_loop(
    dsn_schema: tuple[str, str],
) -> None:
    store = _lanes(*dsn_schema, lanes=1)
    try:
        _chain(store, "t", 2)  # a running loop here: the lane runs in a helper thread
        head = store.get("t", "")
        assert head is not None
        assert head.record.checkpoint_id == "c001"
        assert threading.current_thread() is threading.main_thread()
    finally:
        store.close()


def test_a_closed_twin_says_so(dsn_schema: tuple[str, str]) -> None:
    store = _lanes(*dsn_schema, lanes=1)
    _chain(store, "t", 1)
    store.close()
    with pytest.raises(CheckpointError, match="sync twin is closed"):
        store.get("t", "")
