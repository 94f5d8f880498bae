"""One store, several writers: listings go newest first whatever wrote the checkpoints.

LangGraph's savers, the handoff checkpoints and the CrewAI task and flow checkpoints share a
store (``AGENTMESH_CHECKPOINT_URL``). Listings order by checkpoint id (LangGraph's contract
within a thread, and the store's across threads), so every writer's ids must compare by time:
CrewAI ids used to be UUIDv7 (``01…``), below every LangGraph uuid6 id (``1f…``), and
``agentmesh checkpoints list`` hid the newest CrewAI checkpoints behind older LangGraph ones.
Retention goes by write time whatever the ids. Run on every backend.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _ckpt_stores import BACKENDS, open_backend
from langgraph.checkpoint.base.id import uuid6

from agentmesh.checkpoint.crewai._ids import new_checkpoint_id as crewai_checkpoint_id
from agentmesh.checkpoint.handoff_writer import new_checkpoint_id as handoff_checkpoint_id
from agentmesh.checkpoint.store import (
    Blob,
    CheckpointRecord,
    CheckpointStore,
    ListQuery,
    MemoryCheckpointStore,
)

for _name in ("CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_TRACKING"):
    os.environ.setdefault(_name, "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

_LEGACY_CREWAI_ID = "0199a6c2-3b1d-7f00-8000-4b5f0d2e9a77"
"""A CrewAI checkpoint id as earlier versions wrote them: UUIDv7, from 2025."""


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckpointStore]:
    async with open_backend(str(request.param), request, tmp_path) as opened:
        yield opened


def _graph_id() -> str:
    """A LangGraph checkpoint id, as its savers' checkpoints get them."""
    return str(uuid6())


def _record(thread_id: str, checkpoint_id: str, namespace: str = "") -> CheckpointRecord:
    return CheckpointRecord(
        thread_id, namespace, checkpoint_id, None, Blob("msgpack", b"{}"), {"step": 0}, {}
    )


async def _ids(store: CheckpointStore, **query: Any) -> list[str]:
    return [stored.record.checkpoint_id async for stored in store.list(ListQuery(**query))]


def test_crewai_ids_are_langgraph_uuid6_ids_that_sort_after_earlier_ones() -> None:
    graph = _graph_id()
    crew = crewai_checkpoint_id()
    assert uuid.UUID(crew).version == 6
    assert graph < crew < handoff_checkpoint_id() < crewai_checkpoint_id()
    assert graph > _LEGACY_CREWAI_ID


async def test_the_newest_checkpoints_come_first_whatever_wrote_them(
    store: CheckpointStore,
) -> None:
    graph = _graph_id()  # a LangGraph step
    await store.put(_record("essay-1", graph), {})
    task = crewai_checkpoint_id()  # a CrewAI task checkpoint of run-7
    await store.put(_record("run-7", task, "crewai.tasks"), {})
    handoff = handoff_checkpoint_id()  # a handoff checkpoint of the same run
    await store.put(_record("run-7", handoff), {})
    flow = crewai_checkpoint_id()  # a CrewAI flow state
    await store.put(_record("flow-1", flow, "crewai.flow"), {})

    assert await _ids(store) == [flow, handoff, task, graph]
    assert await _ids(store, limit=2) == [flow, handoff]  # `checkpoints list --limit 2`
    assert await _ids(store, thread_id="run-7") == [handoff, task]
    assert await _ids(store, before=flow) == [handoff, task, graph]


async def test_a_thread_written_before_the_id_change_goes_on_in_order(
    store: CheckpointStore,
) -> None:
    await store.put(_record("flow-1", _LEGACY_CREWAI_ID, "crewai.flow"), {})
    later = crewai_checkpoint_id()
    await store.put(_record("flow-1", later, "crewai.flow"), {})

    newest = await store.get("flow-1", "crewai.flow")
    assert newest is not None
    assert newest.record.checkpoint_id == later
    assert await _ids(store, thread_id="flow-1") == [later, _LEGACY_CREWAI_ID]
    await store.prune(["flow-1"])
    assert await _ids(store, thread_id="flow-1") == [later]


async def test_expire_goes_by_when_checkpoints_were_written_not_by_their_ids(
    store: CheckpointStore,
) -> None:
    # "mixed": its greatest id was written first; a checkpoint with a smaller id (an earlier
    # CrewAI id) came later, in another namespace: the thread is still in use
    await store.put(_record("mixed", _graph_id()), {})
    await store.put(_record("old", _graph_id()), {})
    await asyncio.sleep(0.6)
    cutoff = time.time()
    await asyncio.sleep(0.6)
    await store.put(_record("mixed", _LEGACY_CREWAI_ID, "crewai.tasks"), {})

    assert await store.expire(cutoff) == 1
    assert {stored.record.thread_id async for stored in store.list(ListQuery())} == {"mixed"}


def test_crewai_flow_states_list_before_older_langgraph_checkpoints() -> None:
    from agentmesh.checkpoint.crewai import AgentMeshFlowPersistence  # imports crewai

    store = MemoryCheckpointStore()
    asyncio.run(store.put(_record("essay-1", _graph_id()), {}))  # a LangGraph step, then a flow
    with AgentMeshFlowPersistence(store) as persistence:
        persistence.save_state("flow-1", "gather", {"steps": ["gather"]})

    async def newest() -> list[str]:
        return [s.record.thread_id async for s in store.list(ListQuery(limit=1))]

    assert asyncio.run(newest()) == ["flow-1"]
