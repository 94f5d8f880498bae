"""Two writers on one thread: the official saver forks the chain, AgentMesh savers refuse.

Both writers read the head (``get_tuple`` without a checkpoint id), then both put a child of
it. LangGraph's official ``InMemorySaver`` stores both children: the thread's history forks
silently and the next reader follows whichever child has the greater id (the reported bug).
An AgentMesh saver puts a child of a head it read with compare-and-set, so the second writer
gets :class:`~agentmesh.core.CheckpointConflictError` and the head keeps exactly one child.

The same holds for two real LangGraph runs of one thread racing in two threads (sync) or two
tasks (async): with AgentMesh savers exactly one fails with ``CheckpointConflictError`` and the
history stays a single chain.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from _ckpt_saver_backends import BACKENDS, SaverBackend, make_backend
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from agentmesh.core.errors import CheckpointConflictError

BARRIER_TIMEOUT = 30.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> SaverBackend:
    return make_backend(str(request.param), request, tmp_path)


def thread_config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def child_counts(items: Iterable[CheckpointTuple]) -> Counter[str | None]:
    """How many checkpoints each checkpoint id is the parent of (None: chain roots)."""
    return Counter(
        item.parent_config["configurable"]["checkpoint_id"] if item.parent_config else None
        for item in items
    )


def checkpoint(step: int) -> tuple[Any, dict[str, Any]]:
    return empty_checkpoint(), {"source": "loop", "step": step, "parents": {}}


# -- saver level: both read the head, both put a child -----------------------------------------


def test_official_in_memory_saver_forks_the_chain() -> None:
    saver = InMemorySaver()
    config = thread_config(f"official-{uuid.uuid4().hex}")
    root, head_a, head_b = a_head_read_twice(saver, config)
    for head in (head_a, head_b):
        child, child_metadata = checkpoint(1)
        saver.put(head.config, child, child_metadata, {})  # neither writer is refused

    children = child_counts(saver.list(config))
    assert children[root["id"]] == 2  # the documented bug: the head got two children


async def test_our_savers_refuse_the_second_writer(backend: SaverBackend) -> None:
    config = thread_config(f"writers-{uuid.uuid4().hex}")
    async with backend.two_savers() as (writer_a, writer_b):
        root, metadata = checkpoint(0)
        await writer_a.aput(config, root, metadata, {})

        head_a = await writer_a.aget_tuple(config)
        head_b = await writer_b.aget_tuple(config)
        assert head_a is not None
        assert head_b is not None
        first, first_metadata = checkpoint(1)
        await writer_a.aput(head_a.config, first, first_metadata, {})
        second, second_metadata = checkpoint(1)
        with pytest.raises(CheckpointConflictError) as refused:
            await writer_b.aput(head_b.config, second, second_metadata, {})
        assert refused.value.expected == root["id"]
        assert refused.value.actual == first["id"]

        items = [item async for item in writer_b.alist(config)]
        assert child_counts(items)[root["id"]] == 1
        assert second["id"] not in {item.checkpoint["id"] for item in items}


def a_head_read_twice(
    saver: BaseCheckpointSaver[Any], config: RunnableConfig
) -> tuple[Any, CheckpointTuple, CheckpointTuple]:
    """Put a root; two writers read it as the head.

    Returns:
        The root and the head each writer read.
    """
    root, metadata = checkpoint(0)
    saver.put(config, root, metadata, {})
    head_a = saver.get_tuple(config)
    head_b = saver.get_tuple(config)
    assert head_a is not None
    assert head_b is not None
    return root, head_a, head_b


def two_writers_from_one_head(
    saver: BaseCheckpointSaver[Any], config: RunnableConfig
) -> tuple[Any, Any, CheckpointTuple]:
    """Put a root; two writers read it as the head; the first puts a child.

    Returns:
        The root, the first writer's child, and the head the second writer read.
    """
    root, head_a, head_b = a_head_read_twice(saver, config)
    first, first_metadata = checkpoint(1)
    saver.put(head_a.config, first, first_metadata, {})
    return root, first, head_b


def a_refused_put(saver: BaseCheckpointSaver[Any], config: RunnableConfig) -> tuple[Any, Any]:
    """Two writers from one head; the second one's put is refused.

    Returns:
        The first writer's checkpoint (the head now), and the config of the refused one.
    """
    _, first, head_b = two_writers_from_one_head(saver, config)
    refused, refused_metadata = checkpoint(1)
    with pytest.raises(CheckpointConflictError):
        saver.put(head_b.config, refused, refused_metadata, {})
    at_refused = {"configurable": {**head_b.config["configurable"], "checkpoint_id": refused["id"]}}
    return first, at_refused


def test_one_saver_shared_by_two_writers_refuses_in_sync_use(backend: SaverBackend) -> None:
    config = thread_config(f"shared-{uuid.uuid4().hex}")
    with backend.open() as saver:
        root, _, head_b = two_writers_from_one_head(saver, config)
        second, second_metadata = checkpoint(1)
        with pytest.raises(CheckpointConflictError):
            saver.put(head_b.config, second, second_metadata, {})
        assert child_counts(saver.list(config))[root["id"]] == 1


def test_the_refused_writer_cannot_go_on_from_its_refused_checkpoint(
    backend: SaverBackend,
) -> None:
    # LangGraph before 1.2.x (async durability) keeps putting the losing run's next steps,
    # children of the refused checkpoint; they must be refused too, or the thread's newest
    # checkpoint becomes one whose parent was never stored
    config = thread_config(f"after-refusal-{uuid.uuid4().hex}")
    with backend.open() as saver:
        first, after = a_refused_put(saver, config)
        orphan, orphan_metadata = checkpoint(2)
        with pytest.raises(CheckpointConflictError):
            saver.put(after, orphan, orphan_metadata, {})
        newest = saver.get_tuple(config)
        assert newest is not None
        assert newest.checkpoint["id"] == first["id"]
        assert orphan["id"] not in {item.checkpoint["id"] for item in saver.list(config)}


def test_pending_writes_of_a_refused_checkpoint_are_refused(backend: SaverBackend) -> None:
    # the losing run's tasks finish after its put was refused; their writes must not be stored
    # under a checkpoint id the store never held
    config = thread_config(f"refused-writes-{uuid.uuid4().hex}")
    with backend.open() as saver:
        first, at_refused = a_refused_put(saver, config)
        with pytest.raises(CheckpointConflictError, match="pending writes are refused") as exc:
            saver.put_writes(at_refused, [("count", 1)], "task-of-the-loser")
        assert exc.value.expected == at_refused["configurable"]["checkpoint_id"]
        at_first = {"configurable": {**at_refused["configurable"], "checkpoint_id": first["id"]}}
        saver.put_writes(at_first, [("count", 2)], "task-of-the-winner")  # the head takes writes
        newest = saver.get_tuple(config)
        assert newest is not None
        assert newest.checkpoint["id"] == first["id"]
        assert newest.pending_writes == [("task-of-the-winner", "count", 2)]


async def test_pending_writes_of_a_refused_checkpoint_are_refused_in_async_use(
    backend: SaverBackend,
) -> None:
    config = thread_config(f"refused-awrites-{uuid.uuid4().hex}")
    async with backend.two_savers() as (writer_a, writer_b):
        root, metadata = checkpoint(0)
        await writer_a.aput(config, root, metadata, {})
        head_b = await writer_b.aget_tuple(config)
        assert head_b is not None
        first, first_metadata = checkpoint(1)
        await writer_a.aput(head_b.config, first, first_metadata, {})
        refused, refused_metadata = checkpoint(1)
        with pytest.raises(CheckpointConflictError):
            await writer_b.aput(head_b.config, refused, refused_metadata, {})
        at_refused = {
            "configurable": {**head_b.config["configurable"], "checkpoint_id": refused["id"]}
        }
        with pytest.raises(CheckpointConflictError, match="pending writes are refused"):
            await writer_b.aput_writes(at_refused, [("count", 1)], "task-of-the-loser")
        # the other writer was never refused that checkpoint: it is not its to judge
        newest = await writer_a.aget_tuple(config)
        assert newest is not None
        assert newest.checkpoint["id"] == first["id"]
        assert newest.pending_writes == []


# -- LangGraph level: two runs of one thread race --------------------------------------------


class Count(TypedDict):
    count: int


def build_graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(Count)
    builder.add_node("add", lambda state: {"count": state["count"] + 1})
    builder.add_node("double", lambda state: {"count": state["count"] * 2})
    builder.add_edge(START, "add")
    builder.add_edge("add", "double")
    builder.add_edge("double", END)
    return builder.compile(checkpointer=saver)


def gate_head_reads(saver: BaseCheckpointSaver[Any], barrier: threading.Barrier) -> None:
    """Make each run wait, after reading the head, until the other run has read it too."""
    read = saver.get_tuple

    def gated(config: RunnableConfig) -> CheckpointTuple | None:
        found = read(config)
        if not config["configurable"].get("checkpoint_id"):
            barrier.wait(timeout=BARRIER_TIMEOUT)
        return found

    saver.get_tuple = gated  # type: ignore[method-assign]


def race_two_sync_runs(
    saver: BaseCheckpointSaver[Any], thread_id: str
) -> list[BaseException | None]:
    """Run the graph once, then twice at the same time; the errors of the racing runs."""
    config = thread_config(thread_id)
    build_graph(saver).invoke({"count": 1}, config)
    gate_head_reads(saver, threading.Barrier(2))
    graph = build_graph(saver)
    errors: list[BaseException | None] = [None, None]

    def run(index: int) -> None:
        try:
            graph.invoke({"count": 10 * (index + 1)}, config)
        except BaseException as exc:
            errors[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    del saver.get_tuple  # type: ignore[misc]
    return errors


def test_racing_runs_fork_with_the_official_saver() -> None:
    saver = InMemorySaver()
    thread_id = f"race-official-{uuid.uuid4().hex}"
    errors = race_two_sync_runs(saver, thread_id)
    assert errors == [None, None]  # both runs "succeed"...
    assert max(child_counts(saver.list(thread_config(thread_id))).values()) == 2  # ...forked


def test_racing_sync_runs_one_fails_no_fork(backend: SaverBackend) -> None:
    thread_id = f"race-sync-{uuid.uuid4().hex}"
    with backend.open() as saver:
        errors = race_two_sync_runs(saver, thread_id)
        failed = [error for error in errors if error is not None]
        assert len(failed) == 1, errors
        assert isinstance(failed[0], CheckpointConflictError)
        items = list(saver.list(thread_config(thread_id)))
        children = child_counts(items)
        assert children[None] == 1
        assert max(children.values()) == 1
        winner = 10 * (errors.index(None) + 1)
        assert items[0].checkpoint["channel_values"]["count"] == (winner + 1) * 2


async def test_racing_async_runs_one_fails_no_fork(backend: SaverBackend) -> None:
    thread_id = f"race-async-{uuid.uuid4().hex}"
    config = thread_config(thread_id)
    async with backend.open() as saver:
        await build_graph(saver).ainvoke({"count": 1}, config)
        barrier = asyncio.Barrier(2)
        read = saver.aget_tuple

        async def gated(config: RunnableConfig) -> CheckpointTuple | None:
            found = await read(config)
            if not config["configurable"].get("checkpoint_id"):
                await asyncio.wait_for(barrier.wait(), BARRIER_TIMEOUT)
            return found

        saver.aget_tuple = gated  # type: ignore[method-assign]
        graph = build_graph(saver)
        results = await asyncio.gather(
            graph.ainvoke({"count": 10}, config),
            graph.ainvoke({"count": 20}, config),
            return_exceptions=True,
        )
        del saver.aget_tuple  # type: ignore[misc]

        failed = [result for result in results if isinstance(result, BaseException)]
        assert len(failed) == 1, results
        assert isinstance(failed[0], CheckpointConflictError)
        children = child_counts([item async for item in saver.alist(config)])
        assert children[None] == 1
        assert max(children.values()) == 1
