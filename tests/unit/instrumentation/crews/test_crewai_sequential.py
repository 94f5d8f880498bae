"""A real two-task sequential crew against the fake provider: workflow, agent and handoff spans.

Researcher (research task) → Writer (write task, starting from the research output as context).
The agents answer in CrewAI's ReAct format (``Thought: … Final Answer: …``); their LLM calls go
through CrewAI's native OpenAI provider, i.e. the real OpenAI SDK, and appear as ``chat`` spans
under the agent that made them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pytest
from crewai import LLM, Agent, Crew, Task
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from structlog.testing import capture_logs

from agentmesh.core.semconv import (
    AGENTMESH_CREWAI_TASK_ID,
    AGENTMESH_CREWAI_TASK_NAME,
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_HANDOFF_RECEIVED_DIGEST,
    AGENTMESH_RUN_ID,
    ERROR_TYPE,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation import context_digest, with_run_id
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript

pytestmark = pytest.mark.usefixtures("crewai_instrumented")

SpanTree = Callable[[Sequence[ReadableSpan]], list[str]]

RESEARCHER_MODEL = "researcher-model"
WRITER_MODEL = "writer-model"
EDITOR_MODEL = "editor-model"

SCRIPTS = {
    RESEARCHER_MODEL: ModelScript(
        content="Thought: I know this.\nFinal Answer: Otters hold hands."
    ),
    WRITER_MODEL: ModelScript(content="Thought: Writing.\nFinal Answer: An article on otters."),
    EDITOR_MODEL: ModelScript(content="Thought: Editing.\nFinal Answer: Edited."),
}


def _llm(fp: FakeProviderThread, model: str) -> LLM:
    return LLM(model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0)


def _agent(fp: FakeProviderThread, role: str, model: str) -> Agent:
    return Agent(role=role, goal=f"Be a good {role}", backstory="Test agent.", llm=_llm(fp, model))


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, [s.name for s in spans]
    return matches[0]


def test_two_task_crew_span_tree(exporter: InMemorySpanExporter, span_tree: SpanTree) -> None:
    with FakeProviderThread(SCRIPTS) as fp:
        researcher = _agent(fp, "Researcher", RESEARCHER_MODEL)
        writer = _agent(fp, "Writer", WRITER_MODEL)
        research = Task(
            name="research",
            description="Research otters.",
            expected_output="Notes.",
            agent=researcher,
        )
        write = Task(
            name="write",
            description="Write about otters.",
            expected_output="An article.",
            agent=writer,
        )
        crew = Crew(name="otter_crew", agents=[researcher, writer], tasks=[research, write])
        result = crew.kickoff()

    assert result.raw == "An article on otters."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow otter_crew",
        "  invoke_agent Researcher",
        f"    chat {RESEARCHER_MODEL}",
        "  invoke_agent Writer",
        f"    chat {WRITER_MODEL}",
    ]

    workflow = _by_name(spans, "invoke_workflow otter_crew")
    run_id = workflow.attributes[AGENTMESH_RUN_ID]
    assert isinstance(run_id, str)
    assert re.fullmatch(r"[0-9a-f]{32}", run_id)
    assert dict(workflow.attributes) == {
        GEN_AI_OPERATION_NAME: "invoke_workflow",
        GEN_AI_WORKFLOW_NAME: "otter_crew",
        AGENTMESH_FRAMEWORK: "crewai",
        AGENTMESH_RUN_ID: run_id,
    }

    first = _by_name(spans, "invoke_agent Researcher")
    assert dict(first.attributes) == {
        GEN_AI_OPERATION_NAME: "invoke_agent",
        GEN_AI_AGENT_NAME: "Researcher",
        GEN_AI_AGENT_ID: str(researcher.id),
        AGENTMESH_CREWAI_TASK_NAME: "research",
        AGENTMESH_CREWAI_TASK_ID: str(research.id),
        GEN_AI_WORKFLOW_NAME: "otter_crew",
        AGENTMESH_FRAMEWORK: "crewai",
        AGENTMESH_RUN_ID: run_id,
    }
    assert not first.events

    second = _by_name(spans, "invoke_agent Writer")
    assert research.output is not None
    crossed = context_digest(research.output.raw)  # the context the write task starts from
    handoff = {
        GEN_AI_AGENT_HANDOFF_SOURCE_NAME: "Researcher",
        GEN_AI_AGENT_HANDOFF_TARGET_NAME: "Writer",
        AGENTMESH_HANDOFF_KIND: "task_context",
        AGENTMESH_HANDOFF_CONTEXT_DIGEST: crossed.digest,
        AGENTMESH_HANDOFF_CONTEXT_SIZE: crossed.size,
        AGENTMESH_HANDOFF_RECEIVED_DIGEST: crossed.digest,  # arrived whole
    }
    assert dict(second.attributes) == {
        GEN_AI_OPERATION_NAME: "invoke_agent",
        GEN_AI_AGENT_NAME: "Writer",
        GEN_AI_AGENT_ID: str(writer.id),
        AGENTMESH_CREWAI_TASK_NAME: "write",
        AGENTMESH_CREWAI_TASK_ID: str(write.id),
        GEN_AI_WORKFLOW_NAME: "otter_crew",
        AGENTMESH_FRAMEWORK: "crewai",
        AGENTMESH_RUN_ID: run_id,
        **handoff,
    }
    assert [(e.name, dict(e.attributes or {})) for e in second.events] == [(EVENT_HANDOFF, handoff)]
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)


def test_explicit_task_context_hands_off_from_that_task(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread(SCRIPTS) as fp:
        researcher = _agent(fp, "Researcher", RESEARCHER_MODEL)
        writer = _agent(fp, "Writer", WRITER_MODEL)
        editor = _agent(fp, "Editor", EDITOR_MODEL)
        research = Task(description="Research.", expected_output="Notes.", agent=researcher)
        write = Task(description="Write.", expected_output="Text.", agent=writer, context=[])
        edit = Task(description="Edit.", expected_output="Text.", agent=editor, context=[research])
        Crew(agents=[researcher, writer, editor], tasks=[research, write, edit]).kickoff()

    spans = exporter.get_finished_spans()
    write_span = _by_name(spans, "invoke_agent Writer")
    assert AGENTMESH_HANDOFF_KIND not in (write_span.attributes or {})  # context=[]: none
    edit_span = _by_name(spans, "invoke_agent Editor")
    assert research.output is not None
    assert edit_span.attributes is not None
    assert edit_span.attributes[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "Researcher"
    assert edit_span.attributes[AGENTMESH_HANDOFF_KIND] == "task_context"
    expected = context_digest(research.output.raw)
    assert edit_span.attributes[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == expected.digest
    assert _by_name(spans, "invoke_workflow crew").attributes is not None


def test_run_id_from_baggage_is_kept(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread(SCRIPTS) as fp:
        researcher = _agent(fp, "Researcher", RESEARCHER_MODEL)
        crew = Crew(
            agents=[researcher],
            tasks=[Task(description="Research.", expected_output="Notes.", agent=researcher)],
        )
        with attached(with_run_id("run-from-upstream")):
            crew.kickoff()

    spans = exporter.get_finished_spans()
    crew_spans = [s for s in spans if not s.name.startswith("chat")]
    assert len(crew_spans) == 2
    assert all(
        (s.attributes or {}).get(AGENTMESH_RUN_ID) == "run-from-upstream" for s in crew_spans
    )


def test_failing_llm_marks_spans_and_reraises(exporter: InMemorySpanExporter) -> None:
    scripts = {RESEARCHER_MODEL: ModelScript(error=ErrorScript(status=400, message="bad"))}
    with FakeProviderThread(scripts) as fp:
        researcher = Agent(
            role="Researcher",
            goal="g",
            backstory="b",
            llm=_llm(fp, RESEARCHER_MODEL),
            max_retry_limit=0,
        )
        crew = Crew(
            name="failing",
            agents=[researcher],
            tasks=[Task(description="Research.", expected_output="Notes.", agent=researcher)],
        )
        with pytest.raises(Exception, match="bad") as raised:
            crew.kickoff()

    spans = exporter.get_finished_spans()
    workflow = _by_name(spans, "invoke_workflow failing")
    agent = _by_name(spans, "invoke_agent Researcher")
    for span in (workflow, agent):
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})[ERROR_TYPE] == type(raised.value).__name__
    assert agent.parent is not None
    assert workflow.context is not None
    assert agent.parent.span_id == workflow.context.span_id


def test_uninstrument_removes_crew_spans(
    exporter: InMemorySpanExporter, crewai_instrumented: CrewAIInstrumentor
) -> None:
    crewai_instrumented.uninstrument()
    with FakeProviderThread(SCRIPTS) as fp:
        researcher = _agent(fp, "Researcher", RESEARCHER_MODEL)
        Crew(
            agents=[researcher],
            tasks=[Task(description="Research.", expected_output="Notes.", agent=researcher)],
        ).kickoff()
    assert [s.name for s in exporter.get_finished_spans()] == [f"chat {RESEARCHER_MODEL}"]


def test_instrumentation_bug_does_not_break_the_crew(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentmesh.instrumentation.crewai import _agents

    def broken(agent: object) -> str:
        raise RuntimeError("bug in our code")

    monkeypatch.setattr(_agents, "role_of", broken)
    with FakeProviderThread(SCRIPTS) as fp, capture_logs() as logs:
        researcher = _agent(fp, "Researcher", RESEARCHER_MODEL)
        result = Crew(
            name="sturdy",
            agents=[researcher],
            tasks=[Task(description="Research.", expected_output="Notes.", agent=researcher)],
        ).kickoff()

    assert result.raw == "Otters hold hands."
    assert [
        entry["where"] for entry in logs if entry["event"] == "agentmesh.instrumentation_error"
    ] == ["crewai.start_agent"]
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == [f"chat {RESEARCHER_MODEL}", "invoke_workflow sturdy"]
