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
    AGENTMESH_RUN_ID,
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
def test_subgraph_and_nested_invoke_are_nested_workflows_of_one_run(
    exporter: InMemorySpanExporter,
) -> None:
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
    by_id = {s.context.span_id: s for s in spans}
    workflows = sorted(
        (s for s in spans if s.name.startswith("invoke_workflow ")),
        key=lambda s: s.start_time or 0,
    )
    assert [w.name for w in workflows] == [
        "invoke_workflow outer",
        "invoke_workflow inner",
        "invoke_workflow inner",
    ]
    parents = [by_id[w.parent.span_id].name for w in workflows[1:] if w.parent]
    assert parents == ["invoke_agent as_subgraph", "invoke_agent calls_inner"]
    run_ids = {(s.attributes or {})[AGENTMESH_RUN_ID] for s in spans}
    assert len(run_ids) == 1
    inner_steps = [s for s in spans if s.name == "invoke_agent inner_step"]
    assert len(inner_steps) == 2
    for step in inner_steps:
        assert step.parent is not None
        assert by_id[step.parent.span_id].name == "invoke_workflow inner"
        assert (step.attributes or {})[GEN_AI_WORKFLOW_NAME] == "inner"


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
    from langgraph.graph._branch import BranchSpec  # pyright: ignore[reportPrivateUsage]
    from langgraph.pregel import (
        Pregel,
        _runner,  # pyright: ignore[reportPrivateUsage]
    )

    patched = [
        lambda: vars(Pregel)["stream"],
        lambda: vars(Pregel)["astream"],
        lambda: _runner.run_with_retry,
        lambda: _runner.arun_with_retry,
        lambda: vars(BranchSpec)["_finish"],
        lambda: vars(ToolNode)["_run_one"],
        lambda: vars(ToolNode)["_arun_one"],
    ]
    assert all(isinstance(get(), wrapt.FunctionWrapper) for get in patched)
    langgraph_instrumented.uninstrument()

    assert not any(isinstance(get(), wrapt.ObjectProxy) for get in patched)

    assert not isinstance(vars(Pregel)["stream"], wrapt.ObjectProxy)
    assert not isinstance(vars(Pregel)["astream"], wrapt.ObjectProxy)
    assert not isinstance(_runner.run_with_retry, wrapt.ObjectProxy)
    assert not isinstance(_runner.arun_with_retry, wrapt.ObjectProxy)
    assert _inner_graph().invoke({"n": 1}) == {"n": 11}
    assert exporter.get_finished_spans() == ()
