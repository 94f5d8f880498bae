"""The received-context digest of LangGraph handoffs, next to the sent one.

Real graphs: an edge, a conditional edge, ``Send`` packets, a fan-in and the usual
``add_messages`` state all give ``agentmesh.handoff.context.received_digest`` equal to
``agentmesh.handoff.context.digest``; a node whose input schema alters what it is given (a
validator keeping one note of several) gives two different digests, the sent one still that of
the state the graph holds.
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Send
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, field_validator

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_HANDOFF_RECEIVED_DIGEST,
    EVENT_HANDOFF,
)
from agentmesh.instrumentation.handoff import context_digest

pytestmark = pytest.mark.usefixtures("langgraph_instrumented")


class Notes(TypedDict, total=False):
    topic: str
    notes: Annotated[list[str], operator.add]
    found: Annotated[list[str], operator.add]


class FirstNoteOnly(BaseModel):
    """An input schema whose validator drops every note but the first."""

    topic: str = ""
    notes: list[str] = []

    @field_validator("notes")
    @classmethod
    def first_only(cls, notes: list[str]) -> list[str]:
        return notes[:1]


def _note(name: str):
    def node(state: Notes) -> Notes:
        return {"notes": [name]}

    return node


def _fan_out(state: Notes) -> list[Send]:
    return [Send("worker", {"topic": topic}) for topic in ("otters", "beavers")]


def _worker(state: Notes) -> Notes:
    return {"found": [state.get("topic", "")]}


def _agents(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        if span.name.startswith("invoke_agent "):
            found.setdefault(span.name.removeprefix("invoke_agent "), []).append(span)
    return found


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _pipeline(*, altered: bool) -> None:
    graph = StateGraph(Notes)
    graph.add_node("planner", _note("planner"))
    graph.add_node("researcher", _note("researcher"))
    if altered:
        graph.add_node("writer", _note("writer"), input_schema=FirstNoteOnly)
    else:
        graph.add_node("writer", _note("writer"))
    graph.add_node("worker", _worker)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "researcher")
    graph.add_conditional_edges("researcher", lambda _: "writer", ["writer"])
    graph.add_conditional_edges("writer", _fan_out, ["worker"])
    graph.add_edge("worker", END)
    result = graph.compile(name="pipeline").invoke({"topic": "rivers"})
    assert result["notes"] == ["planner", "researcher", "writer"]
    assert sorted(result["found"]) == ["beavers", "otters"]


def test_received_equals_sent_in_a_normal_run(exporter: InMemorySpanExporter) -> None:
    _pipeline(altered=False)

    agents = _agents(exporter)
    researcher, writer = agents["researcher"][0], agents["writer"][0]
    workers = agents["worker"]
    assert len(workers) == 2
    for span, kind in (
        (researcher, "edge"),
        (writer, "conditional"),
        *((w, "send") for w in workers),
    ):
        attrs = _attrs(span)
        assert attrs[AGENTMESH_HANDOFF_KIND] == kind
        assert attrs[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST]
        (event,) = [e for e in span.events if e.name == EVENT_HANDOFF]
        assert (event.attributes or {})[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == (
            attrs[AGENTMESH_HANDOFF_RECEIVED_DIGEST]
        )
    writer_state = {"topic": "rivers", "notes": ["planner", "researcher"], "found": []}
    assert _attrs(writer)[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest(writer_state).digest
    packets = {str(_attrs(w)[AGENTMESH_HANDOFF_RECEIVED_DIGEST]) for w in workers}
    assert packets == {context_digest({"topic": t}).digest for t in ("otters", "beavers")}


def test_an_input_that_loses_context_gives_two_digests(exporter: InMemorySpanExporter) -> None:
    _pipeline(altered=True)

    writer = _attrs(_agents(exporter)["writer"][0])
    sent = {"topic": "rivers", "notes": ["planner", "researcher"]}  # what the graph holds
    given = {"topic": "rivers", "notes": ["planner"]}  # what the writer was given
    assert writer[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest(sent).digest
    assert writer[AGENTMESH_HANDOFF_CONTEXT_SIZE] == context_digest(sent).size
    assert writer[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == context_digest(given).digest
    assert writer[AGENTMESH_HANDOFF_RECEIVED_DIGEST] != writer[AGENTMESH_HANDOFF_CONTEXT_DIGEST]


def test_fan_in_and_message_ids_give_no_false_loss(exporter: InMemorySpanExporter) -> None:
    def speak(name: str):
        def node(state: MessagesState) -> dict[str, object]:
            # tuple and dict messages: add_messages gives them fresh ids when it applies them
            return {"messages": [("ai", f"from {name}"), {"role": "ai", "content": name}]}

        return node

    graph = StateGraph(MessagesState)
    for name in ("lead", "left", "right", "judge"):
        graph.add_node(name, speak(name))
    graph.add_edge(START, "lead")
    graph.add_edge("lead", "left")
    graph.add_edge("lead", "right")
    graph.add_edge(["left", "right"], "judge")  # both write messages in the same superstep
    graph.add_edge("judge", END)
    graph.compile(name="panel").invoke({"messages": [("user", "go")]})

    agents = _agents(exporter)
    for name in ("left", "right", "judge"):
        attrs = _attrs(agents[name][0])
        assert attrs[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST]
    judge = agents["judge"][0]
    sources = sorted(
        str((e.attributes or {}).get("gen_ai.agent.handoff.source.name")) for e in judge.events
    )
    assert sources == ["left", "right"]
