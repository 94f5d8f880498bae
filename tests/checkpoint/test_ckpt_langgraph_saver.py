"""AgentMesh savers under real LangGraph graphs, on every backend.

The graph: ``assistant`` answers (an ``AIMessage``) and routes with ``Command(goto=...)`` to
``review`` (which interrupts for a human decision) or straight to ``finalize``. Tests run it
with ``invoke`` (sync use: ``with Saver.from_conn_string(...)``) and ``ainvoke`` (async use),
resume the interrupt, read the history, reopen the store to find the state again, travel back
in time (a deliberate fork, which fencing allows), and manage threads through the saver
(copy, prune, delete, delete for runs).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from _ckpt_saver_backends import BACKENDS, SaverBackend, make_backend
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from agentmesh.checkpoint.langgraph import AgentMeshSaver, MemorySaver
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord
from agentmesh.checkpoint.store.memory import MemoryCheckpointStore
from agentmesh.core.errors import CheckpointError, CheckpointSerdeError


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    approved: bool


def assistant(state: State) -> Command[Literal["review", "finalize"]]:
    last = state["messages"][-1]
    reply = AIMessage(content=f"draft for: {last.content}")
    goto: Literal["review", "finalize"] = "review" if "review" in str(last.content) else "finalize"
    return Command(update={"messages": [reply]}, goto=goto)


def review(state: State) -> dict[str, Any]:
    decision = interrupt({"question": "approve the draft?", "draft": state["messages"][-1].content})
    return {
        "messages": [HumanMessage(content=f"reviewer says {decision}")],
        "approved": decision == "yes",
    }


def finalize(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage(content=f"final ({len(state['messages'])} messages)")]}


def build_graph(saver: AgentMeshSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node("assistant", assistant)
    builder.add_node("review", review)
    builder.add_node("finalize", finalize)
    builder.add_edge(START, "assistant")
    builder.add_edge("review", "finalize")
    builder.add_edge("finalize", END)
    return builder.compile(checkpointer=saver)


def thread_config(thread_id: str, **configurable: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, **configurable}}


START_INPUT = {"messages": [HumanMessage(content="please review this")], "approved": False}
FINAL_CONTENTS = [
    "please review this",
    "draft for: please review this",
    "reviewer says yes",
    "final (3 messages)",
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> SaverBackend:
    return make_backend(str(request.param), request, tmp_path)


def assert_final(values: dict[str, Any]) -> None:
    messages = values["messages"]
    assert [message.content for message in messages] == FINAL_CONTENTS
    assert [type(message) for message in messages] == [
        HumanMessage,
        AIMessage,
        HumanMessage,
        AIMessage,
    ]
    assert values["approved"] is True


def test_sync_invoke_interrupt_resume_history_and_reopen(backend: SaverBackend) -> None:
    thread = f"sync-{uuid.uuid4().hex}"
    config = thread_config(thread)
    with backend.open() as saver:
        graph = build_graph(saver)
        paused = graph.invoke(START_INPUT, config)
        assert paused["__interrupt__"][0].value["question"] == "approve the draft?"
        assert graph.get_state(config).next == ("review",)

        done = graph.invoke(Command(resume="yes"), config)
        assert_final(done)
        assert graph.get_state(config).next == ()

        history = list(graph.get_state_history(config))
        steps = [snapshot.metadata["step"] for snapshot in history if snapshot.metadata]
        assert steps == sorted(steps, reverse=True)  # newest first
        assert steps[-1] == -1
        assert history[-1].metadata["source"] == "input"
        assert len(history) >= 5
        head_id = history[0].config["configurable"]["checkpoint_id"]

    if backend.persistent:
        with backend.open() as reopened:
            graph = build_graph(reopened)
            state = graph.get_state(config)
            assert state.config["configurable"]["checkpoint_id"] == head_id
            assert_final(state.values)
            assert len(list(graph.get_state_history(config))) == len(history)


async def test_async_ainvoke_interrupt_resume_history_and_reopen(backend: SaverBackend) -> None:
    thread = f"async-{uuid.uuid4().hex}"
    config = thread_config(thread)
    async with backend.open() as saver:
        graph = build_graph(saver)
        paused = await graph.ainvoke(START_INPUT, config)
        assert paused["__interrupt__"][0].value["draft"] == "draft for: please review this"
        assert (await graph.aget_state(config)).next == ("review",)

        done = await graph.ainvoke(Command(resume="yes"), config)
        assert_final(done)
        history = [snapshot async for snapshot in graph.aget_state_history(config)]
        assert history[0].next == ()
        assert history[-1].metadata is not None
        assert history[-1].metadata["step"] == -1
        count = len(history)

    if backend.persistent:
        async with backend.open() as reopened:
            graph = build_graph(reopened)
            assert_final((await graph.aget_state(config)).values)
            assert len([s async for s in graph.aget_state_history(config)]) == count


def test_time_travel_forks_on_purpose(backend: SaverBackend) -> None:
    config = thread_config(f"travel-{uuid.uuid4().hex}")
    with backend.open() as saver:
        graph = build_graph(saver)
        graph.invoke({"messages": [HumanMessage(content="no need")], "approved": False}, config)
        history = list(graph.get_state_history(config))
        # The checkpoint before "assistant" ran: replaying from it forks the thread.
        before_assistant = next(s for s in history if s.next == ("assistant",))
        old_id = before_assistant.config["configurable"]["checkpoint_id"]
        replayed = graph.invoke(
            {"messages": [HumanMessage(content="second thoughts")]}, before_assistant.config
        )
        assert replayed["messages"][-2].content == "draft for: second thoughts"

        children = Counter(
            item.parent_config["configurable"]["checkpoint_id"]
            for item in saver.list(config)
            if item.parent_config
        )
        assert children[old_id] == 2  # the original run and the replay both extend it
        head = graph.get_state(config)
        assert head.values["messages"][-1].content == "final (3 messages)"
        assert "second thoughts" in [m.content for m in head.values["messages"]]


def test_thread_management_through_the_saver(backend: SaverBackend) -> None:
    source = f"manage-{uuid.uuid4().hex}"
    copy = f"{source}-copy"
    with backend.open() as saver:
        graph = build_graph(saver)
        run_config: RunnableConfig = {
            **thread_config(source),
            "metadata": {"run_id": f"run-{source}"},
        }
        graph.invoke({"messages": [HumanMessage(content="hello")]}, run_config)
        count = len(list(saver.list(thread_config(source))))
        assert count >= 4
        assert {t.metadata.get("run_id") for t in saver.list(thread_config(source))} == {
            f"run-{source}"
        }

        saver.copy_thread(source, copy)
        copied = list(saver.list(thread_config(copy)))
        assert len(copied) == count
        assert (
            graph.get_state(thread_config(copy)).values
            == graph.get_state(thread_config(source)).values
        )

        saver.prune([copy])
        assert len(list(saver.list(thread_config(copy)))) == 1
        assert [m.content for m in graph.get_state(thread_config(copy)).values["messages"]] == [
            "hello",
            "draft for: hello",
            "final (2 messages)",
        ]

        saver.delete_for_runs([f"run-{source}"])
        assert list(saver.list(thread_config(source))) == []

        saver.delete_thread(copy)
        assert saver.get_tuple(thread_config(copy)) is None
        saver.prune([copy], strategy="delete")  # nothing left: a no-op


async def test_async_thread_management_and_large_values(backend: SaverBackend) -> None:
    source = f"amanage-{uuid.uuid4().hex}"
    big = "x" * 20_000 + "".join(str(i) for i in range(2000))
    async with backend.open() as saver:
        graph = build_graph(saver)
        await graph.ainvoke({"messages": [HumanMessage(content=big)]}, thread_config(source))
        head = await saver.aget_tuple(thread_config(source))
        assert head is not None
        assert head.checkpoint["channel_values"]["messages"][0].content == big

        stored = await saver.store.get(source, "")
        assert stored is not None
        if backend.name == "duckdb":  # a local file: stored whole and as it is unless asked
            assert stored.values["messages"].type == "msgpack"
        else:
            # a list this large is stored as a manifest and content-addressed chunks; the
            # chunk holding the big message is compressed (small ones may not be)
            assert stored.values["messages"].type == "am-list"
            chunks = [blob for ch, blob in stored.values.items() if ch.startswith("__amc:")]
            assert "am-msgpack+zstd" in {blob.type for blob in chunks}
            assert sum(len(blob.data) for blob in chunks) < len(big) // 4

        await saver.acopy_thread(source, f"{source}-copy")
        await saver.aprune([f"{source}-copy"], strategy="keep_latest")
        assert len([t async for t in saver.alist(thread_config(f"{source}-copy"))]) == 1
        await saver.aprune([f"{source}-copy"], strategy="delete")
        assert await saver.aget_tuple(thread_config(f"{source}-copy")) is None
        await saver.adelete_thread(source)
        assert [t async for t in saver.alist(thread_config(source))] == []


async def test_sync_methods_inside_the_store_loop(backend: SaverBackend) -> None:
    config = thread_config(f"inloop-{uuid.uuid4().hex}")
    async with backend.open() as saver:
        await build_graph(saver).ainvoke({"messages": [HumanMessage(content="hi")]}, config)
        assert backend.sync_twin  # every saver has one (the memory saver's shares its dicts)
        # A sync twin store serves sync calls even from inside the loop: a sync graph.invoke
        # in an async function (the memory saver refused it, unlike InMemorySaver).
        head = saver.get_tuple(config)
        assert head is not None
        assert len(list(saver.list(config))) >= 3
        build_graph(saver).invoke({"messages": [HumanMessage(content="again")]}, config)
        assert len(list(saver.list(config))) > 3


async def test_a_saver_without_a_sync_twin_says_so_inside_its_loop() -> None:
    store = MemoryCheckpointStore()
    saver = AgentMeshSaver(store, loop=asyncio.get_running_loop())  # no sync twin
    config = thread_config("no-twin")
    await saver.aput(config, empty_checkpoint(), {}, {})
    with pytest.raises(CheckpointError, match="use the async methods"):
        saver.get_tuple(config)
    with pytest.raises(CheckpointError, match="use the async methods"):
        list(saver.list(config))


async def test_stored_pickle_is_refused(backend: SaverBackend) -> None:
    thread = f"pickle-{uuid.uuid4().hex}"
    async with backend.open() as saver:
        record = CheckpointRecord(
            thread_id=thread,
            namespace="",
            checkpoint_id="1f0000000000000000000000000001",
            parent_id=None,
            checkpoint=Blob("pickle", b"\x80\x04N."),
            metadata={"step": -1},
            channel_versions={},
        )
        await saver.store.put(record, {})
        with pytest.raises(CheckpointSerdeError, match="refusing to load"):
            await saver.aget_tuple(thread_config(thread))


class _Opaque:
    """Nothing LangGraph's serializer can write but as a pickle."""

    def __init__(self, value: int) -> None:
        self.value = value


def test_a_pickling_serializer_is_refused_when_writing_not_when_reading() -> None:
    thread = thread_config(f"pickling-{uuid.uuid4().hex}", checkpoint_ns="")
    serde = JsonPlusSerializer(pickle_fallback=True)
    with MemorySaver.from_conn_string(serde=serde) as saver:
        versions = {"x": saver.get_next_version(None, None)}
        first = {
            **empty_checkpoint(),
            "channel_values": {"x": "fine"},
            "channel_versions": versions,
        }
        kept = saver.put(thread, first, {"source": "input", "step": -1}, versions)
        versions = {"x": saver.get_next_version(versions["x"], None)}
        opaque = {**empty_checkpoint(), "channel_values": {"x": _Opaque(1)}}
        opaque["channel_versions"] = versions
        with pytest.raises(CheckpointSerdeError, match="as a 'pickle' payload") as refused:
            saver.put(kept, opaque, {"source": "update", "step": 0}, versions)
        assert "drop pickle_fallback=True" in str(refused.value)
        latest = saver.get_tuple(thread)  # the thread is still readable
        assert latest is not None
        assert latest.checkpoint["channel_values"] == {"x": "fine"}


class Tally(TypedDict):
    n: int


def build_nested(saver: AgentMeshSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    """An outer graph whose middle node is a subgraph that interrupts (its own namespace)."""

    def ask(state: Tally) -> dict[str, int]:
        return {"n": state["n"] + int(interrupt("how much?"))}

    inner = StateGraph(Tally)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    outer = StateGraph(Tally)
    outer.add_node("pre", lambda state: {"n": state["n"] + 1})
    outer.add_node("inner", inner.compile())
    outer.add_node("post", lambda state: {"n": state["n"] * 10})
    outer.add_edge(START, "pre")
    outer.add_edge("pre", "inner")
    outer.add_edge("inner", "post")
    return outer.compile(checkpointer=saver)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_subgraph_interrupts_and_updates_are_not_mistaken_for_forks(
    backend: SaverBackend, durability: Literal["sync", "async", "exit"]
) -> None:
    config = thread_config(f"nested-{durability}-{uuid.uuid4().hex}")
    with backend.open() as saver:
        graph = build_nested(saver)
        assert "__interrupt__" in graph.invoke({"n": 1}, config, durability=durability)
        assert graph.invoke(Command(resume="5"), config, durability=durability)["n"] == 70
        graph.update_state(config, {"n": 3})
        assert graph.get_state(config).values["n"] == 3
        graph.invoke({"n": 2}, config, durability=durability)
        assert graph.invoke(Command(resume="1"), config, durability=durability)["n"] == 40
        children = Counter(
            item.parent_config["configurable"]["checkpoint_id"]
            for item in saver.list(config)
            if item.parent_config
        )
        assert max(children.values()) == 1  # one chain per namespace, no fork
