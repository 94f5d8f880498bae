"""Opt-in content capture: what crossed a handoff, tool arguments and results, capped.

Off by default (the other CrewAI tests assert the exact attributes without content); here the
instrumentor is applied with ``capture_content=True``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CONTENT,
    AGENTMESH_HANDOFF_KIND,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
)
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.handoff import canonical_json
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import (
    FakeProviderThread,
    ModelScript,
    ScriptedReply,
    ToolCallScript,
)

LEAD_MODEL = "lead-model"
WRITER_MODEL = "writer-model"
BLOB = base64.b64encode(bytes(range(256)) * 8).decode()  # 2,732 base64 characters


@pytest.fixture
def capturing(
    openai_instrumented: OpenAIInstrumentor, tracer_provider: TracerProvider
) -> Iterator[CrewAIInstrumentor]:
    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_content=True)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.mark.usefixtures("capturing")
def test_content_of_delegation_tools_and_task_context(exporter: InMemorySpanExporter) -> None:
    @tool("Lookup")
    def lookup(query: str) -> str:
        """Look a fact up."""
        return f"Fact about {query}."

    delegate = ToolCallScript(
        name="delegate_work_to_coworker",
        arguments={"task": "Write.", "context": BLOB, "coworker": "Writer"},
    )
    scripts = {
        LEAD_MODEL: ModelScript(
            sequence=(
                ScriptedReply(
                    tool_calls=(ToolCallScript(name="lookup", arguments={"query": "x"}),)
                ),
                ScriptedReply(tool_calls=(delegate,)),
                "Lead done.",
            )
        ),
        WRITER_MODEL: ModelScript(content="Thought: ok.\nFinal Answer: Written."),
    }
    with FakeProviderThread(scripts) as fp:

        def llm(model: str) -> LLM:
            return LLM(
                model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0
            )

        lead = Agent(
            role="Lead",
            goal="g",
            backstory="b",
            llm=llm(LEAD_MODEL),
            tools=[lookup],
            allow_delegation=True,
        )
        writer = Agent(role="Writer", goal="g", backstory="b", llm=llm(WRITER_MODEL))
        Crew(
            agents=[lead, writer],
            tasks=[
                Task(description="Lead.", expected_output="Done.", agent=lead),
                Task(description="Write.", expected_output="Text.", agent=writer),
            ],
        ).kickoff()

    spans = exporter.get_finished_spans()
    lookup_span = next(s for s in spans if s.name == "execute_tool Lookup")
    assert (lookup_span.attributes or {})[GEN_AI_TOOL_CALL_ARGUMENTS] == '{"query":"x"}'
    assert (lookup_span.attributes or {})[GEN_AI_TOOL_CALL_RESULT] == '"Fact about x."'

    writers = [s for s in spans if s.name == "invoke_agent Writer"]
    assert len(writers) == 2  # delegated once, then the Writer's own task
    by_kind = {(s.attributes or {})[AGENTMESH_HANDOFF_KIND]: s for s in writers}
    delegated = by_kind["delegation"]
    content = (delegated.attributes or {})[AGENTMESH_HANDOFF_CONTENT]
    assert isinstance(content, str)
    assert BLOB not in content  # the base64 blob is replaced by a placeholder
    assert content == canonical_json({"context": "[blob: 2048 bytes]", "task": "Write."})
    assert (by_kind["task_context"].attributes or {})[AGENTMESH_HANDOFF_CONTENT] == (
        canonical_json("Lead done.")
    )
