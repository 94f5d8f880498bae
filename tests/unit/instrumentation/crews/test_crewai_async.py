"""Async and streaming kickoffs: same span tree, context kept across threads and tasks.

``kickoff_async`` runs ``kickoff`` in a thread; ``akickoff`` runs natively on the event loop
(``Agent.aexecute_task``, ``AsyncOpenAI``); ``stream=True`` runs the crew in a thread of its
own. Two crews kicked off concurrently stay in two separate traces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from crewai import LLM, Agent, Crew, Task
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_RUN_ID,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
)
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

pytestmark = pytest.mark.usefixtures("crewai_instrumented")

SpanTree = Callable[[Sequence[ReadableSpan]], list[str]]
RESEARCHER_MODEL = "researcher-model"
WRITER_MODEL = "writer-model"
SCRIPTS = {
    RESEARCHER_MODEL: ModelScript(content="Thought: Known.\nFinal Answer: Otters hold hands."),
    WRITER_MODEL: ModelScript(content="Thought: Writing.\nFinal Answer: An article."),
}
EXPECTED_TREE = [
    "invoke_workflow async_crew",
    "  invoke_agent Researcher",
    f"    chat {RESEARCHER_MODEL}",
    "  invoke_agent Writer",
    f"    chat {WRITER_MODEL}",
]


def _crew(fp: FakeProviderThread, name: str = "async_crew", *, stream: bool = False) -> Crew:
    def llm(model: str) -> LLM:
        return LLM(model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0)

    researcher = Agent(role="Researcher", goal="g", backstory="b", llm=llm(RESEARCHER_MODEL))
    writer = Agent(role="Writer", goal="g", backstory="b", llm=llm(WRITER_MODEL))
    return Crew(
        name=name,
        agents=[researcher, writer],
        tasks=[
            Task(description="Research.", expected_output="Notes.", agent=researcher),
            Task(description="Write.", expected_output="Text.", agent=writer),
        ],
        stream=stream,
    )


def _assert_handoff(spans: Sequence[ReadableSpan]) -> None:
    writer = next(s for s in spans if s.name == "invoke_agent Writer")
    assert (writer.attributes or {})[AGENTMESH_HANDOFF_KIND] == "task_context"


async def test_kickoff_async(exporter: InMemorySpanExporter, span_tree: SpanTree) -> None:
    with FakeProviderThread(SCRIPTS) as fp:
        result = await _crew(fp).kickoff_async()
    assert result.raw == "An article."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == EXPECTED_TREE
    _assert_handoff(spans)


async def test_native_akickoff(exporter: InMemorySpanExporter, span_tree: SpanTree) -> None:
    with FakeProviderThread(SCRIPTS) as fp:
        result = await _crew(fp).akickoff()
    assert result.raw == "An article."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == EXPECTED_TREE
    _assert_handoff(spans)


async def test_concurrent_crews_stay_apart(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread(SCRIPTS) as fp:
        await asyncio.gather(_crew(fp, "crew_a").akickoff(), _crew(fp, "crew_b").akickoff())

    spans = exporter.get_finished_spans()
    workflows = [s for s in spans if s.name.startswith("invoke_workflow")]
    assert sorted(s.name for s in workflows) == ["invoke_workflow crew_a", "invoke_workflow crew_b"]
    for workflow in workflows:
        assert workflow.context is not None
        trace_id = workflow.context.trace_id
        members = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
        assert len(members) == 5  # workflow, two agents, two chats
        run_id = (workflow.attributes or {})[AGENTMESH_RUN_ID]
        crew_spans = [s for s in members if not s.name.startswith("chat")]
        assert {(s.attributes or {})[AGENTMESH_RUN_ID] for s in crew_spans} == {run_id}


def test_streaming_kickoff_has_one_workflow_span(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    with FakeProviderThread(SCRIPTS) as fp:
        streaming = _crew(fp, stream=True).kickoff()
        chunks = list(streaming)
    assert chunks
    assert streaming.result.raw == "An article."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == EXPECTED_TREE


def test_async_execution_tasks_in_threads_stay_in_the_workflow(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    scripts = {
        **SCRIPTS,
        "editor-model": ModelScript(content="Thought: Editing.\nFinal Answer: Edited."),
    }
    with FakeProviderThread(scripts) as fp:

        def llm(model: str) -> LLM:
            return LLM(
                model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0
            )

        researcher = Agent(role="Researcher", goal="g", backstory="b", llm=llm(RESEARCHER_MODEL))
        writer = Agent(role="Writer", goal="g", backstory="b", llm=llm(WRITER_MODEL))
        editor = Agent(role="Editor", goal="g", backstory="b", llm=llm("editor-model"))
        tasks = [
            Task(
                description="Research.",
                expected_output="N.",
                agent=researcher,
                async_execution=True,
            ),
            Task(description="Write.", expected_output="T.", agent=writer, async_execution=True),
            Task(description="Edit.", expected_output="E.", agent=editor),
        ]
        Crew(name="parallel", agents=[researcher, writer, editor], tasks=tasks).kickoff()

    spans = exporter.get_finished_spans()
    tree = span_tree(spans)
    assert tree[0] == "invoke_workflow parallel"
    # The two async tasks ran in threads of their own; their order is not fixed.
    agents = sorted(line for line in tree if line.startswith("  invoke_agent"))
    assert agents == ["  invoke_agent Editor", "  invoke_agent Researcher", "  invoke_agent Writer"]
    assert len([line for line in tree if line.startswith("    chat ")]) == 3
    assert tree[-2:] == ["  invoke_agent Editor", "    chat editor-model"]
    editor_span = next(s for s in spans if s.name == "invoke_agent Editor")
    attributes = editor_span.attributes or {}
    assert attributes[AGENTMESH_HANDOFF_KIND] == "task_context"
    # The context aggregates both outputs; its latest task in crew order is the Writer's.
    assert attributes[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "Writer"
