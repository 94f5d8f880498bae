"""Handoff kinds and parallel nodes: ``Send`` fan-out, conditional edges with a path map,
``Command(goto=Send(…))``, fan-in, and opt-in handoff content.

The fan-out graph: plan → (conditional edge returning one ``Send`` per topic) → researcher,
three times in parallel (LangGraph's thread pool, or asyncio tasks) → writer (plain edge,
fan-in). Each agent calls the real OpenAI SDK against the fake provider.
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal, TypedDict

import openai
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Send
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_CONTENT_TRUNCATED,
    AGENTMESH_HANDOFF_CHECKPOINT_ID,
    AGENTMESH_HANDOFF_CONTENT,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_LANGGRAPH_STEP,
    AGENTMESH_RUN_ID,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
)
from agentmesh.instrumentation import context_digest
from agentmesh.instrumentation.handoff import canonical_json
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread

pytestmark = pytest.mark.usefixtures("langgraph_instrumented")

MODEL = "gpt-4o-mini"
TOPICS = ["alpha", "beta", "gamma"]


class Research(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


class Packet(TypedDict):
    topic: str


def _fan_out_graph(fp: FakeProviderThread, *, use_async: bool) -> CompiledStateGraph:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)

    def ask(text: str) -> None:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])

    async def aask(text: str) -> None:
        await aclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}]
        )

    def plan(state: Research) -> dict[str, list[str]]:
        ask("plan")
        return {"topics": TOPICS}

    def fan_out(state: Research) -> list[Send]:
        return [Send("researcher", {"topic": t}) for t in state["topics"]]

    def researcher(packet: Packet) -> dict[str, list[str]]:
        ask(packet["topic"])
        return {"notes": [packet["topic"]]}

    async def aresearcher(packet: Packet) -> dict[str, list[str]]:
        await aask(packet["topic"])
        return {"notes": [packet["topic"]]}

    def writer(state: Research) -> dict[str, list[str]]:
        ask("write")
        return {"notes": ["report"]}

    graph = StateGraph(Research)
    graph.add_node("plan", plan)
    graph.add_node("researcher", aresearcher if use_async else researcher)
    graph.add_node("writer", writer)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", fan_out, ["researcher"])
    graph.add_edge("researcher", "writer")
    graph.add_edge("writer", END)
    return graph.compile(name="fan_out")


def _by_start(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return sorted(spans, key=lambda s: s.start_time or 0)


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _check_fan_out(exporter: InMemorySpanExporter) -> None:
    spans = list(exporter.get_finished_spans())
    by_id = {s.context.span_id: s for s in spans}
    (workflow,) = [s for s in spans if s.name == "invoke_workflow fan_out"]
    run_id = _attrs(workflow)[AGENTMESH_RUN_ID]
    agents = _by_start([s for s in spans if s.name.startswith("invoke_agent ")])
    names = [s.name.removeprefix("invoke_agent ") for s in agents]
    assert names == ["plan", "researcher", "researcher", "researcher", "writer"]
    assert all(
        s.parent is not None and s.parent.span_id == workflow.context.span_id for s in agents
    )
    assert [_attrs(s)[AGENTMESH_LANGGRAPH_STEP] for s in agents] == [1, 2, 2, 2, 3]

    # one handoff per Send packet, each with its own packet's digest
    researchers = agents[1:4]
    received: dict[str, str] = {}
    for span in researchers:
        attrs = _attrs(span)
        assert attrs[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "plan"
        assert attrs[GEN_AI_AGENT_HANDOFF_TARGET_NAME] == "researcher"
        assert attrs[AGENTMESH_HANDOFF_KIND] == "send"
        received[str(attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST])] = span.name
    assert set(received) == {context_digest({"topic": t}).digest for t in TOPICS}

    # fan-in: the writer received work from the three researchers (one event each)
    writer = agents[4]
    attrs = _attrs(writer)
    assert attrs[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "researcher"
    assert attrs[AGENTMESH_HANDOFF_KIND] == "edge"
    events = [e for e in writer.events if e.name == EVENT_HANDOFF]
    assert [(e.attributes or {})[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] for e in events] == [
        "researcher"
    ] * 3
    expected_state = {"topics": TOPICS, "notes": sorted(TOPICS)}
    assert attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest(expected_state).digest

    # every chat span nests under the agent that made it, parallel ones included (no orphan)
    chats = [s for s in spans if s.name == f"chat {MODEL}"]
    assert len(chats) == 5
    for chat in chats:
        assert chat.parent is not None
        parent = by_id[chat.parent.span_id]
        assert parent.name.startswith("invoke_agent ")
        assert _attrs(chat)[AGENTMESH_RUN_ID] == run_id
    researcher_chats = [c for c in chats if c.parent and by_id[c.parent.span_id] in researchers]
    assert len({c.parent.span_id for c in researcher_chats if c.parent}) == 3


def test_send_fan_out_runs_in_the_thread_pool_with_one_handoff_per_packet(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    result = _fan_out_graph(fake_provider, use_async=False).invoke({"topics": [], "notes": []})

    assert sorted(result["notes"]) == sorted([*TOPICS, "report"])
    _check_fan_out(exporter)


async def test_send_fan_out_as_asyncio_tasks(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    await _fan_out_graph(fake_provider, use_async=True).ainvoke({"topics": [], "notes": []})

    _check_fan_out(exporter)


class Ticket(TypedDict):
    text: str
    route: str


def _triage_graph() -> CompiledStateGraph:
    def triage(state: Ticket) -> dict[str, str]:
        return {"route": "billing" if "invoice" in state["text"] else "tech"}

    def label(state: Ticket) -> Literal["money", "machines"]:
        return "money" if state["route"] == "billing" else "machines"

    def billing(state: Ticket) -> Command[Literal["escalate"]]:
        return Command(goto=Send("escalate", {"text": state["text"], "route": "escalated"}))

    def tech(state: Ticket) -> dict[str, str]:
        return {"route": "solved"}

    def escalate(state: Ticket) -> dict[str, str]:
        return {"route": state["route"]}

    graph = StateGraph(Ticket)
    for name, fn in (("triage", triage), ("billing", billing), ("tech", tech)):
        graph.add_node(name, fn)
    graph.add_node("escalate", escalate)
    graph.add_edge(START, "triage")
    graph.add_conditional_edges("triage", label, {"money": "billing", "machines": "tech"})
    graph.add_edge("tech", END)
    graph.add_edge("escalate", END)
    return graph.compile(name="triage")


def _handoffs(exporter: InMemorySpanExporter) -> list[tuple[object, ...]]:
    agents = _by_start(
        [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent ")]
    )
    return [
        (
            s.name.removeprefix("invoke_agent "),
            _attrs(s).get(GEN_AI_AGENT_HANDOFF_SOURCE_NAME),
            _attrs(s).get(AGENTMESH_HANDOFF_KIND),
        )
        for s in agents
    ]


def test_conditional_edge_with_a_path_map_and_command_goto_send(
    exporter: InMemorySpanExporter,
) -> None:
    graph = _triage_graph()

    assert graph.invoke({"text": "my invoice", "route": ""})["route"] == "escalated"
    assert _handoffs(exporter) == [
        ("triage", None, None),
        ("billing", "triage", "conditional"),
        ("escalate", "billing", "send"),
    ]
    exporter.clear()

    assert graph.invoke({"text": "my laptop", "route": ""})["route"] == "solved"
    assert _handoffs(exporter) == [("triage", None, None), ("tech", "triage", "conditional")]
    for span in exporter.get_finished_spans():
        assert span.status.status_code is StatusCode.UNSET


@pytest.fixture
def capturing(
    langgraph_instrumented: LangGraphInstrumentor, tracer_provider: TracerProvider
) -> None:
    langgraph_instrumented.uninstrument()  # the fixture uninstruments again afterwards
    langgraph_instrumented.instrument(tracer_provider=tracer_provider, capture_content=True)


def _escalate_span(exporter: InMemorySpanExporter) -> dict[str, object]:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent escalate"]
    return _attrs(span)


@pytest.mark.usefixtures("capturing")
def test_handoff_content_is_recorded_when_capture_is_on(exporter: InMemorySpanExporter) -> None:
    _triage_graph().invoke({"text": "my invoice", "route": ""})

    attrs = _escalate_span(exporter)
    sent = {"text": "my invoice", "route": "escalated"}
    assert attrs[AGENTMESH_HANDOFF_CONTENT] == canonical_json(sent)
    assert AGENTMESH_HANDOFF_CHECKPOINT_ID not in attrs  # the graph has no checkpointer
    assert AGENTMESH_CONTENT_TRUNCATED not in attrs


@pytest.mark.usefixtures("capturing")
def test_handoff_content_is_capped_at_16_kib(exporter: InMemorySpanExporter) -> None:
    text = "invoice " + "é" * 20_000
    _triage_graph().invoke({"text": text, "route": ""})

    attrs = _escalate_span(exporter)
    content = attrs[AGENTMESH_HANDOFF_CONTENT]
    assert isinstance(content, str)
    assert len(content.encode("utf-8")) <= 16 * 1024
    assert len(content.encode("utf-8")) > 16 * 1024 - 4
    assert canonical_json({"route": "escalated", "text": text}).startswith(content)
    assert attrs[AGENTMESH_CONTENT_TRUNCATED] is True
    full = context_digest({"text": text, "route": "escalated"})
    assert attrs[AGENTMESH_HANDOFF_CONTEXT_SIZE] == full.size  # the digest covers it all


def test_handoff_content_follows_the_genai_capture_variable(
    langgraph_instrumented: LangGraphInstrumentor,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _triage_graph().invoke({"text": "invoice", "route": ""})
    assert AGENTMESH_HANDOFF_CONTENT not in _escalate_span(exporter)  # off by default
    exporter.clear()

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    langgraph_instrumented.uninstrument()
    langgraph_instrumented.instrument(tracer_provider=tracer_provider)
    _triage_graph().invoke({"text": "invoice", "route": ""})

    assert _escalate_span(exporter)[AGENTMESH_HANDOFF_CONTENT] == canonical_json(
        {"route": "escalated", "text": "invoice"}
    )


def test_a_bug_in_our_handoff_code_never_reaches_the_graph(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentmesh.instrumentation.langgraph import _nodes, _routes

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug in AgentMesh")

    monkeypatch.setattr(_nodes, "handoff_state_attributes", broken)  # at a node's start
    monkeypatch.setattr(_routes, "_destinations", broken)  # in the conditional edge
    graph = _triage_graph()

    assert graph.invoke({"text": "my invoice", "route": ""})["route"] == "escalated"
    assert _handoffs(exporter) == [  # every span is there, without its handoff
        ("triage", None, None),
        ("billing", None, None),
        ("escalate", None, None),
    ]
    exporter.clear()

    monkeypatch.setattr(_nodes, "outbound_of", broken)  # at a node's end
    assert graph.invoke({"text": "my invoice", "route": ""})["route"] == "escalated"
    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    assert all(s.end_time is not None for s in spans)
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
