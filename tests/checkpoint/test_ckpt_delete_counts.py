"""``delete_thread`` and ``prune`` say how many checkpoints they deleted, on every backend.

``agentmesh checkpoints delete|prune`` reported success on a thread that does not exist (a
typo): the store returned nothing to tell. Now both return the number of checkpoints deleted:
0 for a thread the store does not hold, or one with nothing left to prune.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _ckpt_stores import BACKENDS, open_backend

from agentmesh.checkpoint.store import Blob, CheckpointRecord, CheckpointStore, ListQuery


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckpointStore]:
    async with open_backend(str(request.param), request, tmp_path) as opened:
        yield opened


async def _fill(store: CheckpointStore, thread_id: str, namespace: str, count: int) -> None:
    parent: str | None = None
    for step in range(count):
        checkpoint_id = f"1ef{step:08d}-0000-6000-8000-000000000000"
        record = CheckpointRecord(
            thread_id,
            namespace,
            checkpoint_id,
            parent,
            Blob("msgpack", b"{}"),
            {"step": step},
            {"a": str(step)},
        )
        await store.put(record, {("a", str(step)): Blob("msgpack", b"v")})
        parent = checkpoint_id


async def _count(store: CheckpointStore, thread_id: str) -> int:
    return len([s async for s in store.list(ListQuery(thread_id=thread_id))])


async def test_delete_thread_returns_the_checkpoints_it_deleted(store: CheckpointStore) -> None:
    await _fill(store, "essay-1", "", 3)
    await _fill(store, "essay-1", "sub", 2)
    await _fill(store, "essay-2", "", 1)

    assert await store.delete_thread("essay-1") == 5
    assert await store.delete_thread("essay-1") == 0  # already gone
    assert await store.delete_thread("no-such-thread") == 0
    assert await _count(store, "essay-2") == 1


async def test_prune_returns_the_checkpoints_it_deleted(store: CheckpointStore) -> None:
    await _fill(store, "essay-1", "", 3)
    await _fill(store, "essay-1", "sub", 2)
    await _fill(store, "essay-2", "", 2)
    await _fill(store, "essay-3", "", 4)

    assert await store.prune(["essay-1", "essay-2", "no-such-thread"]) == 2 + 1 + 1
    assert await _count(store, "essay-1") == 2  # the newest of each namespace
    assert await store.prune(["essay-1", "essay-2"]) == 0  # nothing left to prune
    assert await store.prune(["no-such-thread"]) == 0
    assert await store.prune(["essay-3", "essay-1"], keep_latest=False) == 4 + 2
    assert await store.prune([]) == 0
    assert await _count(store, "essay-3") == 0
    assert await _count(store, "essay-2") == 1
