"""Start markers of plain code's steps: ``workflow()`` and ``agent()`` announce themselves too.

A step of plain code exports its ``agentmesh.step.start`` marker the moment it starts, as a
LangGraph or CrewAI step does, so the collector sees a step that hangs and knows, while the step
runs, whose LLM calls follow. The spans go through a provider of their own with the baggage and
marker processors (as ``init()`` builds it); the real OpenAI SDK calls the fake provider. A batch
leaves AgentMesh's exporter with its markers first: OTLP groups a batch by scope, and a batch
beginning with a model call would otherwise put a step's marker after the step's calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_TASK_CLASS,
    AGENTMESH_STEP_STARTED,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation import agent, task_class, workflow
from agentmesh.instrumentation._baggage_processor import BaggageSpanProcessor
from agentmesh.instrumentation._exporter import GuardedSpanExporter
from agentmesh.instrumentation._markers import MARKER_NAME, StepMarkerProcessor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

MODEL = "gpt-4o-mini"


@pytest.fixture
def marked() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A provider with the marker processor; the OpenAI SDK instrumented on it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BaggageSpanProcessor())
    provider.add_span_processor(StepMarkerProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield provider, exporter
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread({MODEL: ModelScript(content="ok")}) as provider:
        yield provider


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _hex(span_id: int) -> str:
    return format(span_id, "016x")


def _started(exporter: InMemorySpanExporter) -> list[str]:
    """The step ids whose markers are out, in the order they went out."""
    return [
        str(_attrs(s)[AGENTMESH_STEP_STARTED])
        for s in exporter.get_finished_spans()
        if s.name == MARKER_NAME
    ]


def test_plain_steps_are_marked_as_they_start(
    marked: tuple[TracerProvider, InMemorySpanExporter], fake: FakeProviderThread
) -> None:
    provider, exporter = marked
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    out_while_running: dict[str, bool] = {}

    def current_step() -> str:
        return _hex(trace.get_current_span().get_span_context().span_id)

    with (
        task_class("triage"),
        workflow("stalling", run_id="run-9", tracer_provider=provider),
    ):
        out_while_running["workflow"] = current_step() in _started(exporter)
        with agent("planner", tracer_provider=provider):
            out_while_running["planner"] = current_step() in _started(exporter)
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "p"}])
        with agent("slowpoke", tracer_provider=provider):  # a step that would hang here
            out_while_running["slowpoke"] = current_step() in _started(exporter)

    # each marker is out while its step still runs: a step that never ends is still seen
    assert out_while_running == {"workflow": True, "planner": True, "slowpoke": True}
    spans = list(exporter.get_finished_spans())
    steps = {s.name: s for s in spans if s.name.startswith(("invoke_workflow", "invoke_agent"))}
    assert set(steps) == {
        "invoke_workflow stalling",
        "invoke_agent planner",
        "invoke_agent slowpoke",
    }
    markers = {str(_attrs(m)[AGENTMESH_STEP_STARTED]): m for m in spans if m.name == MARKER_NAME}
    assert len(markers) == len(steps)  # one each; the LLM call gets none
    for name, step in steps.items():
        assert step.context is not None
        marker = markers[_hex(step.context.span_id)]
        attrs = _attrs(marker)
        assert marker.parent is not None
        assert marker.parent.span_id == step.context.span_id
        assert marker.start_time == marker.end_time == step.start_time
        assert spans.index(marker) < spans.index(step)
        assert GEN_AI_OPERATION_NAME not in attrs
        assert attrs[AGENTMESH_RUN_ID] == "run-9"
        assert attrs[AGENTMESH_RUN_TASK_CLASS] == "triage"
        if name.startswith("invoke_agent "):
            assert attrs[GEN_AI_AGENT_NAME] == name.removeprefix("invoke_agent ")
        else:
            assert attrs[GEN_AI_WORKFLOW_NAME] == "stalling"
            assert GEN_AI_AGENT_NAME not in attrs
    # the call went out after its agent's marker: the collector knows whose call it is
    (chat,) = [s for s in spans if _attrs(s).get(GEN_AI_OPERATION_NAME) == "chat"]
    planner = steps["invoke_agent planner"]
    assert chat.parent is not None
    assert planner.context is not None
    assert chat.parent.span_id == planner.context.span_id
    assert spans.index(markers[_hex(planner.context.span_id)]) < spans.index(chat)


def test_decorated_coroutines_are_marked_per_call(
    marked: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = marked

    @agent("critic", tracer_provider=provider)
    async def critique(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    @workflow("pipeline", tracer_provider=provider)
    async def pipeline() -> list[int]:
        return list(await asyncio.gather(critique(1), critique(2)))

    assert asyncio.run(pipeline()) == [2, 3]
    spans = list(exporter.get_finished_spans())
    markers = [s for s in spans if s.name == MARKER_NAME]
    steps = [s for s in spans if s.name != MARKER_NAME]
    assert len(steps) == 3
    assert sorted(_hex(s.context.span_id) for s in steps if s.context is not None) == sorted(
        str(_attrs(m)[AGENTMESH_STEP_STARTED]) for m in markers
    )
    assert sorted(str(_attrs(m).get(GEN_AI_AGENT_NAME)) for m in markers) == [
        "None",
        "critic",
        "critic",
    ]


def test_a_batch_leaves_with_its_markers_ahead_of_the_calls(
    marked: tuple[TracerProvider, InMemorySpanExporter], fake: FakeProviderThread
) -> None:
    provider, exporter = marked
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    with workflow("two-agents", tracer_provider=provider):
        for name in ("planner", "summariser"):
            with agent(name, tracer_provider=provider):
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": name}]
                )
    ended = list(exporter.get_finished_spans())
    first_call = next(i for i, s in enumerate(ended) if s.name == f"chat {MODEL}")
    # a batch the batch processor cut just before the planner's call: it begins with a call
    batch = ended[first_call:]
    inner = InMemorySpanExporter()
    GuardedSpanExporter(lambda: inner).export(batch)

    sent = inner.get_finished_spans()
    assert sorted(s.name for s in sent) == sorted(s.name for s in batch)  # all of them, once
    request = encode_spans(sent)  # what goes over the wire, grouped by scope
    on_the_wire = [
        (span.name, span.parent_span_id.hex())
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    summariser = next(s for s in batch if s.name == "invoke_agent summariser")
    assert summariser.context is not None
    step = _hex(summariser.context.span_id)
    its_marker = on_the_wire.index((MARKER_NAME, step))
    its_call = on_the_wire.index((f"chat {MODEL}", step))
    assert its_marker < its_call  # the collector meets the step before the call made in it
