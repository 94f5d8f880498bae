"""LangGraph edge cases: subgraphs, tool nodes, failing nodes, uninstrumenting."""

from __future__ import annotations

from typing import Annotated, TypedDict

import pytest
import wrapt
from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_LANGGRAPH_NODE,
    ERROR_TYPE,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor


class Counter(TypedDict):
    n: int


def _inner_graph():
    inner = StateGraph(Counter)
    inner.add_node("inner_step", lambda s: {"n": s["n"] + 10})
    inner.set_entry_point("inner_step")
    inner.add_edge("inner_step", END)
    return inner.compile(name="inner")


@pytest.mark.usefixtures("langgraph_instrumented")
def test_subgraph_and_nested_invoke_stay_in_one_workflow(exporter: InMemorySpanExporter) -> None:
    inner = _inner_graph()

    def calls_inner(state: Counter) -> Counter:
        return {"n": inner.invoke({"n": state["n"]})["n"]}

    outer = StateGraph(Counter)
    outer.add_node("as_subgraph", inner)
    outer.add_node("calls_inner", calls_inner)
    outer.set_entry_point("as_subgraph")
    outer.add_edge("as_subgraph", "calls_inner")
    outer.add_edge("calls_inner", END)

    assert outer.compile(name="outer").invoke({"n": 1}) == {"n": 21}

    spans = exporter.get_finished_spans()
    workflows = [s for s in spans if s.name.startswith("invoke_workflow ")]
    assert [w.name for w in workflows] == ["invoke_workflow outer"]
    inner_steps = [s for s in spans if s.name == "invoke_agent inner_step"]
    assert len(inner_steps) == 2
    by_id = {s.context.span_id: s for s in spans}
    for step in inner_steps:
        assert step.parent is not None
        parent = by_id[step.parent.span_id]
        assert parent.name in {"invoke_agent as_subgraph", "invoke_agent calls_inner"}
        assert (step.attributes or {})[GEN_AI_WORKFLOW_NAME] == "outer"


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city."""
    return f"Sunny in {city}."


@pytest.mark.usefixtures("langgraph_instrumented")
def test_tool_node_gets_an_execute_tool_span(exporter: InMemorySpanExporter) -> None:
    def agent(state: Chat) -> Chat:
        call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    graph = StateGraph(Chat)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.set_entry_point("agent")
    graph.add_edge("agent", "tools")
    graph.add_edge("tools", END)

    result = graph.compile(name="tooling").invoke({"messages": []})

    assert isinstance(result["messages"][-1], ToolMessage)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    tool_span = spans["execute_tool tools"]
    attrs = dict(tool_span.attributes or {})
    assert attrs[GEN_AI_OPERATION_NAME] == "execute_tool"
    assert attrs[AGENTMESH_LANGGRAPH_NODE] == "tools"
    assert GEN_AI_AGENT_HANDOFF_SOURCE_NAME not in attrs
    assert "invoke_agent agent" in spans


@pytest.mark.usefixtures("langgraph_instrumented")
def test_failing_node_is_recorded_and_the_error_reraised(exporter: InMemorySpanExporter) -> None:
    class NodeFailureError(Exception):
        pass

    def broken(state: Counter) -> Counter:
        raise NodeFailureError("no")

    graph = StateGraph(Counter)
    graph.add_node("broken", broken)
    graph.set_entry_point("broken")
    graph.add_edge("broken", END)

    with pytest.raises(NodeFailureError, match="no"):
        graph.compile(name="fails").invoke({"n": 0})

    spans = {s.name: s for s in exporter.get_finished_spans()}
    for name in ("invoke_agent broken", "invoke_workflow fails"):
        assert spans[name].status.status_code is StatusCode.ERROR
        assert (spans[name].attributes or {})[ERROR_TYPE] == "NodeFailureError"


def test_uninstrument_removes_every_patch(
    langgraph_instrumented: LangGraphInstrumentor, exporter: InMemorySpanExporter
) -> None:
    from langgraph.pregel import (
        Pregel,
        _runner,  # pyright: ignore[reportPrivateUsage]
    )

    assert isinstance(vars(Pregel)["stream"], wrapt.FunctionWrapper)
    assert isinstance(_runner.run_with_retry, wrapt.FunctionWrapper)
    langgraph_instrumented.uninstrument()

    assert not isinstance(vars(Pregel)["stream"], wrapt.ObjectProxy)
    assert not isinstance(vars(Pregel)["astream"], wrapt.ObjectProxy)
    assert not isinstance(_runner.run_with_retry, wrapt.ObjectProxy)
    assert not isinstance(_runner.arun_with_retry, wrapt.ObjectProxy)
    assert _inner_graph().invoke({"n": 1}) == {"n": 11}
    assert exporter.get_finished_spans() == ()
