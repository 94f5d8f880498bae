"""The supervisor graph, asynchronous: ``ainvoke`` / ``astream`` with ``AsyncOpenAI`` calls."""

from __future__ import annotations

from typing import Literal, TypedDict

import openai
import pytest
from langgraph.graph import END, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_RUN_ID,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
    GEN_AI_CONVERSATION_ID,
)
from agentmesh.instrumentation import context_digest, current_run_id
from agentmesh.instrumentation.testing import FakeProviderThread

pytestmark = pytest.mark.usefixtures("langgraph_instrumented")

MODEL = "gpt-4o-mini"


class State(TypedDict):
    log: list[str]
    turn: int


def build_graph(fp: FakeProviderThread, seen: list[str | None]) -> CompiledStateGraph:
    client = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)

    async def ask(agent: str) -> None:
        seen.append(current_run_id())
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": agent}]
        )

    async def supervisor(state: State) -> State | Command[Literal["worker_b"]]:
        await ask("supervisor")
        update: State = {"log": [*state["log"], "supervisor"], "turn": state["turn"] + 1}
        return Command(goto="worker_b", update=update) if state["turn"] == 1 else update

    async def worker_a(state: State) -> dict[str, list[str]]:
        await ask("worker_a")
        return {"log": [*state["log"], "worker_a"]}

    async def worker_b(state: State) -> dict[str, list[str]]:
        await ask("worker_b")
        return {"log": [*state["log"], "worker_b"]}

    graph = StateGraph(State)
    graph.add_node("supervisor", supervisor)
    graph.add_node("worker_a", worker_a)
    graph.add_node("worker_b", worker_b)
    graph.set_entry_point("supervisor")
    graph.add_conditional_edges(
        "supervisor", lambda s: "worker_a" if s["turn"] == 1 else END, ["worker_a", END]
    )
    graph.add_edge("worker_a", "supervisor")
    graph.add_edge("worker_b", "supervisor")
    return graph.compile(name="async_supervisor")


def _spans(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    found = [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]
    return sorted(found, key=lambda s: s.start_time or 0)


def _check(exporter: InMemorySpanExporter, seen: list[str | None]) -> ReadableSpan:
    (workflow,) = _spans(exporter, "invoke_workflow ")
    nodes = _spans(exporter, "invoke_agent ")
    chats = _spans(exporter, "chat ")
    assert workflow.name == "invoke_workflow async_supervisor"
    assert [n.name.split(" ")[1] for n in nodes] == [
        "supervisor",
        "worker_a",
        "supervisor",
        "worker_b",
        "supervisor",
    ]
    run_id = (workflow.attributes or {})[AGENTMESH_RUN_ID]
    for node, chat in zip(nodes, chats, strict=True):
        assert node.parent is not None
        assert node.parent.span_id == workflow.context.span_id
        assert chat.parent is not None
        assert chat.parent.span_id == node.context.span_id
        assert (node.attributes or {})[AGENTMESH_RUN_ID] == run_id
        assert (chat.attributes or {})[AGENTMESH_RUN_ID] == run_id
    assert seen == [run_id] * 5
    handoffs = [
        (
            (n.attributes or {}).get(GEN_AI_AGENT_HANDOFF_SOURCE_NAME),
            (n.attributes or {}).get(GEN_AI_AGENT_HANDOFF_TARGET_NAME),
            (n.attributes or {}).get(AGENTMESH_HANDOFF_KIND),
        )
        for n in nodes
    ]
    assert handoffs == [
        (None, None, None),
        ("supervisor", "worker_a", "conditional"),
        ("worker_a", "supervisor", "edge"),
        ("supervisor", "worker_b", "command"),
        ("worker_b", "supervisor", "edge"),
    ]
    assert (nodes[3].attributes or {})[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest(
        {"log": ["supervisor", "worker_a", "supervisor"], "turn": 2}
    ).digest
    return workflow


async def test_ainvoke_spans_nesting_and_handoffs(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    seen: list[str | None] = []
    result = await build_graph(fake_provider, seen).ainvoke(
        {"log": [], "turn": 0}, {"configurable": {"thread_id": "t-async"}}
    )

    assert result["log"][-1] == "supervisor"
    workflow = _check(exporter, seen)
    assert (workflow.attributes or {})[GEN_AI_CONVERSATION_ID] == "t-async"


async def test_astream_is_one_workflow(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    seen: list[str | None] = []
    chunks = [
        chunk async for chunk in build_graph(fake_provider, seen).astream({"log": [], "turn": 0})
    ]

    assert len(chunks) == 5
    assert current_run_id() is None
    _check(exporter, seen)


async def test_astream_closed_early_ends_the_workflow(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    stream = build_graph(fake_provider, []).astream({"log": [], "turn": 0})
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]

    (workflow,) = _spans(exporter, "invoke_workflow ")
    assert workflow.end_time is not None
