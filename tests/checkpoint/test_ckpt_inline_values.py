"""Small scalar channel values live in the checkpoint document, not in blobs (every backend).

Step counters, flags and short strings change at nearly every step; as blobs, each costs a row,
an index entry and a lookup per read (the official savers keep them in the checkpoint too).
Checkpoints stored before they were inlined keep them as blobs and must still read the same.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from _ckpt_saver_backends import BACKENDS, SaverBackend, make_backend
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint

from agentmesh.checkpoint.langgraph import AgentMeshSaver
from agentmesh.checkpoint.langgraph._codec import DOCUMENT_COMPRESS_BYTES, INLINE_STR_CHARS
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord

SCALARS: dict[str, Any] = {
    "step": 3,
    "approved": True,
    "score": 0.25,
    "label": "short answer",
    "nothing": None,
    "edge": "y" * INLINE_STR_CHARS,
}
BLOBS: dict[str, Any] = {
    "long": "x" * (INLINE_STR_CHARS + 1),
    "items": [1, 2, 3],
    "doc": {"title": "t"},
}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> SaverBackend:
    return make_backend(str(request.param), request, tmp_path)


def _checkpoint(number: int, values: dict[str, Any], versions: dict[str, str]) -> Checkpoint:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = f"1f00000000000000000000000000{number:02d}"
    checkpoint["channel_values"] = dict(values)
    checkpoint["channel_versions"] = dict(versions)
    return checkpoint


async def _put(
    saver: AgentMeshSaver,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    new_versions: dict[str, str],
) -> RunnableConfig:
    return await saver.aput(config, checkpoint, {"source": "loop", "step": 0}, new_versions)


async def test_small_scalars_are_not_blobs_and_read_back(backend: SaverBackend) -> None:
    thread = f"inline-{uuid.uuid4().hex}"
    values = {**SCALARS, **BLOBS}
    versions = dict.fromkeys(values, "1")
    async with backend.open() as saver:
        config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        await _put(saver, config, _checkpoint(1, values, versions), versions)
        stored = await saver.store.get(thread, "")
        assert stored is not None
        blob_channels = set(BLOBS)
        assert set(stored.record.channel_versions) == blob_channels
        assert set(stored.values) == blob_channels
        got = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        assert got is not None
        assert got.checkpoint["channel_values"] == values
        assert got.checkpoint["channel_versions"] == versions


async def test_an_unchanged_scalar_is_read_from_each_checkpoint(backend: SaverBackend) -> None:
    thread = f"inline-{uuid.uuid4().hex}"
    async with backend.open() as saver:
        config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        first = {"step": 1, "items": [1]}
        config = await _put(
            saver,
            config,
            _checkpoint(1, first, {"step": "1", "items": "1"}),
            dict.fromkeys(first, "1"),
        )
        second = {"step": 1, "items": [1, 2]}  # step unchanged: not in new_versions
        await _put(
            saver, config, _checkpoint(2, second, {"step": "1", "items": "2"}), {"items": "2"}
        )
        whole: RunnableConfig = {"configurable": {"thread_id": thread}}
        listed = [t.checkpoint["channel_values"] async for t in saver.alist(whole)]
        assert listed == [second, first]


async def test_scalars_stored_as_blobs_before_still_read(backend: SaverBackend) -> None:
    thread = f"inline-{uuid.uuid4().hex}"
    async with backend.open() as saver:
        # what a put wrote before scalars were inlined: the document without channel values,
        # every value a blob named by the record's channel versions
        document: dict[str, Any] = dict(_checkpoint(1, {}, {"step": "1", "items": "1"}))
        del document["channel_values"]
        record = CheckpointRecord(
            thread_id=thread,
            namespace="",
            checkpoint_id=document["id"],
            parent_id=None,
            checkpoint=Blob(*saver.serde.dumps_typed(document)),
            metadata={"source": "input", "step": -1},
            channel_versions={"step": "1", "items": "1"},
        )
        blobs = {
            ("step", "1"): Blob(*saver.serde.dumps_typed(7)),
            ("items", "1"): Blob(*saver.serde.dumps_typed(["a"])),
        }
        await saver.store.put(record, blobs)
        got = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        assert got is not None
        assert got.checkpoint["channel_values"] == {"step": 7, "items": ["a"]}


async def test_the_document_is_compressed_from_a_lower_threshold(backend: SaverBackend) -> None:
    thread = f"doc-{uuid.uuid4().hex}"
    async with backend.open() as saver:
        channels = ["messages", "documents", "step", "branch:to:agent", "branch:to:tools"]
        versions = {c: saver.get_next_version(None, None) for c in channels}
        values = {"messages": ["hi"], "documents": ["d"], "step": 1}
        config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        await _put(saver, config, _checkpoint(1, values, versions), versions)
        stored = await saver.store.get(thread, "")
        assert stored is not None
        document = stored.record.checkpoint
        plain = saver.serde.dumps_typed(
            {**_checkpoint(1, {}, versions), "channel_values": {"step": 1}}
        )[1]
        if saver.compress_threshold is None:  # DuckDB's default: values are never compressed
            assert document.type == "msgpack"
        else:
            assert document.type == "msgpack+zstd"
            assert DOCUMENT_COMPRESS_BYTES < len(plain) <= saver.compress_threshold
            assert len(document.data) < len(plain) * 0.7
        got = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        assert got is not None
        assert got.checkpoint["channel_versions"] == versions
        assert got.checkpoint["channel_values"] == values
