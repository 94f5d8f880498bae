"""Start markers: a zero-length ``agentmesh.step.start`` span per step, exported as it starts.

A real LangGraph graph (an agent calling the real OpenAI SDK against the fake provider, then a
``ToolNode`` running a tool) on a provider of its own with the marker processor; the processor
alone for the fail-open and no-recursion rules; the setup for the ``AGENTMESH_STEP_MARKERS``
setting; and the OTLP exporter path into a real AgentMesh collector.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Annotated, TypedDict

import openai
import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.collector import Collector, CollectorSettings
from agentmesh.core.semconv import (
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_TASK_CLASS,
    AGENTMESH_STEP_STARTED,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation._baggage_processor import BaggageSpanProcessor
from agentmesh.instrumentation._markers import MARKER_NAME, STEP_OPERATIONS, StepMarkerProcessor
from agentmesh.instrumentation._setup import build_tracer_provider
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.settings import InstrumentationSettings
from agentmesh.instrumentation.testing import (
    FakeProviderThread,
    ModelScript,
    ScriptedReply,
    ToolCallScript,
)

MODEL = "gpt-4o-mini"
TASK_CLASS = "weather"


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city."""
    return f"Sunny in {city}."


def _provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BaggageSpanProcessor())
    provider.add_span_processor(StepMarkerProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def marked() -> Iterator[InMemorySpanExporter]:
    """LangGraph and OpenAI instrumented on a provider with the marker processor."""
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    instrumentors = (OpenAIInstrumentor(), LangGraphInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    yield exporter
    for instrumentor in reversed(instrumentors):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    calls = ScriptedReply(
        tool_calls=(ToolCallScript(name="get_weather", arguments={"city": "Paris"}, id="c1"),)
    )
    with FakeProviderThread({MODEL: ModelScript(sequence=(calls, "Sunny."))}) as fp:
        yield fp


def _to_message(reply: openai.types.chat.ChatCompletion) -> AIMessage:
    message = reply.choices[0].message
    calls = [
        {"name": c.function.name, "args": json.loads(c.function.arguments), "id": c.id}
        for c in message.tool_calls or []
        if c.type == "function"
    ]
    return AIMessage(content=message.content or "", tool_calls=calls)


def _ids_exported(exporter: InMemorySpanExporter) -> list[tuple[str, str | None]]:
    return [
        (s.name, str((s.attributes or {}).get(AGENTMESH_STEP_STARTED)))
        for s in exporter.get_finished_spans()
    ]


def _run_graph(fp: FakeProviderThread, exporter: InMemorySpanExporter) -> list[tuple[str, bool]]:
    """Run the graph; return, per agent step, its span id and whether its marker was out."""
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
    seen: list[tuple[str, bool]] = []

    def agent(state: Chat) -> Chat:
        step_id = format(trace.get_current_span().get_span_context().span_id, "016x")
        exported = _ids_exported(exporter)
        # the marker is out while the step runs; the step span itself is not
        seen.append((step_id, (MARKER_NAME, step_id) in exported))
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "weather?"}]
        )
        return {"messages": [_to_message(reply)]}

    graph = StateGraph(Chat)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    app = graph.compile(name="assistant")
    app.invoke(
        {"messages": [("user", "weather?")]},
        {"metadata": {"agentmesh_task_class": TASK_CLASS}},
    )
    return seen


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def test_every_step_gets_one_marker_before_it_ends(
    marked: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    seen = _run_graph(fake, marked)

    assert len(seen) == 2
    assert all(out for _, out in seen), seen
    spans = list(marked.get_finished_spans())
    markers = [s for s in spans if s.name == MARKER_NAME]
    steps = [s for s in spans if _attrs(s).get(GEN_AI_OPERATION_NAME) in STEP_OPERATIONS]
    chats = [s for s in spans if _attrs(s).get(GEN_AI_OPERATION_NAME) == "chat"]
    assert len(chats) == 2
    assert sorted(s.name for s in steps) == sorted(
        [
            "invoke_workflow assistant",
            "invoke_agent agent",
            "invoke_agent agent",
            "execute_tool tools",
            "execute_tool get_weather",
        ]
    )
    by_step = {str(_attrs(m)[AGENTMESH_STEP_STARTED]): m for m in markers}
    assert len(markers) == len(steps) == len(by_step)  # one each; chat spans get none
    assert {step_id for step_id, _ in seen} <= set(by_step)
    run_id = _attrs(steps[0])[AGENTMESH_RUN_ID]
    for step in steps:
        marker = by_step[_hex(step)]
        attrs = _attrs(marker)
        assert marker.parent is not None
        assert step.context is not None
        assert marker.parent.span_id == step.context.span_id
        assert marker.context is not None
        assert marker.context.trace_id == step.context.trace_id
        assert marker.context.span_id != step.context.span_id
        assert marker.start_time == marker.end_time == step.start_time
        assert spans.index(marker) < spans.index(step)  # exported before the step ended
        assert GEN_AI_OPERATION_NAME not in attrs
        assert attrs[AGENTMESH_RUN_ID] == run_id
        assert attrs[AGENTMESH_RUN_TASK_CLASS] == TASK_CLASS
        assert attrs[GEN_AI_WORKFLOW_NAME] == "assistant"
        operation = _attrs(step)[GEN_AI_OPERATION_NAME]
        if operation == "invoke_agent":
            assert attrs[GEN_AI_AGENT_NAME] == "agent"
        elif step.name == "execute_tool get_weather":
            assert attrs[GEN_AI_TOOL_NAME] == "get_weather"
        elif step.name == "execute_tool tools":  # a ToolNode step: named by its span
            assert attrs[GEN_AI_TOOL_NAME] == "execute_tool tools"
        else:
            assert operation == "invoke_workflow"
            assert GEN_AI_AGENT_NAME not in attrs
            assert GEN_AI_TOOL_NAME not in attrs
    assert all(m.instrumentation_scope is not None for m in markers)


def _step(tracer: trace.Tracer, operation: str = "invoke_agent") -> trace.Span:
    return tracer.start_span(
        f"{operation} writer",
        attributes={GEN_AI_OPERATION_NAME: operation, GEN_AI_AGENT_NAME: "writer"},
    )


def test_only_our_step_spans_are_marked() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    ours = provider.get_tracer("agentmesh.instrumentation.langgraph")
    model_calls = provider.get_tracer("agentmesh.instrumentation.openai")
    theirs = provider.get_tracer("someone.else")

    for span in (
        _step(ours, "chat"),
        _step(model_calls),
        _step(theirs),
        ours.start_span("plain"),
        ours.start_span(MARKER_NAME, attributes={AGENTMESH_STEP_STARTED: "0" * 16}),
    ):
        span.end()
    assert [s.name for s in exporter.get_finished_spans()] == [
        "chat writer",
        "invoke_agent writer",
        "invoke_agent writer",
        "plain",
        MARKER_NAME,  # started by hand: exported, not marked in turn
    ]
    for tracer in (ours, provider.get_tracer("agentmesh.instrumentation.crewai")):
        exporter.clear()
        for operation in sorted(STEP_OPERATIONS):
            _step(tracer, operation).end()
        names = [s.name for s in exporter.get_finished_spans()]
        assert names.count(MARKER_NAME) == len(STEP_OPERATIONS)


class _Exploding(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == MARKER_NAME:
            raise RuntimeError("broken exporter")


class _Reentrant(SpanProcessor):
    """Starts a step span of our scope whenever it sees a marker (a recursion trap)."""

    def __init__(self, provider: TracerProvider) -> None:
        self.tracer = provider.get_tracer("agentmesh.instrumentation.crewai")
        self.markers = 0

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == MARKER_NAME:
            self.markers += 1
            _step(self.tracer).end()


def test_a_failing_processor_never_reaches_the_step() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    exploding = _Exploding()
    provider.add_span_processor(exploding)

    span = _step(provider.get_tracer("agentmesh.instrumentation.langgraph"))
    span.end()

    assert exploding.started == ["invoke_agent writer"]  # the marker skips on_start
    assert [s.name for s in exporter.get_finished_spans()] == [MARKER_NAME, "invoke_agent writer"]


def test_a_processor_starting_steps_on_markers_does_not_recurse() -> None:
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    trap = _Reentrant(provider)
    provider.add_span_processor(trap)

    _step(provider.get_tracer("agentmesh.instrumentation.langgraph")).end()

    assert trap.markers == 1  # the step started inside the marker's delivery is not marked
    assert [s.name for s in exporter.get_finished_spans()].count(MARKER_NAME) == 1


def _processors(provider: TracerProvider) -> Sequence[SpanProcessor]:
    active = provider._active_span_processor  # pyright: ignore[reportPrivateUsage]
    return active._span_processors  # pyright: ignore[reportPrivateUsage]


def test_setup_installs_markers_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    on = build_tracer_provider(InstrumentationSettings.load(endpoint="http://127.0.0.1:9"))
    monkeypatch.setenv("AGENTMESH_STEP_MARKERS", "false")
    off_settings = InstrumentationSettings.load(endpoint="http://127.0.0.1:9")
    off = build_tracer_provider(off_settings)
    try:
        kinds_on = [type(p).__name__ for p in _processors(on)]
        assert kinds_on == ["BaggageSpanProcessor", "StepMarkerProcessor", "BoundedSpanProcessor"]
        assert off_settings.step_markers is False
        assert "StepMarkerProcessor" not in [type(p).__name__ for p in _processors(off)]
    finally:
        for provider in (on, off):
            provider.shutdown()


def _emit_marked_step(endpoint: str) -> tuple[str, str]:
    """Start a step through the real setup (OTLP/gRPC exporter); end it only after a flush."""
    provider = build_tracer_provider(
        InstrumentationSettings.load(endpoint=endpoint, service_name="marker-app")
    )
    try:
        span = _step(provider.get_tracer("agentmesh.instrumentation.langgraph"))
        provider.force_flush()  # the step is still running: only its marker can be out
        context = span.get_span_context()
        span.end()
        provider.force_flush()
        return format(context.trace_id, "032x"), format(context.span_id, "016x")
    finally:
        provider.shutdown()


async def test_markers_reach_the_collector_over_otlp() -> None:
    settings = CollectorSettings.load(
        grpc_host="127.0.0.1",
        grpc_port=0,
        http_port=0,
        store="memory",
        decode_workers=0,
        grpc_grace_seconds=1.0,
    )
    async with Collector(settings) as collector:
        trace_id, step_id = await asyncio.to_thread(_emit_marked_step, collector.endpoint)
        await collector.drain()
        spans = await collector.store.spans(trace_id)
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {MARKER_NAME, "invoke_agent writer"}
    marker = by_name[MARKER_NAME]
    assert marker.parent_span_id == step_id == by_name["invoke_agent writer"].span_id
    assert marker.str_attr(AGENTMESH_STEP_STARTED) == step_id
    assert marker.str_attr(GEN_AI_AGENT_NAME) == "writer"
    assert marker.str_attr(GEN_AI_OPERATION_NAME) is None
