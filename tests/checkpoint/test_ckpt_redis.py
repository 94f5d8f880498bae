"""The Redis checkpoint store's own behaviour: key layout, sync twin, CAS, NOSCRIPT, errors.

The generic contract lives in test_ckpt_contract.py; here: the keys the Lua scripts write are the
ones the Python layout names (byte lengths, hash tags, odd characters), the sync and async stores
read each other's data, compare-and-set holds with several clients racing, scripts flushed from
the server are loaded again, and a closed port is a plain CheckpointError. Each test works under
its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import ormsgpack
import pytest
import redis
import redis.asyncio as aioredis

from agentmesh.checkpoint.store._redis_scripts import (
    blob_field,
    checkpoint_key,
    ids_key,
    namespace_key,
    namespaces_key,
    run_key,
    run_member,
    thread_base,
    threads_key,
    touched_key,
    write_field,
)
from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    CheckpointStore,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)
from agentmesh.checkpoint.store.redis import RedisCheckpointStore, SyncRedisCheckpointStore
from agentmesh.core.errors import CheckpointConflictError, CheckpointError

THREAD = "tëst:{x}"  # non-ASCII (byte lengths), braces and colons in a key part
NS = "parent:1|child:ü"


def cid(n: int) -> str:
    return f"1ef{n:05d}-0000-6000-8000-000000000000"


def rec(
    thread: str,
    checkpoint_id: str,
    *,
    ns: str = "",
    parent: str | None = None,
    versions: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    run: str | None = None,
) -> CheckpointRecord:
    return CheckpointRecord(
        thread_id=thread,
        namespace=ns,
        checkpoint_id=checkpoint_id,
        parent_id=parent,
        checkpoint=Blob("msgpack", b"doc\x00" + checkpoint_id.encode()),
        metadata=metadata if metadata is not None else {"step": 0},
        channel_versions=versions if versions is not None else {},
        run_id=run,
    )


@pytest.fixture
def url(redis_address: tuple[str, int]) -> str:
    host, port = redis_address
    return f"redis://{host}:{port}/0"


@pytest.fixture
def raw(url: str) -> Iterator[Any]:
    client: Any = redis.Redis.from_url(url)  # pyright: ignore[reportUnknownMemberType]
    yield client
    client.close()


@pytest.fixture
def prefix(raw: Any) -> Iterator[str]:
    name = f"agentmesh:test:{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(raw.scan_iter(match=f"{name}*", count=1000))
    if keys:
        raw.unlink(*keys)


@pytest.fixture
async def store(url: str, prefix: str) -> AsyncIterator[RedisCheckpointStore]:
    async with RedisCheckpointStore(url, prefix=prefix) as opened:
        yield opened


def _keys(raw: Any, prefix: str) -> set[str]:
    return {k.decode() for k in raw.scan_iter(match=f"{prefix}:*", count=1000)}


async def test_lua_writes_the_keys_the_python_layout_names(
    store: RedisCheckpointStore, raw: Any, prefix: str
) -> None:
    record = rec(THREAD, cid(1), ns=NS, versions={"a": "1", "b": "1"}, run="run-ü")
    await store.put(record, {("a", "1"): Blob("json", b"A"), ("b", "1"): Blob("bytes", b"\xff")})
    await store.put_writes(THREAD, NS, cid(1), [WriteRecord("task", "p", 0, "a", Blob("x", b"w"))])
    base = thread_base(prefix, THREAD)
    assert base == f"{prefix}:{len(THREAD.encode())}:{{{THREAD}}}"
    assert raw.zrange(ids_key(base, NS), 0, -1, withscores=True) == [(cid(1).encode(), 0.0)]
    fields = raw.hgetall(checkpoint_key(base, "c", NS, cid(1)))
    assert set(fields) == {b"t", b"d", b"m", b"v", b"r"}  # no parent: no "p"
    assert fields[b"r"] == "run-ü".encode()
    blobs = raw.hgetall(namespace_key(base, "b", NS))
    assert ormsgpack.unpackb(blobs[blob_field("a", "1").encode()]) == ["json", b"A"]
    writes = raw.hgetall(checkpoint_key(base, "w", NS, cid(1)))
    assert ormsgpack.unpackb(writes[write_field("task", 0).encode()]) == ["p", "a", "x", b"w"]
    assert raw.smembers(namespace_key(base, "x", NS)) == {cid(1).encode()}
    assert raw.smembers(namespaces_key(base)) == {NS.encode()}
    assert raw.smembers(threads_key(prefix)) == {THREAD.encode()}
    now = float(raw.time()[0])
    assert abs(raw.zscore(touched_key(prefix), THREAD) - now) < 60
    assert raw.smembers(run_key(prefix, "run-ü")) == {run_member(THREAD, NS, cid(1)).encode()}
    # every key of the thread is on the thread's hash tag
    thread_keys = _keys(raw, prefix) - {
        threads_key(prefix),
        touched_key(prefix),
        run_key(prefix, "run-ü"),
    }
    assert thread_keys
    assert all(k.startswith(base) for k in thread_keys)
    # the Lua-side names are the Python-side names: deleting by the scripts leaves nothing
    await store.delete_thread(THREAD)
    assert _keys(raw, prefix) == set()
    assert await store.size_bytes() == 0


async def test_a_blob_version_is_written_once(store: RedisCheckpointStore) -> None:
    await store.put(rec("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"first")})
    await store.put(
        rec("t", cid(2), parent=cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"second")}
    )
    got = await store.get("t", "")
    assert got is not None
    assert got.record.checkpoint_id == cid(2)
    assert got.values == {"a": Blob("m", b"first")}


async def test_large_values_are_read_apart_from_the_script_and_come_back_whole(
    store: RedisCheckpointStore, url: str, prefix: str
) -> None:
    big = bytes(range(256)) * 1024  # 256 KiB: above what the get script passes through Lua
    small = b"s" * 100
    versions = {"big": "1", "small": "1", "gone": "1"}
    await store.put(
        rec(THREAD, cid(1), ns=NS, versions=versions),
        {("big", "1"): Blob("m+zstd", big), ("small", "1"): Blob("m", small)},
    )
    got = await store.get(THREAD, NS)
    assert got is not None
    assert got.values == {"big": Blob("m+zstd", big), "small": Blob("m", small)}
    with SyncRedisCheckpointStore(url, prefix=prefix) as twin:
        assert twin.get(THREAD, NS, cid(1)) == got


async def test_re_put_with_another_run_moves_the_run_index(store: RedisCheckpointStore) -> None:
    await store.put(rec("t", cid(1), run="r1"), {})
    await store.put(rec("t", cid(1), run="r2"), {})
    await store.delete_for_runs(["r1"])
    assert await store.get("t", "", cid(1)) is not None
    await store.delete_for_runs(["r2"])
    assert await store.get("t", "", cid(1)) is None


async def test_orphan_writes_and_emptied_runs_leave_no_keys(
    store: RedisCheckpointStore, raw: Any, prefix: str
) -> None:
    await store.put_writes("t", "ns", cid(9), [WriteRecord("k", "", 0, "c", Blob("m", b"v"))])
    await store.put(rec("u", cid(1), versions={"a": "1"}, run="r"), {("a", "1"): Blob("m", b"")})
    await store.delete_thread("t")
    await store.delete_for_runs(["r"])
    assert _keys(raw, prefix) == set()


async def test_prune_keeps_only_the_referenced_blob_fields(
    store: RedisCheckpointStore, raw: Any, prefix: str
) -> None:
    await store.put(
        rec("t", cid(1), versions={"a": "1", "b": "1"}),
        {("a", "1"): Blob("m", b"a1"), ("b", "1"): Blob("m", b"b1")},
    )
    await store.put(
        rec("t", cid(2), parent=cid(1), versions={"a": "2", "b": "1"}),
        {("a", "2"): Blob("m", b"a2")},
    )
    await store.put_writes("t", "", cid(1), [WriteRecord("k", "", 0, "c", Blob("m", b"v"))])
    await store.prune(["t"])
    base = thread_base(prefix, "t")
    assert set(raw.hkeys(namespace_key(base, "b", ""))) == {
        blob_field("a", "2").encode(),
        blob_field("b", "1").encode(),
    }
    assert not raw.exists(checkpoint_key(base, "w", "", cid(1)))
    assert raw.zrange(ids_key(base, ""), 0, -1) == [cid(2).encode()]


async def test_size_counts_only_this_prefix(url: str, prefix: str, raw: Any) -> None:
    async with (
        RedisCheckpointStore(url, prefix=prefix) as mine,
        RedisCheckpointStore(url, prefix=prefix + "x") as other,
    ):
        await other.put(rec("t", cid(1)), {})
        assert await mine.size_bytes() == 0
        assert await other.size_bytes() > 0
        await other.delete_thread("t")
    assert _keys(raw, prefix + "x") == set()


async def test_list_merges_threads_and_namespaces_in_pages(store: RedisCheckpointStore) -> None:
    expected: list[tuple[str, str, str]] = []
    for n in range(150):  # more than a page (64) per stream and a fetch batch (32)
        thread, ns = ("a", "") if n % 3 else ("b", "sub")
        await store.put(rec(thread, cid(n), ns=ns, metadata={"step": n, "odd": n % 2 == 1}), {})
        expected.append((cid(n), thread, ns))
    await store.put(rec("c", cid(75), ns="x"), {})  # same id as another thread's checkpoint
    expected.append((cid(75), "c", "x"))
    expected.sort(reverse=True)

    def keys(items: list[StoredCheckpoint]) -> list[tuple[str, str, str]]:
        return [(s.record.checkpoint_id, s.record.thread_id, s.record.namespace) for s in items]

    everything = [s async for s in store.list(ListQuery())]
    assert keys(everything) == expected
    limited = [s async for s in store.list(ListQuery(limit=70, before=cid(100)))]
    assert keys(limited) == [k for k in expected if k[0] < cid(100)][:70]
    odd = [s async for s in store.list(ListQuery(thread_id="a", metadata={"odd": True}))]
    assert keys(odd) == [k for k in expected if k[1] == "a" and int(k[0][3:8]) % 2 == 1]
    # true is not 1: a JSON-equal filter
    assert [s async for s in store.list(ListQuery(metadata={"odd": 1}))] == []
    same_id = [s async for s in store.list(ListQuery(checkpoint_id=cid(75)))]
    assert keys(same_id) == [k for k in expected if k[0] == cid(75)]


async def test_sync_twin_reads_and_writes_the_same_data(
    store: RedisCheckpointStore, url: str, prefix: str
) -> None:
    await store.put(rec("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"A")})
    await store.put_writes("t", "", cid(1), [WriteRecord("k", "p", -1, "c", Blob("m", b"e"))])
    with SyncRedisCheckpointStore(url, prefix=prefix) as sync:
        assert sync.name == "redis"
        assert sync.get("t", "") == await store.get("t", "")
        sync.put(
            rec("t", cid(2), parent=cid(1), versions={"a": "2"}),
            {("a", "2"): Blob("m", b"B")},
            extends=cid(1),
            check_extends=True,
        )
        with pytest.raises(CheckpointConflictError) as conflict:
            sync.put(rec("t", cid(3), parent=cid(1)), {}, extends=cid(1), check_extends=True)
        assert conflict.value.actual == cid(2)
        from_async = await store.get("t", "")
        assert from_async is not None
        assert from_async.values == {"a": Blob("m", b"B")}
        assert list(sync.list(ListQuery(thread_id="t"))) == [
            s async for s in store.list(ListQuery(thread_id="t"))
        ]
        assert sync.size_bytes() == await store.size_bytes()
        sync.copy_thread("t", "u")
        assert await store.get("u", "", cid(1)) is not None
        sync.prune(["u"], keep_latest=False)
        assert sync.expire(0.0) == 0
        sync.delete_thread("t")
        assert await store.get("t", "") is None
    with pytest.raises(CheckpointError, match="closed"):
        sync.get("t", "")


async def _attempt(
    client: RedisCheckpointStore, me: str, parent: str | None
) -> str | CheckpointConflictError:
    try:
        await client.put(rec("race", me, parent=parent), {}, extends=parent, check_extends=True)
    except CheckpointConflictError as exc:
        return exc
    return me


def _attempt_sync(
    client: SyncRedisCheckpointStore, me: str, parent: str | None, out: list[object]
) -> None:
    try:
        client.put(rec("race", me, parent=parent), {}, extends=parent, check_extends=True)
    except CheckpointConflictError as exc:
        out.append(exc)
    else:
        out.append(me)


async def test_compare_and_set_holds_with_several_clients(url: str, prefix: str) -> None:
    clients = [RedisCheckpointStore(url, prefix=prefix) for _ in range(5)]
    for client in clients:
        await client.open()
    syncs = [SyncRedisCheckpointStore(url, prefix=prefix) for _ in range(3)]
    try:
        head: str | None = None
        for step in range(6):
            ids = [f"{cid(step)}-{i}" for i in range(len(clients) + len(syncs))]
            outcomes: list[object] = []
            threads = [
                threading.Thread(
                    target=_attempt_sync, args=(s, ids[len(clients) + i], head, outcomes)
                )
                for i, s in enumerate(syncs)
            ]
            for t in threads:
                t.start()
            outcomes += await asyncio.gather(
                *(_attempt(c, ids[i], head) for i, c in enumerate(clients))
            )
            for t in threads:
                t.join()
            wins = [o for o in outcomes if isinstance(o, str)]
            conflicts = [o for o in outcomes if isinstance(o, CheckpointConflictError)]
            assert len(wins) == 1
            assert len(conflicts) == len(ids) - 1
            assert all(c.actual == wins[0] and c.expected == head for c in conflicts)
            newest = await clients[0].get("race", "")
            assert newest is not None
            assert newest.record.checkpoint_id == wins[0]
            head = wins[0]
        chain = [s async for s in clients[0].list(ListQuery(thread_id="race"))]
        assert len(chain) == 6
    finally:
        for client in clients:
            await client.aclose()
        for s in syncs:
            s.close()


async def test_scripts_flushed_from_the_server_are_loaded_again(
    store: RedisCheckpointStore, url: str, prefix: str
) -> None:
    flusher: Any = aioredis.Redis.from_url(url)  # pyright: ignore[reportUnknownMemberType]
    try:
        await store.put(rec("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"A")})
        await flusher.script_flush()
        await store.put(rec("t", cid(2), parent=cid(1)), {}, extends=cid(1), check_extends=True)
        await flusher.script_flush()
        got = await store.get("t", "", cid(1))
        assert got is not None
        assert got.values == {"a": Blob("m", b"A")}
        await flusher.script_flush()
        # list sends its reads as one pipeline of EVALSHA: the batch is repeated once loaded
        listed = [s.record.checkpoint_id async for s in store.list(ListQuery(thread_id="t"))]
        assert listed == [cid(2), cid(1)]
        with SyncRedisCheckpointStore(url, prefix=prefix) as sync:
            await flusher.script_flush()
            newest = sync.get("t", "")
            assert newest is not None
            assert newest.record.checkpoint_id == cid(2)
    finally:
        await flusher.aclose()


def _kill_clients(raw: Any, name: str) -> int:
    killed = 0
    for client in raw.client_list():
        if client.get("name") == name:
            raw.client_kill_filter(_id=client["id"])
            killed += 1
    return killed


async def test_connections_killed_by_the_server_are_replaced(
    url: str, prefix: str, raw: Any
) -> None:
    name = f"ckpt-test-{uuid.uuid4().hex[:8]}"
    named = f"{url}?client_name={name}"
    async with RedisCheckpointStore(named, prefix=prefix) as store:
        await store.put(rec("t", cid(1)), {})
        assert _kill_clients(raw, name) >= 1
        got = await store.get("t", "")
        assert got is not None
        assert got.record.checkpoint_id == cid(1)
    with SyncRedisCheckpointStore(named, prefix=prefix) as sync:
        sync.put(rec("t", cid(2), parent=cid(1)), {}, extends=cid(1), check_extends=True)
        assert _kill_clients(raw, name) >= 1
        newest = sync.get("t", "")
        assert newest is not None
        assert newest.record.checkpoint_id == cid(2)


async def test_expire_uses_the_redis_clock(store: RedisCheckpointStore, raw: Any) -> None:
    await store.put(rec("old", cid(1)), {})
    now = float(raw.time()[0])
    assert await store.expire(now - 3600) == 0
    assert await store.expire(now + 3600) == 1
    assert await store.get("old", "") is None


async def test_a_closed_port_is_a_plain_checkpoint_error() -> None:
    broken = RedisCheckpointStore("redis://127.0.0.1:1/0", prefix="agentmesh:test:broken")
    with pytest.raises(CheckpointError, match=r"^redis checkpoint store at 127\.0\.0\.1:1: "):
        await broken.open()
    with pytest.raises(CheckpointError, match=r"^redis checkpoint store at 127\.0\.0\.1:1: "):
        await broken.get("t", "")
    await broken.aclose()
    sync = SyncRedisCheckpointStore("redis://127.0.0.1:1/0", prefix="agentmesh:test:broken")
    with pytest.raises(CheckpointError, match=r"^redis checkpoint store at 127\.0\.0\.1:1: "):
        sync.put(rec("t", cid(1)), {})
    sync.close()


def test_both_stores_have_the_store_interfaces(url: str) -> None:
    store: CheckpointStore = RedisCheckpointStore(url)
    assert isinstance(store, CheckpointStore)
    assert store.name == "redis"
    twin = SyncRedisCheckpointStore(url, prefix="agentmesh:test:x")
    assert twin.prefix == "agentmesh:test:x"
    assert twin.address == "127.0.0.1:6379"


def test_an_empty_prefix_is_refused() -> None:
    with pytest.raises(CheckpointError, match="prefix"):
        RedisCheckpointStore("redis://127.0.0.1:6379/0", prefix="")


async def test_a_listing_reads_each_shared_large_value_once(
    store: RedisCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 checkpoints each refer to the same two large values (too large for the GET script
    # to pass through) and to one of their own
    shared = {
        ("doc", "1"): Blob("bytes", b"d" * 200_000),
        ("log", "1"): Blob("bytes", b"l" * 90_000),
    }
    for n in range(40):
        own = {("own", str(n)): Blob("bytes", bytes([n]) * 70_000)}
        versions = {"doc": "1", "log": "1", "own": str(n)}
        record = rec("big", cid(n), parent=cid(n - 1) if n else None, versions=versions)
        await store.put(record, {**shared, **own} if n == 0 else own)
    fields_read: list[int] = []
    real_exec = store._exec  # pyright: ignore[reportPrivateUsage]

    async def counting_exec(batch: Any) -> list[Any]:
        for command in batch.requests:
            if isinstance(command, tuple) and command and command[0] == "HMGET":
                fields_read.append(len(command) - 2)
        return await real_exec(batch)

    monkeypatch.setattr(store, "_exec", counting_exec)
    listed = [c async for c in store.list(ListQuery(thread_id="big"))]
    assert len(listed) == 40
    assert sum(fields_read) == 2 + 40  # the shared ones once, each checkpoint's own once
    monkeypatch.undo()
    for item in listed:
        alone = await store.get("big", "", item.record.checkpoint_id)
        assert alone is not None
        assert item.values == alone.values
        assert item.values["doc"].data == b"d" * 200_000


async def test_a_listing_page_sends_each_shared_value_once(
    store: RedisCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two threads, each with a small value at the same channel and version but different bytes,
    # which all of its checkpoints share, and one value of each checkpoint's own
    for thread in ("a", "b"):
        shared = {("sys", "1"): Blob("bytes", f"system prompt of {thread} ".encode() * 20)}
        for n in range(10):
            own = {("step", str(n)): Blob("bytes", f"{thread}{n}".encode())}
            record = rec(
                thread,
                cid(n),
                parent=cid(n - 1) if n else None,
                versions={"sys": "1", "step": str(n)},
            )
            await store.put(record, {**shared, **own} if n == 0 else own)
    replies: list[bytes] = []
    real_exec = store._exec  # pyright: ignore[reportPrivateUsage]

    async def recording_exec(batch: Any) -> list[Any]:
        result = await real_exec(batch)
        for reply in result:
            if isinstance(reply, list):
                replies.extend(r for r in reply if isinstance(r, bytes))  # pyright: ignore[reportUnknownVariableType]
        return result

    monkeypatch.setattr(store, "_exec", recording_exec)
    listed = [c async for c in store.list(ListQuery())]
    monkeypatch.undo()
    assert len(listed) == 20
    wire = b"".join(replies)
    for thread in ("a", "b"):
        assert wire.count(f"system prompt of {thread} ".encode() * 20) == 1
    for item in listed:
        alone = await store.get(item.record.thread_id, "", item.record.checkpoint_id)
        assert alone is not None
        assert item.values == alone.values
        assert item.values["sys"].data.startswith(
            f"system prompt of {item.record.thread_id}".encode()
        )
