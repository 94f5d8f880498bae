"""Large lists stored as content-addressed chunks: storage grows with what is new, not per step.

A real LangGraph graph with the ``add_messages`` reducer appends a ~2 KB answer per turn to one
thread; stored whole at each version, the history would cost O(turns²). The savers store it as
a manifest and chunks, on every backend (DuckDB's default is off, so it is switched on here).
"""

from __future__ import annotations

import dataclasses
import operator
import pickle
import uuid
from pathlib import Path
from typing import Annotated, Any

import pytest
from _ckpt_saver_backends import BACKENDS, SaverBackend, make_backend
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from agentmesh.checkpoint.langgraph import AgentMeshSaver, MemorySaver
from agentmesh.checkpoint.langgraph._chunks import (
    CHUNK_PREFIX,
    CHUNK_TYPE,
    LIST_MIN_BYTES,
    MSGPACK_CHUNK_TYPE,
    SplitList,
    split_list,
)
from agentmesh.checkpoint.langgraph._codec import Encoding, decode, encode_put
from agentmesh.checkpoint.store.base import Blob, ListQuery, StoredCheckpoint
from agentmesh.checkpoint.store.memory import MemoryCheckpointStore
from agentmesh.core.errors import CheckpointSerdeError

SERDE = JsonPlusSerializer(pickle_fallback=False)


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: Annotated[int, operator.add]


def _answer(state: Chat) -> dict[str, Any]:
    question = state["messages"][-1].content
    text = " ".join(f"turn {state['turns']} word {n} about {question}" for n in range(60))
    return {"messages": [AIMessage(content=text)], "turns": 1}


def _chat_graph(saver: AgentMeshSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(Chat)
    builder.add_node("answer", _answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile(checkpointer=saver)


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _chunked(saver: AgentMeshSaver, threshold: int | None) -> AgentMeshSaver:
    saver.chunk_threshold = threshold
    return saver


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> SaverBackend:
    return make_backend(str(request.param), request, tmp_path)


@pytest.fixture(params=[name for name in BACKENDS if name != "memory"])
def persistent(request: pytest.FixtureRequest, tmp_path: Path) -> SaverBackend:
    """Backends whose data outlives the saver (the memory store does not)."""
    return make_backend(str(request.param), request, tmp_path)


# -- splitting ---------------------------------------------------------------------------------


def _history(n: int, size: int = 1500, start: int = 0) -> list[dict[str, str]]:
    return [{"id": f"m{i}", "content": f"message {i} " * (size // 11)} for i in range(start, n)]


def test_small_lists_are_the_serdes_own_bytes() -> None:
    small = _history(3, size=100)
    whole = split_list(SERDE, small, "test")
    assert isinstance(whole, Blob)
    # made from the elements' payloads, yet byte for byte what the serde writes for the list
    assert (whole.type, whole.data) == SERDE.dumps_typed(small)
    for long_list in (_history(20, size=10), _history(70_000, size=1)):
        joined = split_list(SERDE, long_list, "test", min_bytes=10**9)
        assert isinstance(joined, Blob)
        assert (joined.type, joined.data) == SERDE.dumps_typed(long_list)
    assert split_list(SERDE, "not a list", "test") is None
    assert split_list(SERDE, [_history(1)[0]], "test") is None  # one element: nothing to share
    assert split_list(SERDE, (1, 2), "test") is None  # tuples stay tuples: stored whole


def test_a_trimmed_history_shares_every_chunk_but_the_new_ones() -> None:
    history = _history(30)
    first = split_list(SERDE, history, "test")
    # keep the first (system) message, drop the oldest turn, append a new one
    second = split_list(SERDE, [history[0], *history[2:], *_history(31, start=30)], "test")
    assert isinstance(first, SplitList)
    assert isinstance(second, SplitList)
    assert first.chunk_type == MSGPACK_CHUNK_TYPE
    new = set(second.ids) - set(first.ids)
    assert len(new) == 1  # the new message; the dropped one's chunk is simply not referenced
    again = split_list(SERDE, [history[0], *history[2:], *_history(31, start=30)], "again")
    assert isinstance(again, SplitList)
    assert again.ids == second.ids  # content-defined: the same list cuts the same way


def test_small_elements_are_grouped_into_chunks() -> None:
    history = _history(200, size=120)  # ~120 B each: grouped, boundaries chosen by content
    split = split_list(SERDE, history, "test")
    assert isinstance(split, SplitList)
    assert 10 < len(split.ids) < 100
    shifted = split_list(SERDE, history[5:], "test")
    assert isinstance(shifted, SplitList)
    # dropping the oldest elements re-cuts only the first chunk or two
    assert len(set(split.ids) & set(shifted.ids)) >= len(split.ids) - 3


class _TaggedSerde(JsonPlusSerializer):
    """Another serde: its elements are framed with their types, not joined."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        type_, data = super().dumps_typed(obj)
        return ("tagged", data) if type_ == "msgpack" else (type_, data)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        return super().loads_typed(("msgpack" if type_ == "tagged" else type_, payload))


class _PickleSerde(JsonPlusSerializer):
    """A serde that pickles: what it wrote must never be loaded back."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return "pickle", pickle.dumps(obj)


def _put_and_get(serde: JsonPlusSerializer, value: list[Any]) -> Any:
    async def run() -> Any:
        async with MemoryCheckpointStore() as store:
            saver = AgentMeshSaver(store, serde=serde)
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"messages": value}
            checkpoint["channel_versions"] = {"messages": saver.get_next_version(None, None)}
            config = await saver.aput(
                _config("t"), checkpoint, {}, dict(checkpoint["channel_versions"])
            )
            stored = await store.get("t", "")
            assert stored is not None
            assert stored.values["messages"].type == "am-list"
            found = await saver.aget_tuple(config)
            assert found is not None
            return found.checkpoint["channel_values"]["messages"]

    import asyncio

    return asyncio.run(run())


def test_other_serdes_get_framed_chunks_and_pickles_stay_refused() -> None:
    history = _history(12)
    assert _put_and_get(_TaggedSerde(), history) == history
    split = split_list(_TaggedSerde(), history, "test")
    assert isinstance(split, SplitList)
    assert split.chunk_type == CHUNK_TYPE
    with pytest.raises(CheckpointSerdeError, match="as a 'pickle' payload, which AgentMesh"):
        _put_and_get(_PickleSerde(), history)


# -- through the savers ------------------------------------------------------------------------


def _stored_bytes(stored: StoredCheckpoint) -> int:
    return sum(len(blob.data) for blob in stored.values.values())


async def _chat(saver: AgentMeshSaver, thread_id: str, turns: int) -> None:
    graph = _chat_graph(saver)
    for turn in range(turns):
        await graph.ainvoke(
            {"messages": [HumanMessage(content=f"question {turn}")]}, _config(thread_id)
        )


async def test_a_long_chat_stores_each_message_about_once(backend: SaverBackend) -> None:
    async with backend.open() as saver:
        _chunked(saver, LIST_MIN_BYTES)
        thread = f"chat-{uuid.uuid4().hex}"
        await _chat(saver, thread, 40)
        head = await saver.aget_tuple(_config(thread))
        assert head is not None
        messages = head.checkpoint["channel_values"]["messages"]
        assert len(messages) == 80
        assert head.checkpoint["channel_values"]["turns"] == 40
        assert messages[-1].content.startswith("turn 39 word 0 about question 39")

        # every chunk of every checkpoint, counted once: about the history's own size
        chunks: dict[str, int] = {}
        manifests = 0
        async for stored in saver.store.list(_query(thread)):
            manifests += 1
            for channel, blob in stored.values.items():
                if channel.startswith(CHUNK_PREFIX):
                    chunks[channel] = len(blob.data)
        final = await saver.store.get(thread, "")
        assert final is not None
        history_bytes = len(SERDE.dumps_typed(messages)[1])
        assert manifests == 120  # input, loop and end checkpoint of each turn
        assert sum(chunks.values()) < 1.3 * history_bytes  # stored about once, compressed or not
        assert _stored_bytes(final) < 2 * history_bytes

        # without chunks, each version of the history is stored whole: quadratic
        whole_thread = f"whole-{uuid.uuid4().hex}"
        _chunked(saver, None)
        await _chat(saver, whole_thread, 40)
        versions: dict[str, int] = {}
        async for stored in saver.store.list(_query(whole_thread)):
            blob = stored.values.get("messages")
            if blob is not None:
                versions[stored.record.channel_versions["messages"]] = len(blob.data)
        assert sum(versions.values()) > 10 * sum(chunks.values())


def _query(thread_id: str) -> Any:
    from agentmesh.checkpoint.store.base import ListQuery

    return ListQuery(thread_id=thread_id, namespace="")


async def test_a_fresh_saver_continues_a_chunked_thread(persistent: SaverBackend) -> None:
    backend = persistent
    thread = f"resume-{uuid.uuid4().hex}"
    async with backend.open() as saver:
        await _chat(_chunked(saver, LIST_MIN_BYTES), thread, 6)
    async with backend.open() as saver:  # knows nothing of the thread's chunks
        await _chat(_chunked(saver, LIST_MIN_BYTES), thread, 3)
        head = await saver.aget_tuple(_config(thread))
        assert head is not None
        contents = [m.content for m in head.checkpoint["channel_values"]["messages"]]
        assert len(contents) == 18
        assert contents[-2] == "question 2"
        assert contents[0] == "question 0"

        # copied and pruned threads keep every chunk their checkpoints refer to
        await saver.acopy_thread(thread, f"{thread}-copy")
        await saver.aprune([f"{thread}-copy"], strategy="keep_latest")
        copy = await saver.aget_tuple(_config(f"{thread}-copy"))
        assert copy is not None
        assert [m.content for m in copy.checkpoint["channel_values"]["messages"]] == contents


async def test_a_step_sends_only_the_chunks_its_parent_lacks() -> None:
    async with MemoryCheckpointStore() as store:
        saver = AgentMeshSaver(store)
        encoding = Encoding(compress_threshold=1024, chunk_threshold=LIST_MIN_BYTES)
        history = _history(20)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": history, "notes": _history(108, start=100)}
        checkpoint["channel_versions"] = {"messages": "1", "notes": "1"}
        first = encode_put(
            SERDE, encoding, _config("t"), checkpoint, {}, {"messages": "1", "notes": "1"}
        )
        assert sum(1 for channel, _ in first.blobs if channel.startswith(CHUNK_PREFIX)) == 28

        nxt = empty_checkpoint()
        nxt["channel_values"] = {
            "messages": [*history, *_history(21, start=20)],
            "notes": checkpoint["channel_values"]["notes"],
        }
        nxt["channel_versions"] = {"messages": "2", "notes": "1"}
        parent_config: RunnableConfig = {
            "configurable": {
                "thread_id": "t",
                "checkpoint_ns": "",
                "checkpoint_id": checkpoint["id"],
            }
        }
        second = encode_put(SERDE, encoding, parent_config, nxt, {}, {"messages": "2"}, first.refs)
        sent = [channel for channel, _ in second.blobs if channel.startswith(CHUNK_PREFIX)]
        assert len(sent) == 1  # the new message only; "notes" did not change and is not sent
        assert ("notes", first.refs["notes"].store_version) not in second.blobs
        # yet the record names every chunk the checkpoint needs, so one read returns them all
        needed = {c for c in second.record.channel_versions if c.startswith(CHUNK_PREFIX)}
        assert len(needed) == 29

        # without the parent's refs, unchanged lists are stored again (content-addressed)
        cold = encode_put(SERDE, encoding, parent_config, nxt, {}, {"messages": "2"})
        assert ("notes", first.refs["notes"].store_version) in cold.blobs

        await store.put(first.record, first.blobs)
        await store.put(second.record, second.blobs)
        stored = await store.get("t", "")
        assert stored is not None
        values = decode(saver.serde, stored).checkpoint["channel_values"]
        assert values["messages"] == nxt["channel_values"]["messages"]
        assert values["notes"] == checkpoint["channel_values"]["notes"]

        # a chunk missing from the store is a plain error, not a shorter list
        missing = next(c for c in stored.values if c.startswith(CHUNK_PREFIX))
        broken = dataclasses.replace(
            stored, values={c: b for c, b in stored.values.items() if c != missing}
        )
        with pytest.raises(CheckpointSerdeError, match="missing from the store"):
            decode(saver.serde, broken)
        bad = dataclasses.replace(
            stored, values={**stored.values, "messages": Blob("am-list", b"am-msgpack;2;x")}
        )
        with pytest.raises(CheckpointSerdeError, match="manifest is malformed"):
            decode(saver.serde, bad)


def test_memory_saver_default_chunks_lists() -> None:
    with MemorySaver.from_conn_string() as saver:
        assert saver.chunk_threshold == LIST_MIN_BYTES


class _CountingStore(MemoryCheckpointStore):
    """A memory store that records what each get was asked to skip and returned."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, int]] = []  # (channels skipped, chunk values returned)
        self.on_get: Any = None

    async def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Any = (),
    ) -> StoredCheckpoint | None:
        stored = await super().get(thread_id, namespace, checkpoint_id, skip_channels=skip_channels)
        chunks = sum(1 for c in (stored.values if stored else {}) if c.startswith(CHUNK_PREFIX))
        self.reads.append((len(skip_channels), chunks))
        if self.on_get is not None:
            self.on_get()
        return stored


async def test_reads_take_the_chunks_this_saver_holds_from_its_cache() -> None:
    async with _CountingStore() as store:
        saver = AgentMeshSaver(store)
        await _chat(saver, "t", 8)
        store.reads.clear()
        head = await saver.aget_tuple(_config("t"))
        assert head is not None
        assert len(head.checkpoint["channel_values"]["messages"]) == 16
        [(skipped, returned)] = store.reads
        assert skipped >= 8  # every answer's chunk is held: none is read again
        assert returned == 0

        # another saver on the same store holds nothing: it reads every chunk once
        other = AgentMeshSaver(store)
        store.reads.clear()
        again = await other.aget_tuple(_config("t"))
        assert again is not None
        assert again.checkpoint == head.checkpoint
        assert store.reads[0][0] == 0
        assert store.reads[0][1] >= 8

        # a chunk evicted between the read and its use: the read is done again in full
        store.on_get = lambda: saver._shared.chunks.__init__(0)  # pyright: ignore[reportPrivateUsage]
        store.reads.clear()
        evicted = await saver.aget_tuple(_config("t"))
        assert evicted is not None
        assert evicted.checkpoint == head.checkpoint
        assert [skipped > 0 for skipped, _ in store.reads] == [True, False]


def test_sync_reads_use_the_cache_too() -> None:
    with MemorySaver.from_conn_string() as saver:
        graph = _chat_graph(saver)
        for turn in range(4):
            graph.invoke({"messages": [HumanMessage(content=f"q{turn}")]}, _config("s"))
        assert len(saver._shared.chunks) >= 4  # pyright: ignore[reportPrivateUsage]
        head = saver.get_tuple(_config("s"))
        assert head is not None
        assert [m.content for m in head.checkpoint["channel_values"]["messages"]][::2] == [
            "q0",
            "q1",
            "q2",
            "q3",
        ]


async def test_a_listing_decompresses_each_chunk_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentmesh.checkpoint.langgraph import _chunk_cache

    unpacked: list[int] = []
    real_unpack = _chunk_cache.unpack

    def counting_unpack(blob: Blob) -> tuple[str, bytes]:
        unpacked.append(1)
        return real_unpack(blob)

    async with MemoryCheckpointStore() as store:
        await _chat(AgentMeshSaver(store), "t", 8)
        listed_ids = [c.record.checkpoint_id async for c in store.list(ListQuery(thread_id="t"))]
        per_checkpoint = 0
        distinct: set[str] = set()
        for checkpoint_id in listed_ids:
            stored = await store.get("t", "", checkpoint_id)
            assert stored is not None
            chunks = [c for c in stored.values if c.startswith(CHUNK_PREFIX)]
            per_checkpoint += len(chunks)
            distinct.update(chunks)
        assert per_checkpoint > 2 * len(distinct)  # the checkpoints share most chunks

        monkeypatch.setattr(_chunk_cache, "unpack", counting_unpack)
        reader = AgentMeshSaver(store)  # holds no chunk yet
        listed = [t async for t in reader.alist(_config("t"))]
        assert len(unpacked) == len(distinct)
        fresh = AgentMeshSaver(store)
        for item in listed:  # the same values as reading each checkpoint on its own
            alone = await fresh.aget_tuple(item.config)
            assert alone is not None
            assert alone.checkpoint == item.checkpoint
