"""A real crew whose agent uses custom tools: ``execute_tool`` spans under the agent span.

Native function calling (the fake model answers with ``tool_calls``) runs ``BaseTool.run`` /
``Tool.run``; text tool calling (ReAct ``Action:`` lines, used for models without function
calling, such as o1) runs ``CrewStructuredTool.invoke``. Both give one span per execution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from crewai import LLM, Agent, Crew, Task
from crewai.tools import BaseTool, tool
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_RUN_ID,
    AGENTMESH_TOOL_ARGUMENTS_DIGEST,
    AGENTMESH_TOOL_RESULT_DIGEST,
    ERROR_TYPE,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation import current_run_id
from agentmesh.instrumentation.testing import (
    FakeProviderThread,
    ModelScript,
    ScriptedReply,
    ToolCallScript,
)

pytestmark = pytest.mark.usefixtures("crewai_instrumented")

SpanTree = Callable[[Sequence[ReadableSpan]], list[str]]
MODEL = "tool-user"
REACT_MODEL = "o1-react"  # "o1" in the name: CrewAI uses text (ReAct) tool calling


class FailingInput(BaseModel):
    city: str


class FailingWeather(BaseTool):
    name: str = "Weather"
    description: str = "Weather of a city."
    args_schema: type[BaseModel] = FailingInput

    def _run(self, city: str) -> str:
        raise RuntimeError(f"no weather for {city}")


def _crew(fp: FakeProviderThread, model: str, tools: list[BaseTool]) -> tuple[Crew, Agent]:
    agent = Agent(
        role="Researcher",
        goal="Find facts.",
        backstory="Test agent.",
        llm=LLM(model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0),
        tools=tools,
    )
    task = Task(name="lookup", description="Find otters.", expected_output="A fact.", agent=agent)
    return Crew(name="tool_crew", agents=[agent], tasks=[task]), agent


def _calls(*calls: tuple[str, dict[str, object]]) -> ScriptedReply:
    return ScriptedReply(
        tool_calls=tuple(ToolCallScript(name=name, arguments=args) for name, args in calls)
    )


def test_native_tool_call_span_tree(exporter: InMemorySpanExporter, span_tree: SpanTree) -> None:
    seen_run_ids: list[str | None] = []

    @tool("Lookup")
    def lookup(query: str) -> str:
        """Look a fact up."""
        seen_run_ids.append(current_run_id())
        return f"Fact about {query}."

    script = ModelScript(sequence=(_calls(("lookup", {"query": "otters"})), "Otters hold hands."))
    with FakeProviderThread({MODEL: script}) as fp:
        crew, _ = _crew(fp, MODEL, [lookup])
        result = crew.kickoff()

    assert result.raw == "Otters hold hands."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow tool_crew",
        "  invoke_agent Researcher",
        f"    chat {MODEL}",
        "    execute_tool Lookup",
        f"    chat {MODEL}",
    ]
    workflow = next(s for s in spans if s.name == "invoke_workflow tool_crew")
    run_id = (workflow.attributes or {})[AGENTMESH_RUN_ID]
    tool_span = next(s for s in spans if s.name == "execute_tool Lookup")
    tool_attributes = dict(tool_span.attributes or {})
    # Digests of the call and its result: recorded even without content capture.
    assert str(tool_attributes.pop(AGENTMESH_TOOL_ARGUMENTS_DIGEST)).startswith("sha256:")
    assert str(tool_attributes.pop(AGENTMESH_TOOL_RESULT_DIGEST)).startswith("sha256:")
    assert tool_attributes == {
        GEN_AI_OPERATION_NAME: "execute_tool",
        GEN_AI_TOOL_NAME: "Lookup",
        GEN_AI_TOOL_TYPE: "function",
        AGENTMESH_FRAMEWORK: "crewai",
        GEN_AI_WORKFLOW_NAME: "tool_crew",
        AGENTMESH_RUN_ID: run_id,
    }
    assert seen_run_ids == [run_id]  # the run id travels in baggage into the tool


def test_parallel_tool_calls_stay_under_the_agent(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    @tool("Lookup")
    def lookup(query: str) -> str:
        """Look a fact up."""
        return f"Fact about {query}."

    first = _calls(("lookup", {"query": "otters"}), ("lookup", {"query": "beavers"}))
    script = ModelScript(sequence=(first, "Both found."))
    with FakeProviderThread({MODEL: script}) as fp:
        crew, _ = _crew(fp, MODEL, [lookup])
        crew.kickoff()

    assert span_tree(exporter.get_finished_spans()) == [
        "invoke_workflow tool_crew",
        "  invoke_agent Researcher",
        f"    chat {MODEL}",
        "    execute_tool Lookup",
        "    execute_tool Lookup",
        f"    chat {MODEL}",
    ]


def test_failing_tool_is_recorded_and_the_crew_goes_on(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    script = ModelScript(sequence=(_calls(("weather", {"city": "Oslo"})), "No weather today."))
    with FakeProviderThread({MODEL: script}) as fp:
        crew, _ = _crew(fp, MODEL, [FailingWeather()])
        result = crew.kickoff()

    assert result.raw == "No weather today."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow tool_crew",
        "  invoke_agent Researcher",
        f"    chat {MODEL}",
        "    execute_tool Weather",
        f"    chat {MODEL}",
    ]
    tool_span = next(s for s in spans if s.name == "execute_tool Weather")
    assert tool_span.status.status_code is StatusCode.ERROR
    assert (tool_span.attributes or {})[ERROR_TYPE] == "RuntimeError"
    assert [e.name for e in tool_span.events] == ["exception"]
    agent_span = next(s for s in spans if s.name == "invoke_agent Researcher")
    assert agent_span.status.status_code is StatusCode.UNSET  # CrewAI handled the error


def test_react_text_tool_call_gives_one_tool_span(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    calls: list[str] = []

    @tool("Lookup")
    def lookup(query: str) -> str:
        """Look a fact up."""
        calls.append(query)
        return f"Fact about {query}."

    action = 'Thought: I should look.\nAction: Lookup\nAction Input: {"query": "otters"}'
    script = ModelScript(
        sequence=(action, "Thought: I know now.\nFinal Answer: Otters hold hands.")
    )
    with FakeProviderThread({REACT_MODEL: script}) as fp:
        crew, _ = _crew(fp, REACT_MODEL, [lookup])
        result = crew.kickoff()

    assert result.raw == "Otters hold hands."
    assert calls == ["otters"]
    assert span_tree(exporter.get_finished_spans()) == [
        "invoke_workflow tool_crew",
        "  invoke_agent Researcher",
        f"    chat {REACT_MODEL}",
        "    execute_tool Lookup",
        f"    chat {REACT_MODEL}",
    ]
