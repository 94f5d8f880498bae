"""Tool calls through ``ToolNode``: one ``execute_tool {tool}`` span per call, in parallel.

The agent asks the real OpenAI SDK (fake provider scripted to call two tools at once), turns
the reply's tool calls into an ``AIMessage`` and routes to a ``ToolNode`` (``tools_condition``);
the ``ToolNode`` runs both calls in LangGraph's thread pool (or as asyncio tasks); the agent
then answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, TypedDict

import openai
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_CONTENT_TRUNCATED,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_LANGGRAPH_INTERRUPTED,
    AGENTMESH_RUN_PAUSED,
    ERROR_TYPE,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_ID,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
from agentmesh.instrumentation.testing import (
    FakeProviderThread,
    ModelScript,
    ScriptedReply,
    ToolCallScript,
)

pytestmark = pytest.mark.usefixtures("langgraph_instrumented")

MODEL = "gpt-4o-mini"


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city."""
    return f"Sunny in {city}."


@tool
def get_time(city: str) -> str:
    """Return the local time of a city."""
    if city == "Atlantis":
        raise ValueError("no such city")
    return f"12:00 in {city}."


@pytest.fixture
def provider() -> Iterator[FakeProviderThread]:
    calls = ScriptedReply(
        tool_calls=(
            ToolCallScript(name="get_weather", arguments={"city": "Paris"}, id="call_w"),
            ToolCallScript(name="get_time", arguments={"city": "Atlantis"}, id="call_t"),
        )
    )
    with FakeProviderThread({MODEL: ModelScript(sequence=(calls, "All done."))}) as fp:
        yield fp


def _to_message(reply: openai.types.chat.ChatCompletion) -> AIMessage:
    message = reply.choices[0].message
    calls = [
        {"name": c.function.name, "args": json.loads(c.function.arguments), "id": c.id}
        for c in message.tool_calls or []
        if c.type == "function"
    ]
    return AIMessage(content=message.content or "", tool_calls=calls)


def _graph(
    fp: FakeProviderThread, *, use_async: bool, handle_errors: bool = True
) -> CompiledStateGraph:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)

    def agent(state: Chat) -> Chat:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "weather and time?"}]
        )
        return {"messages": [_to_message(reply)]}

    async def aagent(state: Chat) -> Chat:
        reply = await aclient.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "weather and time?"}]
        )
        return {"messages": [_to_message(reply)]}

    graph = StateGraph(Chat)
    graph.add_node("agent", aagent if use_async else agent)
    graph.add_node("tools", ToolNode([get_weather, get_time], handle_tool_errors=handle_errors))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(name="assistant")


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _check(exporter: InMemorySpanExporter, result: Chat) -> dict[str, ReadableSpan]:
    tool_messages = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.status for m in tool_messages] == ["success", "error"]
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    names = {s.context.span_id: s.name for s in spans}
    tree = sorted((s.name, names.get(s.parent.span_id) if s.parent else None) for s in spans)
    assert tree == sorted(
        [
            ("invoke_workflow assistant", None),
            ("invoke_agent agent", "invoke_workflow assistant"),
            (f"chat {MODEL}", "invoke_agent agent"),
            ("execute_tool tools", "invoke_workflow assistant"),
            ("execute_tool get_weather", "execute_tool tools"),
            ("execute_tool get_time", "execute_tool tools"),
            ("invoke_agent agent", "invoke_workflow assistant"),
            (f"chat {MODEL}", "invoke_agent agent"),
        ]
    )
    calls = {s.name.removeprefix("execute_tool "): s for s in spans if s.name.count(" ") == 1}
    weather, clock = calls["get_weather"], calls["get_time"]
    for span, name, call_id in ((weather, "get_weather", "call_w"), (clock, "get_time", "call_t")):
        attrs = _attrs(span)
        assert attrs[GEN_AI_OPERATION_NAME] == "execute_tool"
        assert attrs[GEN_AI_TOOL_NAME] == name
        assert attrs[GEN_AI_TOOL_CALL_ID] == call_id
        assert attrs[GEN_AI_TOOL_TYPE] == "function"
        assert attrs[GEN_AI_WORKFLOW_NAME] == "assistant"
    assert weather.status.status_code is StatusCode.UNSET
    assert clock.status.status_code is StatusCode.ERROR  # ToolNode turned it into a message
    assert _attrs(clock)[ERROR_TYPE] == "_OTHER"
    # agent → tools → agent: the agent continues its own work, which is no handoff
    agents = [s for s in spans if s.name == "invoke_agent agent"]
    assert all(GEN_AI_AGENT_HANDOFF_SOURCE_NAME not in _attrs(a) for a in agents)
    return calls


def test_tool_node_gets_one_span_per_call(
    provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    result = _graph(provider, use_async=False).invoke({"messages": [HumanMessage("hi")]})

    calls = _check(exporter, result)
    for span in calls.values():  # content capture is off
        assert GEN_AI_TOOL_CALL_ARGUMENTS not in _attrs(span)
        assert GEN_AI_TOOL_CALL_RESULT not in _attrs(span)


async def test_async_tool_node_gets_one_span_per_call(
    provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    result = await _graph(provider, use_async=True).ainvoke({"messages": [HumanMessage("hi")]})

    _check(exporter, result)


def test_tool_arguments_and_results_are_captured_when_asked(
    provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    langgraph_instrumented: LangGraphInstrumentor,
    tracer_provider: TracerProvider,
) -> None:
    langgraph_instrumented.uninstrument()
    langgraph_instrumented.instrument(tracer_provider=tracer_provider, capture_content=True)

    result = _graph(provider, use_async=False).invoke({"messages": [HumanMessage("hi")]})

    calls = _check(exporter, result)
    weather = _attrs(calls["get_weather"])
    assert weather[GEN_AI_TOOL_CALL_ARGUMENTS] == '{"city":"Paris"}'
    assert weather[GEN_AI_TOOL_CALL_RESULT] == "Sunny in Paris."
    assert AGENTMESH_CONTENT_TRUNCATED not in weather
    assert "no such city" in str(_attrs(calls["get_time"])[GEN_AI_TOOL_CALL_RESULT])


def test_a_tool_node_between_two_agents_keeps_the_calling_agent_as_source(
    exporter: InMemorySpanExporter,
) -> None:
    def caller(state: Chat) -> Chat:
        call = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_1"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    def reporter(state: Chat) -> Chat:
        return {"messages": [AIMessage(content="reported")]}

    graph = StateGraph(Chat)
    graph.add_node("caller", caller)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_node("reporter", reporter)
    graph.add_edge(START, "caller")
    graph.add_edge("caller", "tools")
    graph.add_edge("tools", "reporter")
    graph.compile(name="relay").invoke({"messages": []})

    (span,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent reporter"]
    assert _attrs(span)[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "caller"
    assert _attrs(span)[AGENTMESH_HANDOFF_KIND] == "edge"


def test_a_tool_error_the_node_does_not_handle_is_recorded_and_reraised(
    provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(ValueError, match="no such city"):
        _graph(provider, use_async=False, handle_errors=False).invoke(
            {"messages": [HumanMessage("hi")]}
        )

    spans = {s.name: s for s in exporter.get_finished_spans()}
    for name in ("execute_tool get_time", "execute_tool tools", "invoke_workflow assistant"):
        assert spans[name].status.status_code is StatusCode.ERROR, name
        assert _attrs(spans[name])[ERROR_TYPE] == "ValueError", name
    assert spans["execute_tool get_weather"].status.status_code is StatusCode.UNSET


def test_a_tool_that_interrupts_is_not_an_error(exporter: InMemorySpanExporter) -> None:
    @tool
    def ask_human(question: str) -> str:
        """Ask a person."""
        return str(interrupt(question))

    def caller(state: Chat) -> Chat:
        call = {"name": "ask_human", "args": {"question": "go?"}, "id": "call_h"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    graph = StateGraph(Chat)
    graph.add_node("caller", caller)
    graph.add_node("tools", ToolNode([ask_human]))
    graph.add_edge(START, "caller")
    graph.add_edge("caller", "tools")
    app = graph.compile(name="asker", checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t-tool"}}

    app.invoke({"messages": []}, config)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    for name in ("execute_tool ask_human", "execute_tool tools", "invoke_workflow asker"):
        assert _attrs(spans[name])[AGENTMESH_LANGGRAPH_INTERRUPTED] is True, name
        assert spans[name].status.status_code is StatusCode.UNSET, name
    assert _attrs(spans["invoke_workflow asker"])[AGENTMESH_RUN_PAUSED] is True  # the run only
    assert AGENTMESH_RUN_PAUSED not in _attrs(spans["execute_tool ask_human"])
    exporter.clear()

    result = app.invoke(Command(resume="yes"), config)
    assert result["messages"][-1].content == "yes"
    (call,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool ask_human"]
    assert AGENTMESH_LANGGRAPH_INTERRUPTED not in _attrs(call)
    assert _attrs(call)[GEN_AI_TOOL_CALL_ID] == "call_h"
