"""Real CrewAI flows against the fake provider: workflow, step, handoff and nested crew spans.

``ReviewFlow``: ``draft`` (start) → ``classify`` (router, listening to ``draft``) → its
outcome ``approved`` → ``publish`` (kicks off a real crew whose agent calls the real OpenAI SDK)
→ ``notify``; the ``rejected`` branch is not taken. Each method is an ``invoke_node`` step, each
transition a handoff on the receiving step: ``edge`` for ``@listen`` on a method,
``conditional`` for a router's outcome (the router is the source), with the digest and size of
what CrewAI passed on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

import pytest
from crewai import LLM, Agent, Crew, Task
from crewai.flow.flow import Flow, listen, router, start
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from structlog.testing import capture_logs

from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_CONTENT,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_RUN_ID,
    ERROR_TYPE,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_NODE_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation import context_digest, with_run_id
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

SpanTree = Callable[[Sequence[ReadableSpan]], list[str]]
WRITER_MODEL = "writer-model"
SCRIPTS = {WRITER_MODEL: ModelScript(content="Thought: Writing.\nFinal Answer: Otters hold hands.")}
DRAFT = "Otters are aquatic."


def _flow(
    fp: FakeProviderThread, received: list[object], verdict: str = "approved"
) -> Flow[dict[str, object]]:
    """The review flow; ``received`` collects what CrewAI passes to the routed listener."""
    llm = LLM(
        model=f"openai/{WRITER_MODEL}", base_url=fp.openai_base_url, api_key="x", max_retries=0
    )

    class ReviewFlow(Flow[dict[str, object]]):
        @start()
        def draft(self) -> str:
            return DRAFT

        @router(draft)
        def classify(self, text: str) -> str:
            return verdict if text == DRAFT else "rejected"

        @listen("approved")
        def publish(self, passed: object) -> str:
            received.append(passed)  # what CrewAI passes on here differs between releases
            writer = Agent(role="Writer", goal="Write.", backstory="Test agent.", llm=llm)
            task = Task(description="Write.", expected_output="Text.", agent=writer)
            crew = Crew(name="publish_crew", agents=[writer], tasks=[task])
            return crew.kickoff().raw

        @listen("rejected")
        def reject(self, passed: object) -> str:
            received.append(passed)
            return "rejected"

        @listen(publish)
        def notify(self, article: str) -> str:
            return f"published: {article}"

    return ReviewFlow()


def _one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, [s.name for s in spans]
    return matches[0]


def _handoff(source: str, target: str, kind: str, crossed: object) -> dict[str, object]:
    digest = context_digest(crossed)
    return {
        GEN_AI_AGENT_HANDOFF_SOURCE_NAME: source,
        GEN_AI_AGENT_HANDOFF_TARGET_NAME: target,
        AGENTMESH_HANDOFF_KIND: kind,
        AGENTMESH_HANDOFF_CONTEXT_DIGEST: digest.digest,
        AGENTMESH_HANDOFF_CONTEXT_SIZE: digest.size,
    }


def _step(method: str, run_id: object, **handoff: object) -> dict[str, object]:
    return {
        GEN_AI_OPERATION_NAME: "invoke_node",
        GEN_AI_NODE_NAME: method,
        GEN_AI_WORKFLOW_NAME: "ReviewFlow",
        AGENTMESH_FRAMEWORK: "crewai",
        AGENTMESH_RUN_ID: run_id,
        **handoff,
    }


@pytest.mark.usefixtures("crewai_instrumented")
def test_flow_steps_router_branch_and_nested_crew(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    received: list[object] = []
    with FakeProviderThread(SCRIPTS) as fp:
        flow = _flow(fp, received)
        result = flow.kickoff()

    assert result == "published: Otters hold hands."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow ReviewFlow",
        "  invoke_node draft",
        "  invoke_node classify",
        "  invoke_node publish",
        "    invoke_workflow publish_crew",
        "      invoke_agent Writer",
        f"        chat {WRITER_MODEL}",
        "  invoke_node notify",
    ]
    workflow = _one(spans, "invoke_workflow ReviewFlow")
    run_id = (workflow.attributes or {})[AGENTMESH_RUN_ID]
    assert isinstance(run_id, str)
    assert re.fullmatch(r"[0-9a-f]{32}", run_id)
    assert dict(workflow.attributes or {}) == {
        GEN_AI_OPERATION_NAME: "invoke_workflow",
        GEN_AI_WORKFLOW_NAME: "ReviewFlow",
        AGENTMESH_FRAMEWORK: "crewai",
        AGENTMESH_RUN_ID: run_id,
        GEN_AI_CONVERSATION_ID: flow.flow_id,
    }

    expected = {
        "draft": {},
        "classify": _handoff("draft", "classify", "edge", DRAFT),
        # the router is the source of its outcome's listeners
        "publish": _handoff("classify", "publish", "conditional", received[0]),
        "notify": _handoff("publish", "notify", "edge", "Otters hold hands."),
    }
    for method, handoff in expected.items():
        span = _one(spans, f"invoke_node {method}")
        assert dict(span.attributes or {}) == _step(method, run_id, **handoff), method
        events = [(e.name, dict(e.attributes or {})) for e in span.events]
        assert events == ([(EVENT_HANDOFF, handoff)] if handoff else []), method

    # the crew a step kicks off is nested in the step and belongs to the flow's run
    crew = _one(spans, "invoke_workflow publish_crew")
    assert (crew.attributes or {})[AGENTMESH_RUN_ID] == run_id
    assert all((s.attributes or {})[AGENTMESH_RUN_ID] == run_id for s in spans)
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)


@pytest.mark.usefixtures("crewai_instrumented")
def test_other_router_branch(exporter: InMemorySpanExporter, span_tree: SpanTree) -> None:
    received: list[object] = []
    with FakeProviderThread(SCRIPTS) as fp:
        result = _flow(fp, received, verdict="rejected").kickoff()

    assert result == "rejected"
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow ReviewFlow",
        "  invoke_node draft",
        "  invoke_node classify",
        "  invoke_node reject",
    ]
    reject = _one(spans, "invoke_node reject")
    attributes = reject.attributes or {}
    assert attributes[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "classify"
    assert attributes[AGENTMESH_HANDOFF_KIND] == "conditional"
    assert attributes[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest(received[0]).digest


class BoomError(RuntimeError):
    """The application's own error."""


@pytest.mark.usefixtures("crewai_instrumented")
def test_error_in_a_flow_method_marks_spans_and_passes_through(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    raised: list[BoomError] = []

    class FailingFlow(Flow[dict[str, object]]):
        @start()
        def fetch(self) -> str:
            return "data"

        @listen(fetch)
        def parse(self) -> str:
            error = BoomError("unparseable")
            raised.append(error)
            raise error

        @listen(parse)
        def store(self) -> str:
            return "never"

    with pytest.raises(BoomError) as caught:
        FailingFlow().kickoff()

    assert caught.value is raised[0]  # the very exception, unchanged
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow FailingFlow",
        "  invoke_node fetch",
        "  invoke_node parse",
    ]
    for name in ("invoke_workflow FailingFlow", "invoke_node parse"):
        span = _one(spans, name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert (span.attributes or {})[ERROR_TYPE] == "BoomError", name
    assert _one(spans, "invoke_node fetch").status.status_code is StatusCode.UNSET


@pytest.mark.usefixtures("crewai_instrumented")
async def test_async_flow_with_agents_keeps_context(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    with FakeProviderThread(SCRIPTS) as fp:
        llm = LLM(
            model=f"openai/{WRITER_MODEL}", base_url=fp.openai_base_url, api_key="x", max_retries=0
        )

        class AsyncFlow(Flow[dict[str, object]]):
            @start()
            async def ask(self) -> str:
                agent = Agent(role="Asker", goal="Ask.", backstory="Test agent.", llm=llm)
                return (await agent.kickoff_async("Tell me about otters.")).raw

            @listen(ask)
            def answer(self, text: str) -> str:
                agent = Agent(role="Answerer", goal="Answer.", backstory="Test agent.", llm=llm)
                return f"{agent.kickoff(text).raw}!"  # a sync method in CrewAI's thread pool

        result = await AsyncFlow().kickoff_async()

    assert result == "Otters hold hands.!"
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow AsyncFlow",
        "  invoke_node ask",
        "    invoke_agent Asker",
        f"      chat {WRITER_MODEL}",
        "  invoke_node answer",
        "    invoke_agent Answerer",
        f"      chat {WRITER_MODEL}",
    ]
    workflow = _one(spans, "invoke_workflow AsyncFlow")
    run_id = (workflow.attributes or {})[AGENTMESH_RUN_ID]
    assert {(s.attributes or {})[AGENTMESH_RUN_ID] for s in spans} == {run_id}
    for role in ("Asker", "Answerer"):
        agent = _one(spans, f"invoke_agent {role}")
        assert (agent.attributes or {})[GEN_AI_WORKFLOW_NAME] == "AsyncFlow"
    answer = _one(spans, "invoke_node answer")
    assert (answer.attributes or {})[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == (
        context_digest("Otters hold hands.").digest
    )


@pytest.mark.usefixtures("crewai_instrumented")
def test_run_id_from_baggage_and_state_id_from_inputs(exporter: InMemorySpanExporter) -> None:
    class TinyFlow(Flow[dict[str, object]]):
        @start()
        def only(self) -> str:
            return "done"

    with attached(with_run_id("run-from-upstream")):
        TinyFlow().kickoff(inputs={"id": "state-42"})

    spans = exporter.get_finished_spans()
    workflow = _one(spans, "invoke_workflow TinyFlow")
    assert (workflow.attributes or {})[GEN_AI_CONVERSATION_ID] == "state-42"
    assert {(s.attributes or {})[AGENTMESH_RUN_ID] for s in spans} == {"run-from-upstream"}


@pytest.fixture
def capturing(
    openai_instrumented: OpenAIInstrumentor, tracer_provider: TracerProvider
) -> Iterator[CrewAIInstrumentor]:
    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_content=True)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.mark.usefixtures("capturing")
def test_handoff_content_is_opt_in(exporter: InMemorySpanExporter) -> None:
    class TinyFlow(Flow[dict[str, object]]):
        @start()
        def first(self) -> dict[str, str]:
            return {"note": "otters"}

        @listen(first)
        def second(self, note: dict[str, str]) -> str:
            return note["note"]

    TinyFlow().kickoff()

    second = _one(exporter.get_finished_spans(), "invoke_node second")
    assert (second.attributes or {})[AGENTMESH_HANDOFF_CONTENT] == '{"note":"otters"}'


def test_uninstrument_removes_flow_spans(
    exporter: InMemorySpanExporter, crewai_instrumented: CrewAIInstrumentor
) -> None:
    crewai_instrumented.uninstrument()

    class TinyFlow(Flow[dict[str, object]]):
        @start()
        def only(self) -> str:
            return "done"

    assert TinyFlow().kickoff() == "done"
    assert exporter.get_finished_spans() == ()


@pytest.mark.usefixtures("crewai_instrumented")
def test_instrumentation_bugs_do_not_break_the_flow(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, span_tree: SpanTree
) -> None:
    from agentmesh.instrumentation.crewai import _flow_steps

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("bug in our code")

    monkeypatch.setattr(_flow_steps, "crossing_attributes", broken)

    class TinyFlow(Flow[dict[str, object]]):
        @start()
        def first(self) -> str:
            return "a"

        @listen(first)
        def second(self, text: str) -> str:
            return text + "b"

    with capture_logs() as logs:
        assert TinyFlow().kickoff() == "ab"

    assert [e["where"] for e in logs if e["event"] == "agentmesh.instrumentation_error"] == [
        "crewai.flow_handoff"
    ]
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [  # a failed handoff costs the handoff, never the span
        "invoke_workflow TinyFlow",
        "  invoke_node first",
        "  invoke_node second",
    ]
    assert GEN_AI_AGENT_HANDOFF_SOURCE_NAME not in (
        _one(spans, "invoke_node second").attributes or {}
    )


@pytest.mark.usefixtures("crewai_instrumented")
def test_broken_flow_start_leaves_the_flow_untraced(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentmesh.instrumentation.crewai import _flows

    def broken(flow: object) -> str:
        raise RuntimeError("bug in our code")

    monkeypatch.setattr(_flows, "flow_name", broken)

    class TinyFlow(Flow[dict[str, object]]):
        @start()
        def only(self) -> str:
            return "done"

    with capture_logs() as logs:
        assert TinyFlow().kickoff() == "done"
    assert [e["where"] for e in logs if e["event"] == "agentmesh.instrumentation_error"] == [
        "crewai.start_flow"
    ]
    assert exporter.get_finished_spans() == ()  # no flow, so no steps either
