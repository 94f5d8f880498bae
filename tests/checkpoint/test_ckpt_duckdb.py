"""DuckDB checkpoint store specifics: persistence, the sync twin, migrations, locking, caching.

The generic semantics are in ``test_ckpt_contract.py``; these tests cover what only the DuckDB
store has: a file that outlives the store, a synchronous twin sharing the file, versioned
migrations, the one-writer-process lock, the cache in front of the file and write-behind.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest

from agentmesh.checkpoint.store import MemoryCheckpointStore
from agentmesh.checkpoint.store import duckdb as duckdb_store
from agentmesh.checkpoint.store._duckdb_schema import SCHEMA_VERSION, Migration
from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)
from agentmesh.checkpoint.store.duckdb import DuckDBCheckpointStore, SyncDuckDBCheckpointStore
from agentmesh.core.errors import CheckpointConflictError, CheckpointError


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
) -> CheckpointRecord:
    return CheckpointRecord(
        thread_id=thread_id,
        namespace=namespace,
        checkpoint_id=checkpoint_id,
        parent_id=parent_id,
        checkpoint=Blob("msgpack", f"doc-{checkpoint_id}".encode()),
        metadata=dict(metadata or {}),
        channel_versions=dict(versions or {}),
        run_id=run_id,
    )


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Query the (closed) file directly."""
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def summary(stored: StoredCheckpoint | None) -> tuple[Any, ...]:
    assert stored is not None
    return (
        stored.record.checkpoint_id,
        stored.record.parent_id,
        dict(stored.record.metadata),
        dict(stored.record.channel_versions),
        {channel: (blob.type, blob.data) for channel, blob in stored.values.items()},
        [(w.task_id, w.task_path, w.idx, w.channel, w.value.data) for w in stored.writes],
    )


def fill(store: SyncDuckDBCheckpointStore, thread_id: str, steps: int) -> None:
    """A chain of ``steps`` checkpoints, a new ``a`` value each step, one write per step."""
    parent: str | None = None
    for n in range(steps):
        store.put(
            record(thread_id, cid(n), parent_id=parent, versions={"a": str(n), "b": "0"}),
            {("a", str(n)): Blob("msgpack", b"a%d" % n), ("b", "0"): Blob("json", b"b")},
            extends=parent,
            check_extends=True,
        )
        store.put_writes(
            thread_id, "", cid(n), [WriteRecord("task", "p", 0, "a", Blob("msgpack", b"w%d" % n))]
        )
        parent = cid(n)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "ckpt.duckdb"


# --- persistence, sync twin ---------------------------------------------------------------------


async def test_persists_across_reopen(path: Path) -> None:
    async with DuckDBCheckpointStore(path) as store:
        await store.put(
            record("t", cid(1), versions={"a": "1"}, metadata={"step": 1}, run_id="r1"),
            {("a", "1"): Blob("msgpack", b"one")},
        )
        await store.put_writes(
            "t",
            "",
            cid(1),
            [
                WriteRecord("task2", "b", 0, "a", Blob("msgpack", b"x")),
                WriteRecord("task1", "a", -1, "__error__", Blob("json", b"err")),
            ],
        )
        before = summary(await store.get("t", ""))
    async with DuckDBCheckpointStore(path) as store:
        after = summary(await store.get("t", ""))
        listed = [summary(item) async for item in store.list(ListQuery(thread_id="t"))]
    assert after == before
    assert listed == [before]
    assert after[4] == {"a": ("msgpack", b"one")}
    assert [w[0] for w in after[5]] == ["task1", "task2"]


async def test_sync_twin_and_async_store_share_the_file(path: Path) -> None:
    with SyncDuckDBCheckpointStore(path) as sync_store:
        fill(sync_store, "t", 3)
        expected = [summary(item) for item in sync_store.list(ListQuery(thread_id="t"))]
    async with DuckDBCheckpointStore(path) as store:
        got = [summary(item) async for item in store.list(ListQuery(thread_id="t"))]
        assert got == expected
        await store.put(
            record("t", cid(3), parent_id=cid(2), versions={"a": "3", "b": "0"}),
            {("a", "3"): Blob("msgpack", b"a3")},
            extends=cid(2),
            check_extends=True,
        )
    with SyncDuckDBCheckpointStore(path) as sync_store:
        newest = sync_store.get("t", "")
        assert summary(newest)[0] == cid(3)
        assert summary(newest)[4] == {"a": ("msgpack", b"a3"), "b": ("json", b"b")}
        with pytest.raises(CheckpointConflictError):
            sync_store.put(record("t", cid(9)), {}, extends=cid(2), check_extends=True)


async def test_sync_and_async_open_together_see_one_state(path: Path) -> None:
    async with DuckDBCheckpointStore(path) as store:
        with SyncDuckDBCheckpointStore(path) as sync_store:
            sync_store.put(record("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"1")})
            got = await store.get("t", "")
            assert summary(got)[0] == cid(1)
            with pytest.raises(CheckpointConflictError):
                await store.put(record("t", cid(2)), {}, extends=None, check_extends=True)
        # The async store still works after the twin closed.
        await store.put(
            record("t", cid(2), parent_id=cid(1)), {}, extends=cid(1), check_extends=True
        )
    assert rows(path, "SELECT count(*) FROM ckpt_checkpoints") == [(2,)]


# --- migrations ---------------------------------------------------------------------------------


def test_migrations_applied_once_and_recorded(path: Path) -> None:
    with SyncDuckDBCheckpointStore(path):
        pass
    with SyncDuckDBCheckpointStore(path):
        pass
    applied = rows(path, "SELECT version FROM ckpt_migrations ORDER BY version")
    assert applied == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    tables = {r[0] for r in rows(path, "SELECT table_name FROM duckdb_tables()")}
    assert {"ckpt_checkpoints", "ckpt_blobs", "ckpt_writes", "ckpt_migrations"} <= tables


def test_pending_migration_applied_at_open(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SyncDuckDBCheckpointStore(path) as store:
        store.put(record("t", cid(1)), {})
    extra = Migration(
        SCHEMA_VERSION + 1, "test column", ("ALTER TABLE ckpt_checkpoints ADD COLUMN note VARCHAR",)
    )
    monkeypatch.setattr(duckdb_store, "MIGRATIONS", (*duckdb_store.MIGRATIONS, extra))
    monkeypatch.setattr(duckdb_store, "SCHEMA_VERSION", extra.version)
    with SyncDuckDBCheckpointStore(path) as store:
        assert summary(store.get("t", ""))[0] == cid(1)
    assert rows(path, "SELECT max(version), count(*) FROM ckpt_migrations") == [
        (extra.version, extra.version)
    ]
    assert rows(path, "SELECT count(note) FROM ckpt_checkpoints") == [(0,)]


def test_newer_schema_refused(path: Path) -> None:
    with SyncDuckDBCheckpointStore(path):
        pass
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO ckpt_migrations (version, name) VALUES (999, 'future')")
    with pytest.raises(CheckpointError, match="newer"):
        SyncDuckDBCheckpointStore(path).open()


# --- locking, errors ----------------------------------------------------------------------------


@pytest.fixture
def held_by_other_process(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import duckdb, sys\n"
        f"con = duckdb.connect({str(path)!r})\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        yield path
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


async def test_file_locked_by_another_process(held_by_other_process: Path) -> None:
    with pytest.raises(CheckpointError, match="another process holds the file") as caught:
        async with DuckDBCheckpointStore(held_by_other_process):
            pass
    assert str(held_by_other_process) in str(caught.value)
    with pytest.raises(CheckpointError, match="another process holds the file"):
        SyncDuckDBCheckpointStore(held_by_other_process).open()


def test_not_a_duckdb_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_bytes(b"this is not a database" * 1000)
    with pytest.raises(CheckpointError, match="duckdb checkpoint store at"):
        SyncDuckDBCheckpointStore(bogus).open()


def test_closed_store_refuses_calls(path: Path) -> None:
    store = SyncDuckDBCheckpointStore(path)
    with pytest.raises(CheckpointError, match="not open"):
        store.get("t", "")
    with store:
        store.put(record("t", cid(1)), {})
    with pytest.raises(CheckpointError, match="not open"):
        store.get("t", "")


def test_failed_background_write_is_reported(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SyncDuckDBCheckpointStore(path).open()

    def broken(con: Any, batch: Any) -> None:
        raise duckdb.IOException("IO Error: disk full")

    monkeypatch.setattr(duckdb_store, "_insert_batch", broken)
    store.put(record("t", cid(1)), {})  # queued: the failure comes later
    with pytest.raises(CheckpointError, match="disk full"):
        store.flush()
    with pytest.raises(CheckpointError, match="reopen"):
        store.get("t", "")
    store.close()  # already reported: closing does not raise it again
    monkeypatch.undo()
    with SyncDuckDBCheckpointStore(path) as reopened:
        assert reopened.get("t", "") is None


# --- blobs, writes, keys ------------------------------------------------------------------------


@pytest.mark.parametrize("cache_bytes", [duckdb_store.CACHE_BYTES, 0])
def test_blob_written_once(path: Path, cache_bytes: int) -> None:
    with SyncDuckDBCheckpointStore(path, cache_bytes=cache_bytes) as store:
        store.put(record("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"first")})
        store.put(record("t", cid(2), versions={"a": "1"}), {("a", "1"): Blob("m", b"second")})
    with SyncDuckDBCheckpointStore(path, cache_bytes=cache_bytes) as store:
        # Not mirrored yet after reopen: the worker looks the key up before inserting.
        store.put(record("t", cid(3), versions={"a": "1"}), {("a", "1"): Blob("m", b"third")})
        store.put(record("t", cid(3), versions={"a": "1"}), {("a", "1"): Blob("m", b"third")})
        assert summary(store.get("t", ""))[4] == {"a": ("m", b"first")}
        assert summary(store.get("t", "", cid(1)))[4] == {"a": ("m", b"first")}
    assert rows(path, "SELECT count(*), min(data) FROM ckpt_blobs") == [(1, b"first")]
    assert rows(path, "SELECT count(*) FROM ckpt_checkpoints") == [(3,)]


def test_writes_keep_and_replace_after_reopen(path: Path) -> None:
    with SyncDuckDBCheckpointStore(path) as store:
        store.put(record("t", cid(1)), {})
        store.put_writes(
            "t",
            "",
            cid(1),
            [
                WriteRecord("task", "", 0, "a", Blob("m", b"keep")),
                WriteRecord("task", "", -1, "__error__", Blob("m", b"old")),
            ],
        )
    with SyncDuckDBCheckpointStore(path) as store:
        store.put_writes(
            "t",
            "",
            cid(1),
            [
                WriteRecord("task", "", 0, "a", Blob("m", b"ignored")),
                WriteRecord("task", "", -1, "__error__", Blob("m", b"new")),
            ],
        )
        got = summary(store.get("t", ""))[5]
    assert sorted((w[2], w[4]) for w in got) == [(-1, b"new"), (0, b"keep")]
    assert rows(path, "SELECT count(*) FROM ckpt_writes") == [(2,)]


@pytest.mark.parametrize("cache_bytes", [duckdb_store.CACHE_BYTES, 0])
def test_copy_thread_keys_with_unicode(path: Path, cache_bytes: int) -> None:
    source, target = "thréad:1", "目标:2"
    with SyncDuckDBCheckpointStore(path, cache_bytes=cache_bytes) as store:
        store.put(
            record(source, cid(1), namespace="ns:é", versions={"chan:ü": "v:1"}),
            {("chan:ü", "v:1"): Blob("m", b"value")},
        )
        store.put_writes(source, "ns:é", cid(1), [WriteRecord("täsk", "", 3, "c", Blob("m", b"w"))])
        store.copy_thread(source, target)
    with SyncDuckDBCheckpointStore(path, cache_bytes=cache_bytes) as store:
        got = summary(store.get(target, "ns:é"))
        assert got[4] == {"chan:ü": ("m", b"value")}
        assert got[5] == [("täsk", "", 3, "c", b"w")]
        assert summary(store.get(source, "ns:é"))[4:] == got[4:]


# --- cache and write-behind ---------------------------------------------------------------------


def test_small_cache_answers_like_the_file(path: Path) -> None:
    with SyncDuckDBCheckpointStore(path, cache_bytes=2_000) as store:
        for thread in range(4):
            fill(store, f"t{thread}", 5)
        cached = {
            f"t{thread}": [summary(i) for i in store.list(ListQuery(thread_id=f"t{thread}"))]
            for thread in range(4)
        }
    with SyncDuckDBCheckpointStore(path, cache_bytes=0) as store:
        for thread_id, expected in cached.items():
            assert [summary(i) for i in store.list(ListQuery(thread_id=thread_id))] == expected
            assert len(expected) == 5
            assert expected[0][4] == {"a": ("msgpack", b"a4"), "b": ("json", b"b")}


def test_unreported_write_failure_raised_by_close(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SyncDuckDBCheckpointStore(path).open()

    def broken(con: Any, batch: Any) -> None:
        raise duckdb.IOException("IO Error: disk full")

    monkeypatch.setattr(duckdb_store, "_insert_batch", broken)
    store.put(record("t", cid(1)), {})
    with pytest.raises(CheckpointError, match="disk full"):
        store.close()


def test_durable_put_is_in_the_file_when_it_returns(path: Path) -> None:
    with SyncDuckDBCheckpointStore(path, durable=True) as store:
        store.put(record("t", cid(1), versions={"a": "1"}), {("a", "1"): Blob("m", b"x")})
        with duckdb_store._CORES_LOCK:  # pyright: ignore[reportPrivateUsage]
            core = next(iter(duckdb_store._CORES.values()))  # pyright: ignore[reportPrivateUsage]
        assert core._queued_bytes == 0  # pyright: ignore[reportPrivateUsage]


def test_flush_commits_queued_writes(path: Path) -> None:
    with SyncDuckDBCheckpointStore(path) as store:
        fill(store, "t", 20)
        store.flush()
        assert store.size_bytes() > 0
        assert summary(store.get("t", ""))[0] == cid(19)


def test_a_new_threads_first_steps_are_listed_from_memory(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SyncDuckDBCheckpointStore(path) as store:
        # put before anything read the thread: no mirror yet, so the values are only queued
        parent: str | None = None
        for n in range(3):
            store.put(
                record("t", cid(n), parent_id=parent, versions={"a": str(n)}),
                {("a", str(n)): Blob("msgpack", b"a%d" % n)},
            )
            store.put_writes(
                "t", "", cid(n), [WriteRecord("task", "p", 0, "a", Blob("m", b"w%d" % n))]
            )
            parent = cid(n)
        assert summary(store.get("t", ""))[0] == cid(2)  # loads the thread from the file
        fetched: list[int] = []
        fetch = duckdb_store._fetch_values  # pyright: ignore[reportPrivateUsage]

        def counting(con: Any, thread_id: str, keys: Any) -> Any:
            fetched.append(len(keys))
            return fetch(con, thread_id, keys)

        monkeypatch.setattr(duckdb_store, "_fetch_values", counting)
        listed = [summary(c) for c in store.list(ListQuery("t"))]
        assert fetched == []  # every value was cached once its batch was stored
        assert [(c[0], c[4], c[5]) for c in listed] == [
            (cid(n), {"a": ("msgpack", b"a%d" % n)}, [("task", "p", 0, "a", b"w%d" % n)])
            for n in (2, 1, 0)
        ]


def _slowed(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make a worker function wait before it runs, so reads race the change it makes."""
    work = getattr(duckdb_store, name)

    def slow(*args: Any) -> Any:
        time.sleep(0.3)
        return work(*args)

    monkeypatch.setattr(duckdb_store, name, slow)


@pytest.mark.parametrize(
    "change",
    ["put", "put_writes", "delete_for_runs", "expire", "prune", "copy_thread"],
)
def test_reads_never_overtake_a_queued_change(
    path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    with SyncDuckDBCheckpointStore(path) as store:
        store.put(
            record("t", cid(0), versions={"a": "0"}, run_id="r1"), {("a", "0"): Blob("m", b"0")}
        )
        store.put(record("t", cid(1), parent_id=cid(0), run_id="r1"), {})
    # reopened: nothing is mirrored, so each read below loads the thread from the file, and
    # the change it must see is still queued behind a slow worker
    with SyncDuckDBCheckpointStore(path) as store:
        if change == "put":
            _slowed(monkeypatch, "_insert_batch")
            store.put(record("t", cid(2), parent_id=cid(1)), {})
            assert summary(store.get("t", ""))[0] == cid(2)
        elif change == "put_writes":
            _slowed(monkeypatch, "_insert_batch")
            store.put_writes("t", "", cid(1), [WriteRecord("k", "", 0, "a", Blob("m", b"w"))])
            assert summary(store.get("t", ""))[5] == [("k", "", 0, "a", b"w")]
        else:
            slow, call, check = {
                "delete_for_runs": (
                    "_delete_for_runs",
                    lambda: store.delete_for_runs(["r1"]),
                    lambda: store.get("t", "") is None,
                ),
                "expire": (
                    "_expire",
                    lambda: store.expire(time.time() + 60),
                    lambda: store.get("t", "") is None,
                ),
                "prune": (
                    "_prune_keep_latest",
                    lambda: store.prune(["t"]),
                    lambda: (
                        [c.record.checkpoint_id for c in store.list(ListQuery("t"))] == [cid(1)]
                    ),
                ),
                "copy_thread": (
                    "_copy_thread",
                    lambda: store.copy_thread("t", "copy"),
                    lambda: summary(store.get("copy", ""))[0] == cid(1),
                ),
            }[change]
            _slowed(monkeypatch, slow)
            worker = threading.Thread(target=call)
            worker.start()
            time.sleep(0.1)  # the change is queued, not yet made
            assert check()
            worker.join()


def test_per_thread_bookkeeping_stays_bounded(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_store, "_MAX_FACTS", 8)
    # a tiny cache: mirrors are evicted at once, leaving their heads behind
    with SyncDuckDBCheckpointStore(path, cache_bytes=2_000) as store:
        for n in range(40):
            fill(store, f"t{n}", 2)
        core: Any = store._c()  # pyright: ignore[reportPrivateUsage]
        assert len(core._gens) <= 8
        assert len(core._heads) <= 8
        assert len(core._too_big) <= 8
        # what was dropped is read again from the file: answers and compare-and-set hold
        for n in range(40):
            assert summary(store.get(f"t{n}", ""))[0] == cid(1)
        with pytest.raises(CheckpointConflictError):
            store.put(
                record("t3", cid(9), parent_id=cid(0)), {}, extends=cid(0), check_extends=True
            )
        store.put(record("t3", cid(9), parent_id=cid(1)), {}, extends=cid(1), check_extends=True)
        assert summary(store.get("t3", ""))[0] == cid(9)


def test_compare_and_set_is_atomic_across_threads(path: Path) -> None:
    with SyncDuckDBCheckpointStore(path) as store:
        store.put(record("t", cid(0)), {})
        results: list[str] = []
        barrier = threading.Barrier(8)

        def writer(n: int) -> None:
            barrier.wait()
            try:
                store.put(
                    record("t", cid(100 + n), parent_id=cid(0)),
                    {},
                    extends=cid(0),
                    check_extends=True,
                )
                results.append("ok")
            except CheckpointConflictError:
                results.append("conflict")

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == ["conflict"] * 7 + ["ok"]
        assert len(list(store.list(ListQuery(thread_id="t")))) == 2


# --- the cache never disagrees with the reference -----------------------------------------------


@pytest.mark.parametrize("cache_bytes", [duckdb_store.CACHE_BYTES, 3_000, 0])
async def test_random_operations_match_the_memory_store(path: Path, cache_bytes: int) -> None:
    """Random puts, writes, reads and maintenance give the memory store's answers."""
    rng = random.Random(cache_bytes)
    threads, namespaces = ["t0", "t1", "t2"], ["", "sub"]
    next_id = 0
    async with (
        MemoryCheckpointStore() as reference,
        DuckDBCheckpointStore(path, cache_bytes=cache_bytes) as store,
    ):
        for step in range(300):
            thread, namespace = rng.choice(threads), rng.choice(namespaces)
            op = rng.random()
            if op < 0.4:
                next_id += 1
                head = await reference.get(thread, namespace)
                parent = head.record.checkpoint_id if head else None
                channel = rng.choice("abc")
                version = str(rng.randrange(4))
                rec = record(
                    thread,
                    cid(next_id),
                    namespace=namespace,
                    parent_id=parent,
                    versions={channel: version, "z": "0"},
                    metadata={"step": step, "n": {"k": [rng.randrange(3)]}},
                    run_id=rng.choice(["r1", "r2", None]),
                )
                blobs = {(channel, version): Blob("m", b"%s%d" % (channel.encode(), step))}
                for target in (reference, store):
                    await target.put(rec, blobs, extends=parent, check_extends=True)
            elif op < 0.55:
                head = await reference.get(thread, namespace)
                if head is not None:
                    writes = [
                        WriteRecord(
                            rng.choice("xy"),
                            "p",
                            rng.choice([0, 1, -1]),
                            "c",
                            Blob("m", b"%d" % step),
                        )
                    ]
                    for target in (reference, store):
                        await target.put_writes(
                            thread, namespace, head.record.checkpoint_id, writes
                        )
            elif op < 0.75:
                assert summary_or_none(await store.get(thread, namespace)) == summary_or_none(
                    await reference.get(thread, namespace)
                )
            elif op < 0.88:
                query = ListQuery(
                    thread_id=rng.choice([thread, None]),
                    namespace=rng.choice([namespace, None]),
                    metadata=rng.choice([None, {"n": {"k": [1]}}]),
                    limit=rng.choice([None, 2]),
                )
                got = [summary(item) async for item in store.list(query)]
                want = [summary(item) async for item in reference.list(query)]
                assert got == want, query
            elif op < 0.91:
                for target in (reference, store):
                    await target.delete_thread(thread)
            elif op < 0.94:
                for target in (reference, store):
                    await target.delete_for_runs(["r2"])
            elif op < 0.97:
                other = rng.choice([t for t in threads if t != thread])
                for target in (reference, store):
                    await target.delete_thread(other)
                    await target.copy_thread(thread, other)
            else:
                keep = rng.random() < 0.7
                for target in (reference, store):
                    await target.prune([thread], keep_latest=keep)
        for thread in threads:
            got = [summary(item) async for item in store.list(ListQuery(thread_id=thread))]
            want = [summary(item) async for item in reference.list(ListQuery(thread_id=thread))]
            assert got == want
    async with DuckDBCheckpointStore(path, cache_bytes=0) as reopened:
        for thread in threads:
            got = [summary(item) async for item in reopened.list(ListQuery(thread_id=thread))]
            want = [summary(item) async for item in reference.list(ListQuery(thread_id=thread))]
            assert got == want


def summary_or_none(stored: StoredCheckpoint | None) -> tuple[Any, ...] | None:
    return summary(stored) if stored is not None else None


@pytest.mark.parametrize("cache_bytes", [duckdb_store.CACHE_BYTES, 3_000])
def test_threads_writing_at_once(path: Path, cache_bytes: int) -> None:
    """Several threads filling their own chains through one store, with cache evictions."""
    errors: list[BaseException] = []
    with SyncDuckDBCheckpointStore(path, cache_bytes=cache_bytes) as store:

        def work(n: int) -> None:
            try:
                fill(store, f"t{n}", 25)
                newest = store.get(f"t{n}", "")
                assert summary(newest)[0] == cid(24)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        for n in range(4):
            chain = [summary(item) for item in store.list(ListQuery(thread_id=f"t{n}"))]
            assert [item[0] for item in chain] == [cid(k) for k in reversed(range(25))]
            assert chain[0][4] == {"a": ("msgpack", b"a24"), "b": ("json", b"b")}
            assert chain[0][5] == [("task", "p", 0, "a", b"w24")]
    assert rows(path, "SELECT count(*) FROM ckpt_checkpoints") == [(100,)]
