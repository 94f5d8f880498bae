"""Start markers of a real crew: workflow, agent and tool steps, each marked as it starts.

The crew runs on a provider of its own carrying the marker processor (the shared test provider
has none), against the fake provider; the agent calls a tool through native function calling.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_RUN_ID,
    AGENTMESH_STEP_STARTED,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation._baggage_processor import BaggageSpanProcessor
from agentmesh.instrumentation._markers import MARKER_NAME, STEP_OPERATIONS, StepMarkerProcessor
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import (
    FakeProviderThread,
    ModelScript,
    ScriptedReply,
    ToolCallScript,
)

MODEL = "marker-model"


@pytest.fixture
def marked() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BaggageSpanProcessor())
    provider.add_span_processor(StepMarkerProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentors = (OpenAIInstrumentor(), CrewAIInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    yield exporter
    for instrumentor in reversed(instrumentors):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def test_crew_steps_are_marked_as_they_start(marked: InMemorySpanExporter) -> None:
    out_while_running: list[bool] = []

    @tool("Lookup")
    def lookup(query: str) -> str:
        """Look a fact up."""
        step = format(trace.get_current_span().get_span_context().span_id, "016x")
        out_while_running.append(
            any(_attrs(s).get(AGENTMESH_STEP_STARTED) == step for s in marked.get_finished_spans())
        )
        return f"Fact about {query}."

    calls = ScriptedReply(
        tool_calls=(ToolCallScript(name="lookup", arguments={"query": "otters"}),)
    )
    with FakeProviderThread({MODEL: ModelScript(sequence=(calls, "Otters hold hands."))}) as fp:
        agent = Agent(
            role="Researcher",
            goal="Find facts.",
            backstory="Test agent.",
            llm=LLM(
                model=f"openai/{MODEL}", base_url=fp.openai_base_url, api_key="x", max_retries=0
            ),
            tools=[lookup],
        )
        task = Task(description="Find otters.", expected_output="A fact.", agent=agent)
        Crew(name="marked_crew", agents=[agent], tasks=[task]).kickoff()

    assert out_while_running == [True]
    spans = list(marked.get_finished_spans())
    steps = [s for s in spans if _attrs(s).get(GEN_AI_OPERATION_NAME) in STEP_OPERATIONS]
    assert sorted(s.name for s in steps) == [
        "execute_tool Lookup",
        "invoke_agent Researcher",
        "invoke_workflow marked_crew",
    ]
    markers = {str(_attrs(m)[AGENTMESH_STEP_STARTED]): m for m in spans if m.name == MARKER_NAME}
    assert len(markers) == len(steps)  # chat spans get none
    run_id = _attrs(steps[0])[AGENTMESH_RUN_ID]
    for step in steps:
        assert step.context is not None
        marker = markers[format(step.context.span_id, "016x")]
        attrs = _attrs(marker)
        assert marker.parent is not None
        assert marker.parent.span_id == step.context.span_id
        assert marker.start_time == marker.end_time == step.start_time
        assert spans.index(marker) < spans.index(step)
        assert GEN_AI_OPERATION_NAME not in attrs
        assert attrs[AGENTMESH_RUN_ID] == run_id
        assert attrs[GEN_AI_WORKFLOW_NAME] == "marked_crew"
    assert (
        _attrs(markers[_hex(spans, "invoke_agent Researcher")])[GEN_AI_AGENT_NAME] == "Researcher"
    )
    assert _attrs(markers[_hex(spans, "execute_tool Lookup")])[GEN_AI_TOOL_NAME] == "Lookup"


def _hex(spans: list[ReadableSpan], name: str) -> str:
    (span,) = [s for s in spans if s.name == name]
    assert span.context is not None
    return format(span.context.span_id, "016x")
