"""Agents without a crew (``Agent.kickoff`` / ``kickoff_async``): an ``invoke_agent`` span.

The agent's LLM calls go through CrewAI's native OpenAI provider (the real OpenAI SDK) to the
fake provider and its tools run natively; both nest under the agent's span. CrewAI runs a
standalone agent with its own ``AgentExecutor``, itself a flow: that machinery adds no spans.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pytest
from crewai import LLM, Agent
from crewai.flow.flow import Flow, start
from crewai.tools import tool
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from structlog.testing import capture_logs

from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_RUN_ID,
    AGENTMESH_TOOL_ARGUMENTS_DIGEST,
    AGENTMESH_TOOL_RESULT_DIGEST,
    ERROR_TYPE,
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation import current_run_id, with_run_id
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation.testing import (
    ErrorScript,
    FakeProviderThread,
    ModelScript,
    ScriptedReply,
    ToolCallScript,
)

pytestmark = pytest.mark.usefixtures("crewai_instrumented")

SpanTree = Callable[[Sequence[ReadableSpan]], list[str]]
MODEL = "solo-model"
ANSWER = "Thought: Known.\nFinal Answer: Otters hold hands."


def _agent(fp: FakeProviderThread, **extra: object) -> Agent:
    llm = LLM(model=f"openai/{MODEL}", base_url=fp.openai_base_url, api_key="x", max_retries=0)
    return Agent(role="Solo  Researcher", goal="Find facts.", backstory="Test.", llm=llm, **extra)


def _one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, [s.name for s in spans]
    return matches[0]


def test_kickoff_span_with_tool_and_llm_children(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    seen_run_ids: list[str | None] = []

    @tool("Lookup")
    def lookup(query: str) -> str:
        """Look a fact up."""
        seen_run_ids.append(current_run_id())
        return f"Fact about {query}."

    call = ScriptedReply(tool_calls=(ToolCallScript(name="lookup", arguments={"query": "otters"}),))
    with FakeProviderThread({MODEL: ModelScript(sequence=(call, "Otters hold hands."))}) as fp:
        agent = _agent(fp, tools=[lookup])
        output = agent.kickoff("Tell me about otters.")

    assert output.raw == "Otters hold hands."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_agent Solo Researcher",
        f"  chat {MODEL}",
        "  execute_tool Lookup",
        f"  chat {MODEL}",
    ]
    span = _one(spans, "invoke_agent Solo Researcher")
    run_id = (span.attributes or {})[AGENTMESH_RUN_ID]
    assert isinstance(run_id, str)
    assert re.fullmatch(r"[0-9a-f]{32}", run_id)  # outside any run: a run of its own
    assert dict(span.attributes or {}) == {
        GEN_AI_OPERATION_NAME: "invoke_agent",
        GEN_AI_AGENT_NAME: "Solo Researcher",
        GEN_AI_AGENT_ID: str(agent.id),
        AGENTMESH_FRAMEWORK: "crewai",
        AGENTMESH_RUN_ID: run_id,
    }
    assert not span.events
    tool_attributes = dict(_one(spans, "execute_tool Lookup").attributes or {})
    # Digests of the call and its result: recorded even without content capture.
    assert str(tool_attributes.pop(AGENTMESH_TOOL_ARGUMENTS_DIGEST)).startswith("sha256:")
    assert str(tool_attributes.pop(AGENTMESH_TOOL_RESULT_DIGEST)).startswith("sha256:")
    assert tool_attributes == {
        GEN_AI_OPERATION_NAME: "execute_tool",
        GEN_AI_TOOL_NAME: "Lookup",
        GEN_AI_TOOL_TYPE: "function",
        AGENTMESH_FRAMEWORK: "crewai",
        AGENTMESH_RUN_ID: run_id,
    }
    assert {(s.attributes or {})[AGENTMESH_RUN_ID] for s in spans} == {run_id}
    assert seen_run_ids == [run_id]


async def test_kickoff_async_is_one_span(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    with FakeProviderThread({MODEL: ModelScript(content=ANSWER)}) as fp:
        agent = _agent(fp)
        first = await agent.kickoff_async("Tell me about otters.")
        second = await agent.akickoff("Again.")  # akickoff goes through kickoff_async

    assert first.raw == second.raw == "Otters hold hands."
    assert span_tree(exporter.get_finished_spans()) == [
        "invoke_agent Solo Researcher",
        f"  chat {MODEL}",
        "invoke_agent Solo Researcher",
        f"  chat {MODEL}",
    ]


def test_kickoff_keeps_the_run_id_from_baggage(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread({MODEL: ModelScript(content=ANSWER)}) as fp:
        agent = _agent(fp)
        with attached(with_run_id("run-from-upstream")):
            agent.kickoff("Tell me about otters.")

    spans = exporter.get_finished_spans()
    assert {(s.attributes or {})[AGENTMESH_RUN_ID] for s in spans} == {"run-from-upstream"}


def test_kickoff_returning_a_coroutine_inside_a_flow(
    exporter: InMemorySpanExporter, span_tree: SpanTree
) -> None:
    """In a running loop CrewAI's ``kickoff`` returns a coroutine the flow awaits."""
    with FakeProviderThread({MODEL: ModelScript(content=ANSWER)}) as fp:
        agent = _agent(fp)

        class AskFlow(Flow[dict[str, object]]):
            @start()
            async def ask(self) -> object:
                return agent.kickoff("Tell me about otters.")  # awaited by the flow

        output = AskFlow().kickoff()

    assert getattr(output, "raw", None) == "Otters hold hands."
    spans = exporter.get_finished_spans()
    assert span_tree(spans) == [
        "invoke_workflow AskFlow",
        "  invoke_node ask",
        "    invoke_agent Solo Researcher",
        f"      chat {MODEL}",
    ]
    span = _one(spans, "invoke_agent Solo Researcher")
    assert (span.attributes or {})[GEN_AI_WORKFLOW_NAME] == "AskFlow"


def test_failing_llm_marks_the_agent_span_and_reraises(exporter: InMemorySpanExporter) -> None:
    scripts = {MODEL: ModelScript(error=ErrorScript(status=400, message="bad request"))}
    with FakeProviderThread(scripts) as fp:
        agent = _agent(fp, max_retry_limit=0)
        with pytest.raises(Exception, match="bad request") as raised:
            agent.kickoff("Tell me about otters.")

    span = _one(exporter.get_finished_spans(), "invoke_agent Solo Researcher")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == type(raised.value).__name__


def test_instrumentation_bug_does_not_break_the_kickoff(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentmesh.instrumentation.crewai import _kickoff

    def broken(agent: object) -> str:
        raise RuntimeError("bug in our code")

    monkeypatch.setattr(_kickoff, "role_of", broken)
    with FakeProviderThread({MODEL: ModelScript(content=ANSWER)}) as fp, capture_logs() as logs:
        output = _agent(fp).kickoff("Tell me about otters.")

    assert output.raw == "Otters hold hands."
    assert [e["where"] for e in logs if e["event"] == "agentmesh.instrumentation_error"] == [
        "crewai.start_kickoff"
    ]
    assert [s.name for s in exporter.get_finished_spans()] == [f"chat {MODEL}"]
