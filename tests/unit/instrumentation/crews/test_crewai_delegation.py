"""Real crews whose agents delegate: the coworker's agent span carries a ``delegation`` handoff.

The delegating agent's model answers with a native ``delegate_work_to_coworker`` (or
``ask_question_to_coworker``) tool call; CrewAI runs the coworker inside that tool, so the
coworker's ``invoke_agent`` span nests under ``execute_tool Delegate work to coworker``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from crewai import LLM, Agent, Crew, Process, Task
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_CREWAI_TASK_NAME,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_HANDOFF_RECEIVED_DIGEST,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
    GEN_AI_AGENT_NAME,
)
from agentmesh.instrumentation import context_digest
from agentmesh.instrumentation.testing import (
    FakeProviderThread,
    ModelScript,
    ScriptedReply,
    ToolCallScript,
)

pytestmark = pytest.mark.usefixtures("crewai_instrumented")

SpanTree = Callable[[Sequence[ReadableSpan]], list[str]]
LEAD_MODEL = "lead-model"
WRITER_MODEL = "writer-model"
MANAGER_MODEL = "manager-model"

WRITER = ModelScript(content="Thought: Writing.\nFinal Answer: A poem about otters.")


def _llm(fp: FakeProviderThread, model: str) -> LLM:
    return LLM(model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0)


def _delegating(tool_name: str, arguments: dict[str, object], final: str) -> ModelScript:
    call = ToolCallScript(name=tool_name, arguments=arguments)
    return ModelScript(sequence=(ScriptedReply(tool_calls=(call,)), final))


def _span(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, [s.name for s in spans]
    return matches[0]


def _handoff(source: str, target: str, task: str, context: str) -> dict[str, object]:
    crossed = context_digest({"task": task, "context": context})
    return {
        GEN_AI_AGENT_HANDOFF_SOURCE_NAME: source,
        GEN_AI_AGENT_HANDOFF_TARGET_NAME: target,
        AGENTMESH_HANDOFF_KIND: "delegation",
        AGENTMESH_HANDOFF_CONTEXT_DIGEST: crossed.digest,
        AGENTMESH_HANDOFF_CONTEXT_SIZE: crossed.size,
        AGENTMESH_HANDOFF_RECEIVED_DIGEST: crossed.digest,  # arrived whole
    }


def test_delegate_work_span_tree(exporter: InMemorySpanExporter, span_tree: SpanTree) -> None:
    arguments = {"task": "Write a poem.", "context": "About otters.", "coworker": "Writer"}
    scripts = {
        LEAD_MODEL: _delegating("delegate_work_to_coworker", arguments, "The poem is done."),
        WRITER_MODEL: WRITER,
    }
    with FakeProviderThread(scripts) as fp:
        lead = Agent(
            role="Lead",
            goal="Lead.",
            backstory="b",
            llm=_llm(fp, LEAD_MODEL),
            allow_delegation=True,
        )
        writer = Agent(role="Writer", goal="Write.", backstory="b", llm=_llm(fp, WRITER_MODEL))
        task = Task(name="poem", description="Get a poem.", expected_output="A poem.", agent=lead)
        result = Crew(name="poets", agents=[lead, writer], tasks=[task]).kickoff()

    assert result.raw == "The poem is done."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow poets",
        "  invoke_agent Lead",
        f"    chat {LEAD_MODEL}",
        "    execute_tool Delegate work to coworker",
        "      invoke_agent Writer",
        f"        chat {WRITER_MODEL}",
        f"    chat {LEAD_MODEL}",
    ]
    delegated = _span(spans, "invoke_agent Writer")
    expected = _handoff("Lead", "Writer", "Write a poem.", "About otters.")
    attributes = dict(delegated.attributes or {})
    assert {key: attributes.get(key) for key in expected} == expected
    assert AGENTMESH_CREWAI_TASK_NAME not in attributes  # the task CrewAI made has no name
    assert [(e.name, dict(e.attributes or {})) for e in delegated.events] == [
        (EVENT_HANDOFF, expected)
    ]
    lead_span = _span(spans, "invoke_agent Lead")
    assert AGENTMESH_HANDOFF_KIND not in (lead_span.attributes or {})


def test_ask_question_is_a_delegation_too(exporter: InMemorySpanExporter) -> None:
    arguments = {"question": "Which animal?", "context": "A poem.", "coworker": "Writer"}
    scripts = {
        LEAD_MODEL: _delegating("ask_question_to_coworker", arguments, "Otters, then."),
        WRITER_MODEL: WRITER,
    }
    with FakeProviderThread(scripts) as fp:
        lead = Agent(
            role="Lead",
            goal="Lead.",
            backstory="b",
            llm=_llm(fp, LEAD_MODEL),
            allow_delegation=True,
        )
        writer = Agent(role="Writer", goal="Write.", backstory="b", llm=_llm(fp, WRITER_MODEL))
        task = Task(description="Decide.", expected_output="An animal.", agent=lead)
        Crew(agents=[lead, writer], tasks=[task]).kickoff()

    spans = exporter.get_finished_spans()
    asked = _span(spans, "invoke_agent Writer")
    tool_span = _span(spans, "execute_tool Ask question to coworker")
    assert asked.parent is not None
    assert tool_span.context is not None
    assert asked.parent.span_id == tool_span.context.span_id
    expected = _handoff("Lead", "Writer", "Which animal?", "A poem.")
    attributes = dict(asked.attributes or {})
    assert {key: attributes.get(key) for key in expected} == expected


def test_hierarchical_manager_delegates(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    arguments = {"task": "Write a poem.", "context": "About otters.", "coworker": "Writer"}
    scripts = {
        MANAGER_MODEL: _delegating("delegate_work_to_coworker", arguments, "Delivered."),
        WRITER_MODEL: WRITER,
    }
    with FakeProviderThread(scripts) as fp:
        writer = Agent(role="Writer", goal="Write.", backstory="b", llm=_llm(fp, WRITER_MODEL))
        task = Task(name="poem", description="Get a poem.", expected_output="A poem.")
        crew = Crew(
            name="managed",
            agents=[writer],
            tasks=[task],
            process=Process.hierarchical,
            manager_llm=_llm(fp, MANAGER_MODEL),
        )
        result = crew.kickoff()

    assert result.raw == "Delivered."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow managed",
        "  invoke_agent Crew Manager",
        f"    chat {MANAGER_MODEL}",
        "    execute_tool Delegate work to coworker",
        "      invoke_agent Writer",
        f"        chat {WRITER_MODEL}",
        f"    chat {MANAGER_MODEL}",
    ]
    manager = _span(spans, "invoke_agent Crew Manager")
    assert (manager.attributes or {})[AGENTMESH_CREWAI_TASK_NAME] == "poem"
    delegated = _span(spans, "invoke_agent Writer")
    assert (delegated.attributes or {})[GEN_AI_AGENT_NAME] == "Writer"
    expected = _handoff("Crew Manager", "Writer", "Write a poem.", "About otters.")
    attributes = dict(delegated.attributes or {})
    assert {key: attributes.get(key) for key in expected} == expected
