"""The disk under a DuckDB checkpoint file fills up: writes are held, then written, none lost.

A real DuckDB file under a real limit (``_disk_limit.py``: the kernel refuses to grow files
past it, as a full disk does). While the disk refuses, write-behind puts are still accepted,
calls that need the file raise ``CheckpointUnavailableError``; once there is room the held
writes go in, in order, each once, and a LangGraph app that ran meanwhile finds its state.
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypedDict

import pytest
from _disk_limit import disk_full_beyond
from langgraph.graph import END, START, StateGraph

from agentmesh.checkpoint.langgraph import DuckDBSaver
from agentmesh.checkpoint.store import duckdb as duckdb_checkpoints
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, ListQuery
from agentmesh.checkpoint.store.duckdb import SyncDuckDBCheckpointStore
from agentmesh.core import CheckpointError, CheckpointUnavailableError

_VALUE_BYTES = 20_000


def _put(
    store: SyncDuckDBCheckpointStore, step: int, thread: str = "t1", value: bytes | None = None
) -> bytes:
    """Put checkpoint ``step`` of the thread with a 20 KB value that does not compress."""
    value = os.urandom(_VALUE_BYTES) if value is None else value
    record = CheckpointRecord(
        thread,
        "",
        f"{step:04d}",
        f"{step - 1:04d}" if step else None,
        Blob("msgpack", b"{}"),
        {"step": step},
        {"a": str(step)},
    )
    store.put(record, {("a", str(step)): Blob("bytes", value)})
    return value


def _ids(store: SyncDuckDBCheckpointStore, thread: str = "t1") -> list[str]:
    return [c.record.checkpoint_id for c in store.list(ListQuery(thread_id=thread))]


def _value(store: SyncDuckDBCheckpointStore, step: int, thread: str = "t1") -> bytes:
    stored = store.get(thread, "", f"{step:04d}")
    assert stored is not None
    return stored.values["a"].data


@pytest.fixture
def checkpoint_every_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every commit checkpoints: the log fits, the checkpoint does not, and DuckDB invalidates
    the database, as it does when a checkpoint hits a full disk."""
    config = {**duckdb_checkpoints._CONFIG, "checkpoint_threshold": "1KB"}  # pyright: ignore[reportPrivateUsage]
    monkeypatch.setattr(duckdb_checkpoints, "_CONFIG", config)


def test_writes_the_disk_refuses_are_held_and_written_once_there_is_room(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ckpt.duckdb"
    with SyncDuckDBCheckpointStore(path) as store:
        values = [_put(store, step) for step in range(3)]
        store.flush()
        _put(store, 0, thread="other")
        store.flush()
        with disk_full_beyond(path, 64_000):
            values += [_put(store, step) for step in range(3, 15)]  # write-behind: accepted
            with pytest.raises(CheckpointUnavailableError) as refused:
                store.flush()
            assert "the disk refused a write: " in str(refused.value)
            assert "File too large" in str(refused.value)
            with pytest.raises(CheckpointUnavailableError):  # still full: still held
                store.flush()
            assert _value(store, 0, thread="other")  # nothing held for it: it still reads
        store.flush()  # room again: the held writes go in
        assert _ids(store) == [f"{step:04d}" for step in reversed(range(15))]
        _put(store, 15)
    with SyncDuckDBCheckpointStore(path) as reopened:
        assert _ids(reopened) == [f"{step:04d}" for step in reversed(range(16))]
        assert [_value(reopened, step) for step in range(15)] == values


def test_a_durable_put_the_disk_refuses_raises_and_is_written_later(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.duckdb"
    with SyncDuckDBCheckpointStore(path, durable=True) as store:
        _put(store, 0)
        value = os.urandom(_VALUE_BYTES)
        with disk_full_beyond(path, 10_000), pytest.raises(CheckpointUnavailableError):
            _put(store, 1, value=value)  # not durable yet: the caller is told so
        _put(store, 2)  # the held put goes in first, then this one
        assert _ids(store) == ["0002", "0001", "0000"]
    with SyncDuckDBCheckpointStore(path) as reopened:
        assert _value(reopened, 1) == value


def test_puts_past_the_queue_budget_raise_while_the_disk_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_checkpoints, "_MAX_QUEUED_BYTES", 100_000)
    path = tmp_path / "ckpt.duckdb"
    with SyncDuckDBCheckpointStore(path) as store:
        _put(store, 0)
        store.flush()
        with disk_full_beyond(path, 10_000):
            accepted = 1
            refused: CheckpointUnavailableError | None = None
            for step in range(1, 50):  # 1 MB: ten times the budget
                try:
                    _put(store, step)
                except CheckpointUnavailableError as exc:
                    refused = exc
                    break
                accepted += 1
            assert refused is not None
            assert accepted < 12  # refused once the budget is used, not queued without end
        _put(store, accepted)  # room again: the held ones go in first
        assert _ids(store) == [f"{step:04d}" for step in reversed(range(accepted + 1))]


@pytest.mark.usefixtures("checkpoint_every_commit")
def test_an_invalidated_database_is_opened_again_and_nothing_is_stored_twice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ckpt.duckdb"
    with SyncDuckDBCheckpointStore(path) as store:
        values = [_put(store, step) for step in range(2)]
        store.flush()
        with disk_full_beyond(path, 100_000):
            values += [_put(store, step) for step in range(2, 6)]
            with pytest.raises(CheckpointUnavailableError):
                store.flush()
            with pytest.raises(CheckpointUnavailableError):
                store.flush()
        store.flush()
        assert store.reopens >= 1
        assert _ids(store) == [f"{step:04d}" for step in reversed(range(6))]
    with SyncDuckDBCheckpointStore(path) as reopened:
        assert _ids(reopened) == [f"{step:04d}" for step in reversed(range(6))]
        assert [_value(reopened, step) for step in range(6)] == values


def test_closing_while_the_disk_still_refuses_says_what_was_lost(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.duckdb"
    store = SyncDuckDBCheckpointStore(path).open()
    _put(store, 0)
    store.flush()
    with disk_full_beyond(path, 10_000):
        for step in range(1, 4):
            _put(store, step)
        with pytest.raises(CheckpointError, match=r"3 checkpoints held in memory were lost"):
            store.close()
    with SyncDuckDBCheckpointStore(path) as reopened:  # the file is whole, and usable
        assert _ids(reopened) == ["0000"]
        _put(reopened, 1)
        assert _ids(reopened) == ["0001", "0000"]


class _Essay(TypedDict):
    parts: Annotated[list[str], operator.add]


def _step(name: str) -> Callable[[_Essay], _Essay]:
    def run(state: _Essay) -> _Essay:
        return {"parts": [f"{name}:{os.urandom(_VALUE_BYTES).hex()}"]}

    return run


def test_a_langgraph_app_keeps_running_on_a_full_disk_and_its_state_lands_later(
    tmp_path: Path,
) -> None:
    path = tmp_path / "threads.duckdb"
    graph = StateGraph(_Essay)
    for name in ("plan", "draft", "edit"):
        graph.add_node(name, _step(name))
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "draft")
    graph.add_edge("draft", "edit")
    graph.add_edge("edit", END)
    config = {"configurable": {"thread_id": "essay-1"}}
    with DuckDBSaver.from_conn_string(str(path)) as saver:
        app = graph.compile(checkpointer=saver)
        app.invoke({"parts": []}, config)
        with disk_full_beyond(path, 64_000):
            final = app.invoke({"parts": []}, config)  # the second run, on a full disk
        assert len(final["parts"]) == 6
        assert app.get_state(config).values == final  # room again: read from the file
    with DuckDBSaver.from_conn_string(str(path)) as reopened:
        state = graph.compile(checkpointer=reopened).get_state(config)
        assert state.values == final
        assert len(list(reopened.list(config))) == 10  # every step of both runs, once


@pytest.mark.usefixtures("checkpoint_every_commit")
def test_a_read_that_finds_the_database_invalidated_has_it_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.duckdb"
    with SyncDuckDBCheckpointStore(path, cache_bytes=0) as store:  # reads go to the file
        kept = _put(store, 0, thread="other")
        store.flush()
        with disk_full_beyond(path, 100_000):
            for step in range(4):
                _put(store, step)
            with pytest.raises(CheckpointUnavailableError):
                store.flush()  # the checkpoint of the log hit the limit: database invalidated
        # room again; nothing but a read of another thread, on the reader's connection
        with pytest.raises(CheckpointUnavailableError):
            _value(store, 0, thread="other")
        deadline = time.monotonic() + 10
        value: bytes | None = None
        while value is None and time.monotonic() < deadline:  # the worker reopens the file
            try:
                value = _value(store, 0, thread="other")  # and the reads answer again
            except CheckpointUnavailableError:
                time.sleep(0.01)
        assert value == kept
        assert store.reopens >= 1
        assert _ids(store) == ["0003", "0002", "0001", "0000"]  # the held puts went in too
