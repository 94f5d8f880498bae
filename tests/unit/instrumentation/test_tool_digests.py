"""Tool-call digests on LangGraph ``execute_tool`` spans, with content capture off and on.

A real graph: a node asks for three tool calls (two with the same arguments in another key
order), a ``ToolNode`` runs them. The spans carry ``agentmesh.tool.call.arguments.digest`` and
``agentmesh.tool.call.result.digest`` whatever the capture setting; equal calls get equal
digests, different ones different digests. The digest helper itself stays canonical and bounded
on large values.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_TOOL_ARGUMENTS_DIGEST,
    AGENTMESH_TOOL_RESULT_DIGEST,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_ID,
)
from agentmesh.instrumentation.handoff import bounded_digest, context_digest
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def lookup(query: str, limit: int) -> str:
    """Look something up."""
    return f"{limit} facts on {query}"


CALLS = [
    {"name": "lookup", "args": {"query": "otters", "limit": 2}, "id": "c1"},
    {"name": "lookup", "args": {"limit": 2, "query": "otters"}, "id": "c2"},  # same, reordered
    {"name": "lookup", "args": {"query": "beavers", "limit": 2}, "id": "c3"},
]


@pytest.fixture(params=[False, True], ids=["capture-off", "capture-on"])
def instrumented(
    request: pytest.FixtureRequest, exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[bool]:
    instrumentor = LangGraphInstrumentor()
    capture = bool(request.param)
    instrumentor.instrument(tracer_provider=tracer_provider, capture_content=capture)
    yield capture
    instrumentor.uninstrument()


def _run() -> None:
    def caller(state: Chat) -> Chat:
        return {"messages": [AIMessage(content="", tool_calls=CALLS)]}

    graph = StateGraph(Chat)
    graph.add_node("caller", caller)
    graph.add_node("tools", ToolNode([lookup]))
    graph.add_edge(START, "caller")
    graph.add_edge("caller", "tools")
    graph.compile(name="digests").invoke({"messages": [("user", "go")]})


def _calls(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {
        str((s.attributes or {})[GEN_AI_TOOL_CALL_ID]): s
        for s in exporter.get_finished_spans()
        if s.name == "execute_tool lookup"
    }


def test_tool_spans_carry_canonical_digests(
    instrumented: bool, exporter: InMemorySpanExporter
) -> None:
    _run()

    calls = _calls(exporter)
    assert sorted(calls) == ["c1", "c2", "c3"]
    args = {k: (s.attributes or {})[AGENTMESH_TOOL_ARGUMENTS_DIGEST] for k, s in calls.items()}
    results = {k: (s.attributes or {})[AGENTMESH_TOOL_RESULT_DIGEST] for k, s in calls.items()}
    assert args["c1"] == args["c2"] != args["c3"]
    assert results["c1"] == results["c2"] != results["c3"]
    assert args["c1"] == bounded_digest({"query": "otters", "limit": 2})
    assert results["c3"] == bounded_digest("2 facts on beavers")  # the content, not the call id
    captured = [GEN_AI_TOOL_CALL_ARGUMENTS in (s.attributes or {}) for s in calls.values()]
    assert captured == [instrumented] * 3
    (node,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool tools"]
    assert AGENTMESH_TOOL_ARGUMENTS_DIGEST not in (node.attributes or {})  # a step, not a call


def test_small_values_digest_like_handoff_contexts() -> None:
    value = {"b": [1, "x"], "a": {"y": None}}
    assert bounded_digest(value) == context_digest(value).digest
    assert bounded_digest({"a": {"y": None}, "b": [1, "x"]}) == bounded_digest(value)
    assert bounded_digest(("x", 1)) == bounded_digest(["x", 1])


def test_large_values_are_digested_from_a_bounded_summary() -> None:
    text = "a" * 1_000_000
    assert bounded_digest(text) == bounded_digest("a" * 1_000_000)
    assert bounded_digest(text) != bounded_digest("b" + text[1:])  # the head counts
    assert bounded_digest(text) != bounded_digest(text[:-1] + "b")  # the tail counts
    assert bounded_digest(text) != bounded_digest(text + "a")  # the length counts
    middle = text[:500_000] + "b" + text[500_001:]
    assert bounded_digest(middle) == bounded_digest(text)  # the middle is left out: bounded
    items = list(range(100_000))
    assert bounded_digest(items) != bounded_digest([*items, 0])
    assert bounded_digest(items) == bounded_digest([*items[:-1], -1])  # beyond the first 256
    wide = {f"k{i:06d}": i for i in range(10_000)}
    assert bounded_digest(wide) == bounded_digest(dict(reversed(wide.items())))
    assert bounded_digest(wide) != bounded_digest({**wide, "k000000": -1})
    deep: object = "leaf"
    for _ in range(10_000):
        deep = [deep]
    assert bounded_digest(deep).startswith("sha256:")  # no recursion error
