"""HandoffCheckpointWriter: ids at once, writes in the background, fail-open on every failure.

Real stores (memory, DuckDB file, Redis at 127.0.0.1:6379), a dead Redis (127.0.0.1:1), a full
queue, a context that cannot be serialised. Nothing here measures time: "the app is not slowed"
means submit returns ids and never raises while the failures are counted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from structlog.testing import capture_logs

from agentmesh.checkpoint.handoff_writer import (
    CONTEXT_CHANNEL,
    HANDOFF_NAMESPACE,
    HandoffCheckpointWriter,
    handoff_history,
    new_checkpoint_id,
    read_handoff,
    store_kind,
)
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, CheckpointStore
from agentmesh.checkpoint.store.factory import open_store
from agentmesh.checkpoint.store.memory import MemoryCheckpointStore
from agentmesh.instrumentation.handoff import context_digest

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def _context() -> dict[str, Any]:
    return {
        "messages": [HumanMessage("find otters", id="m1"), AIMessage("otters hold hands", id="m2")],
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "ticket": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "notes": ["a", "b"],
        "depth": {"level": 2, "tags": ("x", "y")},
    }


def _submit(
    writer: HandoffCheckpointWriter,
    run_id: str,
    context: object,
    source: str = "planner",
    target: str = "researcher",
) -> str | None:
    return writer.submit(
        run_id,
        context,
        source=source,
        target=target,
        digest=context_digest(context).digest,
        trace_id=TRACE,
        span_id=SPAN,
        handoff_kind="command",
    )


@pytest.fixture
def memory_writer() -> Iterator[HandoffCheckpointWriter]:
    writer = HandoffCheckpointWriter("memory://")
    yield writer
    writer.close(5.0)


def test_ids_are_time_ordered_uuid6() -> None:
    ids = [new_checkpoint_id() for _ in range(2_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {6}


def test_store_kind_from_url() -> None:
    assert [
        store_kind(u)
        for u in ("memory://", "duckdb:///x.duckdb", "redis://h:1/0", "postgres://h/db")
    ] == ["memory", "duckdb", "redis", "postgres"]


def test_memory_round_trip_chain_and_metadata(memory_writer: HandoffCheckpointWriter) -> None:
    run = f"run-{uuid.uuid4().hex}"
    first = _submit(memory_writer, run, _context(), "planner", "researcher")
    second = _submit(memory_writer, run, {"notes": ["c"]}, "researcher", "writer")
    other = _submit(memory_writer, f"{run}-other", {"x": 1})
    assert first is not None
    assert second is not None
    assert other is not None
    assert first < second  # time-ordered, given synchronously
    assert memory_writer.flush(10.0)

    stored = memory_writer.read(run, first)
    assert stored is not None
    assert stored.context == _context()
    assert context_digest(stored.context).digest == context_digest(_context()).digest
    assert stored.parent_id is None
    assert dict(stored.metadata) == {
        "kind": "handoff",
        "source": "planner",
        "target": "researcher",
        "digest": context_digest(_context()).digest,
        "trace_id": TRACE,
        "span_id": SPAN,
        "handoff_kind": "command",
    }
    history = memory_writer.history(run)
    assert [h.checkpoint_id for h in history] == [second, first]  # newest first
    assert history[0].parent_id == first  # chained to the run's previous handoff
    assert history[0].context == {"notes": ["c"]}
    latest = memory_writer.read(run)
    assert latest is not None
    assert latest.checkpoint_id == second
    stats = memory_writer.stats()
    assert (stats.submitted, stats.written, stats.pending) == (3, 3, 0)
    assert stats.store_failed == stats.serde_failed == stats.queue_full == 0


def test_context_is_snapshotted_at_submit() -> None:
    run = f"run-{uuid.uuid4().hex}"
    gate = _Gate()
    writer = HandoffCheckpointWriter("memory://", store_factory=gate.store)
    try:
        context: dict[str, Any] = {"notes": ["a"], "nested": {"k": [1]}}
        checkpoint = _submit(writer, run, context)
        assert checkpoint is not None
        assert gate.entered.wait(10.0)  # the writer holds the item, not yet stored
        context["notes"].append("changed later")
        context["nested"]["k"].append(2)
        context["new"] = True
        gate.release.set()
        assert writer.flush(10.0)
        stored = writer.read(run, checkpoint)
        assert stored is not None
        assert stored.context == {"notes": ["a"], "nested": {"k": [1]}}
    finally:
        gate.release.set()
        writer.close(5.0)


class _GatedStore(MemoryCheckpointStore):
    """A memory store whose puts wait for a gate (to hold the writer while the queue fills)."""

    def __init__(self, gate: _Gate) -> None:
        super().__init__()
        self._gate = gate

    async def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        self._gate.entered.set()
        await asyncio.get_running_loop().run_in_executor(None, self._gate.release.wait)
        await super().put(record, blobs, extends=extends, check_extends=check_extends)


class _Gate:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def store(self) -> CheckpointStore:
        return _GatedStore(self)


def test_full_queue_drops_and_counts() -> None:
    gate = _Gate()
    writer = HandoffCheckpointWriter("memory://", queue_size=3, store_factory=gate.store)
    run = f"run-{uuid.uuid4().hex}"
    try:
        held = _submit(writer, run, {"i": 0})
        assert held is not None
        assert gate.entered.wait(10.0)  # the writer is busy with the first one
        queued = [_submit(writer, run, {"i": i}) for i in range(1, 4)]
        with capture_logs() as logs:
            dropped = [_submit(writer, run, {"i": i}) for i in range(4, 9)]
        assert all(q is not None for q in queued)
        assert dropped == [None] * 5  # refused at once: no id for a checkpoint never written
        stats = writer.stats()
        assert (stats.queue_full, stats.submitted) == (5, 4)
        full_logs = [e for e in logs if e["event"] == "handoff_checkpoint_queue_full"]
        assert len(full_logs) == 1  # logged once, not once per drop
        gate.release.set()
        assert writer.flush(10.0)
        assert writer.stats().written == 4
        assert [h.context["i"] for h in writer.history(run)] == [3, 2, 1, 0]
    finally:
        gate.release.set()
        writer.close(5.0)


class _Unserialisable:
    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()


def test_serialisation_failure_is_counted_and_writer_goes_on(
    memory_writer: HandoffCheckpointWriter,
) -> None:
    run = f"run-{uuid.uuid4().hex}"
    with capture_logs() as logs:
        bad = _submit(memory_writer, run, {"lock": threading.Lock()})
        bad_again = _submit(memory_writer, run, {"obj": _Unserialisable()})
        good = _submit(memory_writer, run, {"ok": True})
        assert memory_writer.flush(10.0)
    assert bad is not None
    assert bad_again is not None
    assert good is not None
    stats = memory_writer.stats()
    assert (stats.serde_failed, stats.written) == (2, 1)
    assert memory_writer.read(run, bad) is None
    stored = memory_writer.read(run, good)
    assert stored is not None
    assert stored.context == {"ok": True}
    events = [e["event"] for e in logs if e["event"].startswith("handoff_checkpoint_")]
    assert events == ["handoff_checkpoint_serialisation_failed"]  # once per kind


def test_close_flushes_and_later_submits_are_dropped() -> None:
    writer = HandoffCheckpointWriter("memory://")
    run = f"run-{uuid.uuid4().hex}"
    ids = [_submit(writer, run, {"i": i}) for i in range(20)]
    assert all(i is not None for i in ids)
    assert writer.close(10.0)
    assert writer.stats().written == 20
    assert _submit(writer, run, {"late": True}) is None
    assert writer.stats().dropped_at_close == 1
    assert writer.close(1.0)  # idempotent


def test_unknown_scheme_never_raises_into_the_app() -> None:
    writer = HandoffCheckpointWriter("mysql://localhost/db")
    try:
        with capture_logs() as logs:
            ids = [_submit(writer, "run-x", {"i": i}) for i in range(3)]
            assert writer.flush(10.0)
        assert all(i is not None for i in ids)
        stats = writer.stats()
        assert (stats.store_failed, stats.written) == (3, 0)
        assert [e["event"] for e in logs].count("handoff_checkpoint_store_unusable") == 1
    finally:
        writer.close(5.0)


def test_duckdb_file_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("agentmesh.checkpoint.store.duckdb")
    url = f"duckdb:///{tmp_path / 'handoffs.duckdb'}"
    run = f"run-{uuid.uuid4().hex}"
    writer = HandoffCheckpointWriter(url)
    first = _submit(writer, run, _context())
    second = _submit(writer, run, {"after": "first"}, "researcher", "writer")
    assert first is not None
    assert second is not None
    assert writer.close(30.0)  # flushes and closes the file
    assert writer.stats().written == 2

    async def read_back() -> None:
        async with open_store(url) as store:
            stored = await read_handoff(store, run, first)
            assert stored is not None
            assert stored.context == _context()
            assert stored.metadata["digest"] == context_digest(stored.context).digest
            history = await handoff_history(store, run)
            assert [h.checkpoint_id for h in history] == [second, first]
            assert history[0].parent_id == first
            raw = await store.get(run, HANDOFF_NAMESPACE, second)
            assert raw is not None
            assert set(raw.values) == {CONTEXT_CHANNEL}
            assert raw.record.run_id == run

    asyncio.run(read_back())


def test_redis_round_trip(redis_address: tuple[str, int]) -> None:
    redis_module = pytest.importorskip("agentmesh.checkpoint.store.redis")
    host, port = redis_address
    url = f"redis://{host}:{port}/0"
    prefix = f"agentmesh:test:handoff:{uuid.uuid4().hex}"
    run = f"run-{uuid.uuid4().hex}"

    def factory() -> CheckpointStore:
        return redis_module.RedisCheckpointStore(url, prefix=prefix)

    writer = HandoffCheckpointWriter(url, store_factory=factory)
    try:
        checkpoint = _submit(writer, run, _context())
        assert checkpoint is not None
        assert writer.flush(30.0)
        stored = writer.read(run, checkpoint)
        assert stored is not None
        assert stored.context == _context()
        assert writer.stats().written == 1
    finally:
        writer.close(10.0)

    async def clean_up() -> None:
        async with factory() as store:
            assert await read_handoff(store, run, checkpoint) is not None  # durable
            await store.delete_thread(run)

    asyncio.run(clean_up())


def test_dead_redis_is_fail_open() -> None:
    pytest.importorskip("agentmesh.checkpoint.store.redis")
    writer = HandoffCheckpointWriter("redis://127.0.0.1:1/0")
    try:
        with capture_logs() as logs:
            ids = [_submit(writer, f"run-{i % 2}", _context()) for i in range(30)]
            assert writer.flush(60.0)
        assert all(isinstance(i, str) for i in ids)  # the spans still get ids
        stats = writer.stats()
        assert stats.submitted == 30
        assert stats.written == 0
        assert stats.store_failed == 30
        events = [e["event"] for e in logs if e["event"].startswith("handoff_checkpoint_")]
        assert 1 <= len(events) <= 3  # rate-limited: once per kind, not once per handoff
        assert len(set(events)) == len(events)
    finally:
        assert writer.close(10.0)


def test_history_is_empty_for_unknown_run(memory_writer: HandoffCheckpointWriter) -> None:
    assert memory_writer.history("nobody") == []
    assert memory_writer.read("nobody") is None


_EXIT_SCRIPT = """
import sys
from agentmesh.checkpoint.handoff_writer import HandoffCheckpointWriter
writer = HandoffCheckpointWriter(sys.argv[1])
for i in range(5):
    writer.submit("run-exit", {"i": i}, source="a", target="b", digest="d", trace_id="t",
                  span_id="s")
print("submitted")
"""


def test_exit_hook_flushes_what_was_queued(tmp_path: Path) -> None:
    pytest.importorskip("agentmesh.checkpoint.store.duckdb")
    url = f"duckdb:///{tmp_path / 'exit.duckdb'}"
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "submitted"

    async def read_back() -> list[int]:
        async with open_store(url) as store:
            return [h.context["i"] for h in await handoff_history(store, "run-exit")]

    assert asyncio.run(read_back()) == [4, 3, 2, 1, 0]  # the app never closed the writer
