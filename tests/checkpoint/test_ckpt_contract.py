"""The checkpoint store contract, run against every backend (the ``store`` fixture, below).

The memory store is the reference: every other backend must behave the same way here.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from _ckpt_stores import (
    BACKENDS,
    NETWORK_BACKENDS,
    backend_class,
    open_backend,
    open_broken_backend,
)

from agentmesh.checkpoint.store import (
    Blob,
    CheckpointRecord,
    CheckpointStore,
    ListQuery,
    MemoryCheckpointStore,
    StoredCheckpoint,
    WriteRecord,
    open_store,
)
from agentmesh.core.errors import CheckpointConflictError, CheckpointError, ConfigError


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckpointStore]:
    """A fresh, entered checkpoint store (memory, DuckDB, Redis, Postgres)."""
    async with open_backend(str(request.param), request, tmp_path) as opened:
        yield opened


def cid(n: int) -> str:
    """A time-ordered-looking checkpoint id (string order = numeric order)."""
    return f"1ef{n:08d}-0000-6000-8000-000000000000"


def record(
    thread_id: str,
    checkpoint_id: str,
    *,
    namespace: str = "",
    parent_id: str | None = None,
    versions: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    doc: bytes = b"checkpoint-doc",
) -> CheckpointRecord:
    return CheckpointRecord(
        thread_id=thread_id,
        namespace=namespace,
        checkpoint_id=checkpoint_id,
        parent_id=parent_id,
        checkpoint=Blob("msgpack", doc),
        metadata=dict(metadata or {}),
        channel_versions=dict(versions or {}),
        run_id=run_id,
    )


def write(
    task_id: str, idx: int, value: bytes, *, path: str = "", channel: str = "ch"
) -> WriteRecord:
    return WriteRecord(
        task_id=task_id, task_path=path, idx=idx, channel=channel, value=Blob("msgpack", value)
    )


async def listed(store: CheckpointStore, **query: Any) -> list[StoredCheckpoint]:
    return [item async for item in store.list(ListQuery(**query))]


async def ids(store: CheckpointStore, **query: Any) -> list[str]:
    return [item.record.checkpoint_id for item in await listed(store, **query)]


async def must_get(
    store: CheckpointStore, thread_id: str, namespace: str = "", checkpoint_id: str | None = None
) -> StoredCheckpoint:
    got = await store.get(thread_id, namespace, checkpoint_id)
    assert got is not None, (thread_id, namespace, checkpoint_id)
    return got


def as_dict(mapping: Mapping[str, Blob]) -> dict[str, Blob]:
    return dict(mapping)


# -- put and get --------------------------------------------------------------------------


async def test_put_then_get_by_id_and_newest(store: CheckpointStore) -> None:
    first = record(
        "t", cid(1), versions={"a": "1"}, metadata={"step": 0, "source": "input"}, run_id="r1"
    )
    second = record(
        "t",
        cid(2),
        parent_id=cid(1),
        versions={"a": "2"},
        metadata={"step": 1, "source": "loop", "parents": {"": cid(1)}, "tags": ["x", "é"]},
        run_id="r1",
        doc=b"second-doc",
    )
    await store.put(first, {("a", "1"): Blob("msgpack", b"A1")})
    await store.put(second, {("a", "2"): Blob("json", b"A2")})

    newest = await must_get(store, "t", "")
    assert newest.record == second
    assert as_dict(newest.values) == {"a": Blob("json", b"A2")}
    assert list(newest.writes) == []

    older = await must_get(store, "t", "", cid(1))
    assert older.record == first
    assert as_dict(older.values) == {"a": Blob("msgpack", b"A1")}


async def test_newest_is_the_greatest_id_not_the_last_put(store: CheckpointStore) -> None:
    for n in (3, 1, 2):
        await store.put(record("t", cid(n)), {})
    assert (await must_get(store, "t")).record.checkpoint_id == cid(3)
    assert await ids(store, thread_id="t") == [cid(3), cid(2), cid(1)]


async def test_get_missing_returns_none(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1)), {})
    assert await store.get("other", "") is None
    assert await store.get("t", "", cid(9)) is None
    assert await store.get("t", "child") is None
    assert await store.get("t", "child", cid(1)) is None


async def test_namespaces_are_separate_chains(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"root")})
    await store.put(
        record("t", cid(2), namespace="child:1", versions={"a": "1"}),
        {("a", "1"): Blob("m", b"child")},
    )
    root = await must_get(store, "t", "")
    child = await must_get(store, "t", "child:1")
    assert root.record.checkpoint_id == cid(1)
    assert child.record.checkpoint_id == cid(2)
    assert child.record.namespace == "child:1"
    assert as_dict(root.values) == {"a": Blob("m", b"root")}
    assert as_dict(child.values) == {"a": Blob("m", b"child")}


async def test_put_is_idempotent(store: CheckpointStore) -> None:
    first = record("t", cid(1), versions={"a": "1"}, metadata={"step": 0})
    blobs = {("a", "1"): Blob("msgpack", b"A1")}
    await store.put(first, blobs)
    await store.put(first, blobs)
    assert await ids(store) == [cid(1)]
    got = await must_get(store, "t")
    assert got.record == first
    assert as_dict(got.values) == {"a": Blob("msgpack", b"A1")}


async def test_blob_is_written_once_per_channel_version(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"first")})
    await store.put(
        record("t", cid(2), parent_id=cid(1), versions={"a": "1"}),
        {("a", "1"): Blob("m", b"second")},
    )
    assert as_dict((await must_get(store, "t", "", cid(2))).values) == {"a": Blob("m", b"first")}
    assert as_dict((await must_get(store, "t", "", cid(1))).values) == {"a": Blob("m", b"first")}


async def test_values_only_for_referenced_versions(store: CheckpointStore) -> None:
    a1, a2, b1 = Blob("m", b"a1"), Blob("m", b"a2"), Blob("m", b"b1")
    await store.put(
        record("t", cid(1), versions={"a": "1", "b": "1"}), {("a", "1"): a1, ("b", "1"): b1}
    )
    await store.put(
        record("t", cid(2), parent_id=cid(1), versions={"a": "2", "b": "1"}), {("a", "2"): a2}
    )
    # "c" has a version but no blob (an empty channel): it is absent from the values.
    await store.put(record("t", cid(3), parent_id=cid(2), versions={"a": "2", "c": "9"}), {})
    assert as_dict((await must_get(store, "t", "", cid(1))).values) == {"a": a1, "b": b1}
    assert as_dict((await must_get(store, "t", "", cid(2))).values) == {"a": a2, "b": b1}
    assert as_dict((await must_get(store, "t", "", cid(3))).values) == {"a": a2}


async def test_blobs_belong_to_their_thread_and_namespace(store: CheckpointStore) -> None:
    await store.put(record("t1", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"t1")})
    await store.put(record("t2", cid(1), versions={"a": "1"}), {})
    await store.put(record("t1", cid(1), namespace="sub", versions={"a": "1"}), {})
    assert as_dict((await must_get(store, "t2")).values) == {}
    assert as_dict((await must_get(store, "t1", "sub")).values) == {}
    assert as_dict((await must_get(store, "t1")).values) == {"a": Blob("m", b"t1")}


# -- pending writes -----------------------------------------------------------------------


async def test_put_writes_keeps_first_for_non_negative_idx(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1)), {})
    await store.put_writes("t", "", cid(1), [write("task", 0, b"first"), write("task", 1, b"one")])
    await store.put_writes("t", "", cid(1), [write("task", 0, b"second"), write("task", 2, b"two")])
    got = await must_get(store, "t")
    assert [(w.idx, w.value.data) for w in got.writes] == [(0, b"first"), (1, b"one"), (2, b"two")]


async def test_put_writes_replaces_negative_idx(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1)), {})
    await store.put_writes("t", "", cid(1), [write("task", -1, b"error", channel="__error__")])
    await store.put_writes("t", "", cid(1), [write("task", -1, b"again", channel="__error__")])
    got = await must_get(store, "t")
    assert [(w.idx, w.channel, w.value.data) for w in got.writes] == [(-1, "__error__", b"again")]


async def test_writes_are_ordered_by_task_path_task_id_idx(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1)), {})
    await store.put_writes(
        "t",
        "",
        cid(1),
        [
            write("b", 1, b"b1", path="~1"),
            write("b", 0, b"b0", path="~1"),
            write("a", 0, b"a0", path="~1"),
        ],
    )
    await store.put_writes("t", "", cid(1), [write("z", 0, b"z0", path="~0")])
    got = await must_get(store, "t")
    assert [(w.task_path, w.task_id, w.idx) for w in got.writes] == [
        ("~0", "z", 0),
        ("~1", "a", 0),
        ("~1", "b", 0),
        ("~1", "b", 1),
    ]
    first = got.writes[0]
    assert first == write("z", 0, b"z0", path="~0")


async def test_writes_belong_to_their_checkpoint(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1)), {})
    await store.put(record("t", cid(2), parent_id=cid(1)), {})
    await store.put(record("t", cid(2), namespace="sub"), {})
    await store.put_writes("t", "", cid(1), [write("task", 0, b"x")])
    assert [w.value.data for w in (await must_get(store, "t", "", cid(1))).writes] == [b"x"]
    assert list((await must_get(store, "t", "", cid(2))).writes) == []
    assert list((await must_get(store, "t", "sub", cid(2))).writes) == []


# -- list -----------------------------------------------------------------------------------


async def _populate_for_listing(store: CheckpointStore) -> None:
    await store.put(record("t1", cid(1), metadata={"step": 1, "source": "input"}), {})
    await store.put(
        record(
            "t1",
            cid(3),
            parent_id=cid(1),
            metadata={"step": 2, "source": "loop", "parents": {"": cid(1)}, "user": "ann"},
        ),
        {},
    )
    await store.put(
        record(
            "t1",
            cid(2),
            namespace="child",
            metadata={"step": 1, "source": "loop", "parents": {"": cid(1), "x": "y"}},
        ),
        {},
    )
    await store.put(record("t2", cid(4), metadata={"step": 1, "source": "loop"}), {})


async def test_list_newest_first_across_threads_and_namespaces(store: CheckpointStore) -> None:
    await _populate_for_listing(store)
    assert await ids(store) == [cid(4), cid(3), cid(2), cid(1)]
    assert await ids(store, thread_id="t1") == [cid(3), cid(2), cid(1)]
    assert await ids(store, thread_id="t1", namespace="") == [cid(3), cid(1)]
    assert await ids(store, thread_id="t1", namespace="child") == [cid(2)]
    assert await ids(store, namespace="") == [cid(4), cid(3), cid(1)]
    assert await ids(store, thread_id="nobody") == []


async def test_list_before_limit_and_checkpoint_id(store: CheckpointStore) -> None:
    await _populate_for_listing(store)
    assert await ids(store, thread_id="t1", before=cid(3)) == [cid(2), cid(1)]
    assert await ids(store, before=cid(1)) == []
    assert await ids(store, limit=2) == [cid(4), cid(3)]
    assert await ids(store, thread_id="t1", namespace="", limit=1) == [cid(3)]
    assert await ids(store, thread_id="t1", checkpoint_id=cid(2)) == [cid(2)]
    assert await ids(store, thread_id="t1", namespace="", checkpoint_id=cid(2)) == []


async def test_list_filters_on_metadata(store: CheckpointStore) -> None:
    await _populate_for_listing(store)
    assert await ids(store, metadata={"source": "loop"}) == [cid(4), cid(3), cid(2)]
    assert await ids(store, metadata={"step": 1}) == [cid(4), cid(2), cid(1)]
    assert await ids(store, metadata={"step": 1, "source": "loop"}) == [cid(4), cid(2)]
    assert await ids(store, thread_id="t1", metadata={"step": 2}) == [cid(3)]
    assert await ids(store, metadata={"user": "ann"}) == [cid(3)]
    assert await ids(store, metadata={"user": "bob"}) == []
    assert await ids(store, metadata={"missing": "x"}) == []
    assert await ids(store, metadata={"step": "1"}) == []


async def test_list_metadata_nested_dicts_compare_whole(store: CheckpointStore) -> None:
    await _populate_for_listing(store)
    assert await ids(store, metadata={"parents": {"": cid(1)}}) == [cid(3)]
    assert await ids(store, metadata={"parents": {"": cid(1), "x": "y"}}) == [cid(2)]
    assert await ids(store, metadata={"parents": {}}) == []


async def test_list_returns_values_and_writes(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"v")})
    await store.put_writes("t", "", cid(1), [write("task", 0, b"w")])
    [item] = await listed(store, thread_id="t")
    assert as_dict(item.values) == {"a": Blob("m", b"v")}
    assert [w.value.data for w in item.writes] == [b"w"]
    assert item.record == record("t", cid(1), versions={"a": "1"})


async def test_get_and_list_return_large_and_many_values(store: CheckpointStore) -> None:
    # large values and many values adding up to a lot (a chunked list): stores that read
    # them apart from the rest (Redis) must still return every one, from get and from list
    big = os.urandom(200_000)
    many = {f"c{n:02d}": os.urandom(30_000) for n in range(12)}
    versions = {"big": "1", **dict.fromkeys(many, "1"), "small": "1"}
    blobs = {("big", "1"): Blob("m", big), ("small", "1"): Blob("m", b"s")}
    blobs.update({(name, "1"): Blob("m", data) for name, data in many.items()})
    expected = {channel: blob for (channel, _), blob in blobs.items()}
    for n in (1, 2):
        await store.put(record("t", cid(n), versions=versions), blobs)
    assert as_dict((await must_get(store, "t")).values) == expected
    items = await listed(store, thread_id="t")
    assert [item.record.checkpoint_id for item in items] == [cid(2), cid(1)]
    for item in items:
        assert as_dict(item.values) == expected


async def test_get_can_leave_values_out(store: CheckpointStore) -> None:
    versions = {"a": "1", "b": "1", "c": "1"}
    blobs = {(ch, "1"): Blob("m", ch.encode() * 40_000) for ch in versions}
    await store.put(record("t", cid(1), versions=versions), blobs)
    newest = await store.get("t", "", skip_channels=["a", "c", "not-a-channel"])
    by_id = await store.get("t", "", cid(1), skip_channels=("b",))
    assert newest is not None
    assert by_id is not None
    assert as_dict(newest.values) == {"b": blobs[("b", "1")]}
    assert as_dict(by_id.values) == {"a": blobs[("a", "1")], "c": blobs[("c", "1")]}
    assert newest.record == by_id.record == record("t", cid(1), versions=versions)


# -- compare-and-set -----------------------------------------------------------------------


async def test_check_extends_accepts_the_head(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1)), {}, extends=None, check_extends=True)
    await store.put(record("t", cid(2), parent_id=cid(1)), {}, extends=cid(1), check_extends=True)
    await store.put(record("t", cid(1), namespace="sub"), {}, extends=None, check_extends=True)
    assert await ids(store, thread_id="t", namespace="") == [cid(2), cid(1)]
    assert await ids(store, thread_id="t", namespace="sub") == [cid(1)]


async def test_check_extends_conflict_writes_nothing(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"a1")})
    await store.put(record("t", cid(2), parent_id=cid(1), versions={"a": "1"}), {})

    stale = record("t", cid(3), parent_id=cid(1), versions={"a": "2"})
    with pytest.raises(CheckpointConflictError) as caught:
        await store.put(
            stale, {("a", "2"): Blob("m", b"stale")}, extends=cid(1), check_extends=True
        )
    assert (caught.value.thread_id, caught.value.namespace) == ("t", "")
    assert (caught.value.expected, caught.value.actual) == (cid(1), cid(2))

    with pytest.raises(CheckpointConflictError) as caught_empty:
        await store.put(record("t", cid(4)), {}, extends=None, check_extends=True)
    assert caught_empty.value.actual == cid(2)

    assert await ids(store, thread_id="t") == [cid(2), cid(1)]
    # The refused put's blob was not written either.
    await store.put(record("t", cid(5), parent_id=cid(2), versions={"a": "2"}), {})
    assert as_dict((await must_get(store, "t")).values) == {}


async def test_check_extends_on_an_empty_namespace_with_a_head_in_mind(
    store: CheckpointStore,
) -> None:
    with pytest.raises(CheckpointConflictError) as caught:
        await store.put(record("t", cid(2)), {}, extends=cid(1), check_extends=True)
    assert (caught.value.expected, caught.value.actual) == (cid(1), None)
    assert await store.get("t", "") is None


async def test_check_extends_accepts_an_idempotent_retry(store: CheckpointStore) -> None:
    first = record("t", cid(1), versions={"a": "1"})
    await store.put(first, {("a", "1"): Blob("m", b"a1")}, extends=None, check_extends=True)
    await store.put(record("t", cid(2), parent_id=cid(1)), {}, extends=cid(1), check_extends=True)
    # Retrying the first put (its writer still believes the namespace is empty) is accepted.
    await store.put(first, {("a", "1"): Blob("m", b"a1")}, extends=None, check_extends=True)
    assert await ids(store, thread_id="t") == [cid(2), cid(1)]
    assert (await must_get(store, "t", "", cid(1))).record == first


async def test_concurrent_writers_never_fork_the_chain(store: CheckpointStore) -> None:
    head = cid(0)
    await store.put(record("t", head), {}, extends=None, check_extends=True)
    next_id = 1
    for _round in range(3):

        async def attempt(n: int, parent: str) -> str:
            await store.put(
                record("t", cid(n), parent_id=parent, versions={"a": str(n)}),
                {("a", str(n)): Blob("m", str(n).encode())},
                extends=parent,
                check_extends=True,
            )
            return cid(n)

        contenders = range(next_id, next_id + 10)
        next_id += 10
        results = await asyncio.gather(
            *(attempt(n, head) for n in contenders), return_exceptions=True
        )
        winners = [r for r in results if isinstance(r, str)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1, results
        assert len(losers) == 9
        assert all(isinstance(r, CheckpointConflictError) for r in losers), losers
        assert all(
            r.expected == head and r.actual == winners[0]
            for r in losers
            if isinstance(r, CheckpointConflictError)
        )
        assert (await must_get(store, "t")).record.checkpoint_id == winners[0]
        head = winners[0]

    chain = await listed(store, thread_id="t", namespace="")
    assert len(chain) == 4
    for newer, older in itertools.pairwise(chain):
        assert newer.record.parent_id == older.record.checkpoint_id


# -- deletion, copy, prune, expiry --------------------------------------------------------------


async def test_delete_thread_removes_all_its_namespaces_only(store: CheckpointStore) -> None:
    for thread in ("t1", "t2"):
        await store.put(record(thread, cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"v")})
        await store.put(record(thread, cid(2), namespace="sub"), {})
        await store.put_writes(thread, "", cid(1), [write("task", 0, b"w")])
    await store.delete_thread("t1")
    assert await ids(store, thread_id="t1") == []
    assert await ids(store, thread_id="t2") == [cid(2), cid(1)]
    kept = await must_get(store, "t2", "", cid(1))
    assert as_dict(kept.values) == {"a": Blob("m", b"v")}
    assert len(kept.writes) == 1
    # Its blobs and writes went too.
    await store.put(record("t1", cid(1), versions={"a": "1"}), {})
    again = await must_get(store, "t1")
    assert as_dict(again.values) == {}
    assert list(again.writes) == []


async def test_delete_for_runs(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1), run_id="r1"), {})
    await store.put(record("t", cid(2), parent_id=cid(1), run_id="r2"), {})
    await store.put(record("t", cid(3), parent_id=cid(2), run_id="r1"), {})
    await store.put(record("t", cid(4), parent_id=cid(3)), {})
    await store.put(record("u", cid(5), namespace="sub", run_id="r1"), {})
    await store.put(record("u", cid(6), run_id="r3"), {})
    await store.put_writes("t", "", cid(3), [write("task", 0, b"w")])
    await store.delete_for_runs(["r1", "nope"])
    assert await ids(store) == [cid(6), cid(4), cid(2)]
    # The deleted checkpoint's writes went with it.
    await store.put(record("t", cid(3), parent_id=cid(2), run_id="r1"), {})
    assert list((await must_get(store, "t", "", cid(3))).writes) == []


async def test_copy_thread(store: CheckpointStore) -> None:
    a1, a2 = Blob("m", b"a1"), Blob("m", b"a2")
    await store.put(record("src", cid(1), versions={"a": "1"}, run_id="r"), {("a", "1"): a1})
    await store.put(
        record("src", cid(2), parent_id=cid(1), versions={"a": "2"}, metadata={"step": 1}),
        {("a", "2"): a2},
    )
    await store.put(record("src", cid(3), namespace="sub", versions={"a": "1"}), {("a", "1"): a2})
    await store.put_writes("src", "", cid(2), [write("task", 0, b"w0"), write("task", -1, b"e")])
    await store.put(record("other", cid(9)), {})

    await store.copy_thread("src", "dst")

    for namespace, checkpoint_id in (("", cid(1)), ("", cid(2)), ("sub", cid(3))):
        source = await must_get(store, "src", namespace, checkpoint_id)
        copied = await must_get(store, "dst", namespace, checkpoint_id)
        assert copied.record.thread_id == "dst"
        assert copied.record.parent_id == source.record.parent_id
        assert copied.record.metadata == source.record.metadata
        assert copied.record.channel_versions == source.record.channel_versions
        assert copied.record.checkpoint == source.record.checkpoint
        assert copied.record.run_id == source.record.run_id
        assert as_dict(copied.values) == as_dict(source.values)
        assert list(copied.writes) == list(source.writes)
    assert len((await must_get(store, "dst", "", cid(2))).writes) == 2
    assert await ids(store, thread_id="dst") == [cid(3), cid(2), cid(1)]
    assert await ids(store, thread_id="src") == [cid(3), cid(2), cid(1)]
    assert await ids(store, thread_id="other") == [cid(9)]


async def test_prune_keeps_latest_per_namespace(store: CheckpointStore) -> None:
    a1, a2, b1 = Blob("m", b"a1"), Blob("m", b"a2"), Blob("m", b"b1")
    for thread in ("t", "keep"):
        await store.put(
            record(thread, cid(1), versions={"a": "1", "b": "1"}), {("a", "1"): a1, ("b", "1"): b1}
        )
        await store.put_writes(thread, "", cid(1), [write("task", 0, b"old")])
        await store.put(
            record(thread, cid(2), parent_id=cid(1), versions={"a": "2", "b": "1"}),
            {("a", "2"): a2},
        )
        await store.put_writes(thread, "", cid(2), [write("task", 0, b"new")])
        await store.put(
            record(thread, cid(3), namespace="sub", versions={"a": "1"}), {("a", "1"): a1}
        )
        await store.put(record(thread, cid(4), namespace="sub", parent_id=cid(3)), {})

    await store.prune(["t"], keep_latest=True)

    assert await ids(store, thread_id="t") == [cid(4), cid(2)]
    latest = await must_get(store, "t")
    assert as_dict(latest.values) == {"a": a2, "b": b1}
    assert [w.value.data for w in latest.writes] == [b"new"]
    # The pruned checkpoint's writes and the blob only it referenced are gone.
    await store.put(record("t", cid(1), versions={"a": "1", "b": "1"}), {})
    restored = await must_get(store, "t", "", cid(1))
    assert as_dict(restored.values) == {"b": b1}
    assert list(restored.writes) == []
    # Other threads are untouched.
    assert await ids(store, thread_id="keep") == [cid(4), cid(3), cid(2), cid(1)]
    assert as_dict((await must_get(store, "keep", "", cid(1))).values) == {"a": a1, "b": b1}


async def test_prune_without_keep_latest_deletes_the_threads(store: CheckpointStore) -> None:
    for thread in ("t1", "t2", "t3"):
        await store.put(record(thread, cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"v")})
        await store.put(record(thread, cid(2), namespace="sub"), {})
    await store.prune(["t1", "t2"], keep_latest=False)
    assert await ids(store) == [cid(2), cid(1)]
    assert {item.record.thread_id for item in await listed(store)} == {"t3"}
    await store.put(record("t1", cid(1), versions={"a": "1"}), {})
    assert as_dict((await must_get(store, "t1")).values) == {}


async def test_expire_deletes_threads_by_their_newest_checkpoint(store: CheckpointStore) -> None:
    await store.put(record("old", cid(1)), {})
    await store.put(record("old", cid(2), namespace="sub"), {})
    await store.put(record("mixed", cid(1)), {})
    await asyncio.sleep(0.6)
    cutoff = time.time()
    await asyncio.sleep(0.6)
    await store.put(record("mixed", cid(2), parent_id=cid(1)), {})
    await store.put(record("new", cid(1)), {})

    assert await store.expire(0.0) == 0
    assert await store.expire(cutoff) == 1
    assert {item.record.thread_id for item in await listed(store)} == {"mixed", "new"}
    assert await ids(store, thread_id="mixed") == [cid(2), cid(1)]
    assert await store.expire(time.time() + 3600) == 2
    assert await ids(store) == []


# -- size ---------------------------------------------------------------------------------------


async def test_size_bytes_grows(store: CheckpointStore) -> None:
    before = await store.size_bytes()
    assert before >= 0
    await store.put(
        record("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", os.urandom(64 * 1024))}
    )
    assert await store.size_bytes() > before


async def test_storage_grows_linearly(store: CheckpointStore) -> None:
    """An unchanged big channel is stored once, however many checkpoints refer to it."""
    big = 256 * 1024
    await store.put(
        record("t", cid(0), versions={"big": "1", "small": "0"}),
        {("big", "1"): Blob("m", os.urandom(big)), ("small", "0"): Blob("m", os.urandom(100))},
    )
    first = await store.size_bytes()
    assert first >= big // 2
    parent = cid(0)
    for n in range(1, 201):
        await store.put(
            record(
                "t",
                cid(n),
                parent_id=parent,
                versions={"big": "1", "small": str(n)},
                metadata={"step": n},
            ),
            {("small", str(n)): Blob("m", os.urandom(100))},
            extends=parent,
            check_extends=True,
        )
        parent = cid(n)
    last = await store.size_bytes()
    assert last >= first
    # Copying the big value into each checkpoint would add 200 * 256 KiB = 50 MiB.
    assert last - first < 5 * big, (first, last)
    assert len((await must_get(store, "t")).values["big"].data) == big


# -- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", NETWORK_BACKENDS)
async def test_unreachable_backend_raises_checkpoint_error(backend: str) -> None:
    store = open_broken_backend(backend)
    with pytest.raises(CheckpointError) as caught:
        async with store:
            await store.get("t", "")
    assert not isinstance(caught.value, CheckpointConflictError)
    assert backend.lower() in str(caught.value).lower()


# -- factory -------------------------------------------------------------------------------------


def test_open_store_memory() -> None:
    assert isinstance(open_store("memory://"), MemoryCheckpointStore)
    assert open_store("memory://").name == "memory"


@pytest.mark.parametrize("url", ["mysql://localhost/db", "memory", "sqlite:///x.db", ""])
def test_open_store_unknown_scheme(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value)
    assert repr(url) in message
    for scheme in ("memory://", "duckdb://", "redis://", "rediss://", "postgresql://"):
        assert scheme in message


def test_open_store_masks_passwords_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        open_store("mysql://user:secret@localhost/db")
    assert "secret" not in str(caught.value)


def test_open_store_duckdb_paths(tmp_path: Path) -> None:
    cls = backend_class("duckdb")
    absolute = open_store(f"duckdb://{tmp_path}/a.duckdb")
    relative = open_store("duckdb://rel.duckdb")
    assert isinstance(absolute, cls)
    assert isinstance(relative, cls)
    assert absolute.name == "duckdb"
    with pytest.raises(ConfigError):
        open_store("duckdb://")


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://127.0.0.1:6380/0", "redis"),
        ("postgresql://postgres@127.0.0.1/test", "postgres"),
        ("postgres://postgres@127.0.0.1/test", "postgres"),
    ],
)
def test_open_store_network_backends(url: str, backend: str) -> None:
    cls = backend_class(backend)
    opened = open_store(url)
    assert isinstance(opened, cls)
    assert opened.name == backend


@pytest.mark.parametrize(
    ("backend", "package", "url"),
    [
        ("redis", "redis", "redis://127.0.0.1:6379/0"),
        ("postgres", "asyncpg", "postgresql://postgres@127.0.0.1/test"),
        ("duckdb", "duckdb", "duckdb:///tmp/x.duckdb"),
    ],
)
def test_open_store_missing_dependency_names_the_extra(
    backend: str, package: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend_class(backend)
    module = f"agentmesh.checkpoint.store.{backend}"
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    assert f"pip install 'agentmesh-checkpoint[{backend}]'" in str(caught.value)


# -- edge cases: ids that look like patterns, key order, empty payloads -----------------------


async def test_thread_ids_are_not_patterns_or_prefixes(store: CheckpointStore) -> None:
    threads = ["t", "t1", "t*", "t?", "t[1]", "t:x", "t%", "t_", "t\\", "ü 🙂"]
    for thread in threads:
        await store.put(record(thread, cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"v")})
        await store.put(record(thread, cid(2), namespace="t"), {})
        await store.put_writes(thread, "", cid(1), [write("task", 0, thread.encode())])
    await store.delete_thread("t*")
    await store.delete_thread("t%")
    await store.prune(["t"], keep_latest=False)
    await store.copy_thread("t?", "t_copy")
    await store.delete_thread("t?")
    remaining = {"t1", "t[1]", "t:x", "t_", "t\\", "ü 🙂", "t_copy"}
    assert {item.record.thread_id for item in await listed(store)} == remaining
    for thread in remaining - {"t_copy"}:
        got = await must_get(store, thread)
        assert as_dict(got.values) == {"a": Blob("m", b"v")}
        assert [w.value.data for w in got.writes] == [thread.encode()]
        assert await ids(store, thread_id=thread) == [cid(2), cid(1)]
    assert [w.value.data for w in (await must_get(store, "t_copy")).writes] == [b"t?"]


async def test_namespaces_are_not_prefixes(store: CheckpointStore) -> None:
    for namespace in ("", "a", "a:1", "a:1|b:2", "a*"):
        await store.put(
            record("t", cid(1), namespace=namespace, versions={"c": "1"}),
            {("c", "1"): Blob("m", namespace.encode())},
        )
        await store.put_writes("t", namespace, cid(1), [write("task", 0, namespace.encode())])
    for namespace in ("", "a", "a:1", "a:1|b:2", "a*"):
        got = await must_get(store, "t", namespace)
        assert as_dict(got.values) == {"c": Blob("m", namespace.encode())}
        assert [w.value.data for w in got.writes] == [namespace.encode()]
    assert await ids(store, thread_id="t", namespace="a") == [cid(1)]
    assert len(await listed(store, thread_id="t")) == 5


async def test_metadata_filter_is_json_equality(store: CheckpointStore) -> None:
    await store.put(
        record("t", cid(1), metadata={"flag": True, "nested": {"x": 1, "y": [1, {"z": None}]}}),
        {},
    )
    await store.put(record("t", cid(2), metadata={"flag": 1, "nested": {"x": 1}}), {})
    assert await ids(store, metadata={"flag": True}) == [cid(1)]
    assert await ids(store, metadata={"flag": 1}) == [cid(2)]
    # Key order inside nested objects does not matter; their content does.
    assert await ids(store, metadata={"nested": {"y": [1, {"z": None}], "x": 1}}) == [cid(1)]
    assert await ids(store, metadata={"nested": {"x": 1}}) == [cid(2)]
    assert await ids(store, metadata={"nested": {"y": [{"z": None}, 1], "x": 1}}) == []


async def test_empty_payloads_survive(store: CheckpointStore) -> None:
    await store.put(
        record("t", cid(1), versions={"e": "1"}, doc=b""), {("e", "1"): Blob("empty", b"")}
    )
    await store.put_writes("t", "", cid(1), [write("task", 0, b"")])
    got = await must_get(store, "t")
    assert got.record.checkpoint == Blob("msgpack", b"")
    assert as_dict(got.values) == {"e": Blob("empty", b"")}
    assert [w.value for w in got.writes] == [Blob("msgpack", b"")]


async def test_deleting_nothing_is_a_no_op(store: CheckpointStore) -> None:
    await store.put(record("t", cid(1), run_id="r"), {})
    await store.delete_for_runs([])
    await store.prune([])
    await store.prune([], keep_latest=False)
    await store.delete_thread("missing")
    await store.copy_thread("missing", "t")
    assert await ids(store) == [cid(1)]


async def test_records_read_back_are_copies(store: CheckpointStore) -> None:
    metadata: dict[str, Any] = {"step": 1, "parents": {"": cid(0)}}
    await store.put(record("t", cid(1), metadata=metadata), {})
    metadata["step"] = 99
    got = await must_get(store, "t")
    assert got.record.metadata == {"step": 1, "parents": {"": cid(0)}}
    mutable = got.record.metadata
    assert isinstance(mutable, dict)
    mutable["step"] = 42
    assert (await must_get(store, "t")).record.metadata["step"] == 1
