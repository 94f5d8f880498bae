"""Numbers at a handoff are compared by value: a schema turning ``1`` into ``1.0`` loses nothing.

The sent digest is taken from the state the graph holds (a node's raw write: ``1``), the
received one from what the next node was given after its pydantic input schema converted it
(``1.0``). Real LangGraph graphs with pydantic states: the two digests agree at every handoff,
also the later ones (the ``int`` stays in the channel), while a value the schema really changed
(``1.5`` cut to ``1.0``, a number turned into a boolean) still gives two digests.
"""

from __future__ import annotations

import math

import pytest
from langgraph.graph import END, START, StateGraph
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, field_validator

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_RECEIVED_DIGEST,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
)
from agentmesh.instrumentation.handoff import bounded_digest, canonical_json, context_digest


class Scored(BaseModel):
    topic: str = ""
    score: float = 0.0


class TwoFloats(BaseModel):
    a: float = 0.0
    b: float = 0.0


class WholeScore(BaseModel):
    """An input schema that cuts the score to its whole part: the writer loses the fraction."""

    topic: str = ""
    score: float = 0.0

    @field_validator("score")
    @classmethod
    def whole(cls, score: float) -> float:
        return float(math.floor(score))


class Flagged(BaseModel):
    level: int = 0


class FlagOnly(BaseModel):
    """An input schema reading the level as a flag: ``1`` becomes ``True``."""

    level: bool = False


def _agents(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {
        span.name.removeprefix("invoke_agent "): span
        for span in exporter.get_finished_spans()
        if span.name.startswith("invoke_agent ")
    }


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


@pytest.mark.usefixtures("langgraph_instrumented")
def test_an_int_written_to_a_float_field_is_no_context_lost(
    exporter: InMemorySpanExporter,
) -> None:
    seen: list[object] = []

    def scorer(state: Scored) -> dict[str, object]:
        return {"score": 1}  # an int, held as such in the channel

    def writer(state: Scored) -> dict[str, object]:
        seen.append(state.score)  # the float the schema made of it
        return {"topic": state.topic + "!"}

    graph = StateGraph(Scored)
    graph.add_node("scorer", scorer)
    graph.add_node("writer", writer)
    graph.add_edge(START, "scorer")
    graph.add_edge("scorer", "writer")
    graph.add_edge("writer", END)
    graph.compile(name="ctx_graph").invoke({"topic": "otters"})

    assert seen == [1.0]
    assert isinstance(seen[0], float)
    writer_span = _attrs(_agents(exporter)["writer"])
    assert writer_span[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "scorer"
    received = writer_span[AGENTMESH_HANDOFF_RECEIVED_DIGEST]
    assert received == writer_span[AGENTMESH_HANDOFF_CONTEXT_DIGEST]
    assert writer_span[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == (
        context_digest({"topic": "otters", "score": 1.0}).digest
    )


@pytest.mark.usefixtures("langgraph_instrumented")
def test_every_later_handoff_agrees_too(exporter: InMemorySpanExporter) -> None:
    graph = StateGraph(TwoFloats)
    graph.add_node("n1", lambda _: {"a": 1})
    graph.add_node("n2", lambda _: {"b": 2})
    graph.add_node("n3", lambda _: {})
    graph.add_node("n4", lambda _: {})
    graph.add_edge(START, "n1")
    graph.add_edge("n1", "n2")
    graph.add_edge("n2", "n3")
    graph.add_edge("n3", "n4")
    graph.add_edge("n4", END)
    graph.compile(name="two_warns").invoke({})

    agents = _agents(exporter)
    for name in ("n2", "n3", "n4"):  # the ints 1 and 2 stay in the channels all along
        attrs = _attrs(agents[name])
        received = attrs[AGENTMESH_HANDOFF_RECEIVED_DIGEST]
        assert received == attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST], name


def _scored_then_written(
    state: type[BaseModel], input_schema: type[BaseModel], start: dict[str, object], **first: object
) -> None:
    graph = StateGraph(state)
    graph.add_node("scorer", lambda _: first)
    graph.add_node("writer", lambda _: {}, input_schema=input_schema)
    graph.add_edge(START, "scorer")
    graph.add_edge("scorer", "writer")
    graph.add_edge("writer", END)
    graph.compile(name="changed").invoke(start)


@pytest.mark.usefixtures("langgraph_instrumented")
def test_a_number_the_schema_changed_is_still_context_lost(
    exporter: InMemorySpanExporter,
) -> None:
    _scored_then_written(Scored, WholeScore, {"topic": "t"}, score=1.5)

    writer = _attrs(_agents(exporter)["writer"])
    assert writer[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == (
        context_digest({"topic": "t", "score": 1.5}).digest
    )
    assert writer[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == (
        context_digest({"topic": "t", "score": 1.0}).digest
    )
    assert writer[AGENTMESH_HANDOFF_RECEIVED_DIGEST] != writer[AGENTMESH_HANDOFF_CONTEXT_DIGEST]


@pytest.mark.usefixtures("langgraph_instrumented")
def test_a_number_turned_into_a_boolean_is_still_context_lost(
    exporter: InMemorySpanExporter,
) -> None:
    _scored_then_written(Flagged, FlagOnly, {"level": 0}, level=1)

    writer = _attrs(_agents(exporter)["writer"])
    assert writer[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest({"level": 1}).digest
    assert writer[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == context_digest({"level": True}).digest
    assert writer[AGENTMESH_HANDOFF_RECEIVED_DIGEST] != writer[AGENTMESH_HANDOFF_CONTEXT_DIGEST]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"n": 1}, {"n": 1.0}),
        ([0, -1, 10**20], [-0.0, -1.0, 1e20]),  # 1e20 is exactly 10**20
        ({"deep": [{"x": (2, 3)}]}, {"deep": [{"x": [2.0, 3.0]}]}),
        (Scored(topic="t", score=4), {"score": 4, "topic": "t"}),  # through model_dump()
    ],
)
def test_equal_numbers_digest_alike(left: object, right: object) -> None:
    assert context_digest(left) == context_digest(right)
    assert bounded_digest(left) == bounded_digest(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"n": 1}, {"n": True}),  # a boolean is no number here
        ({"n": 0}, {"n": False}),
        ({"n": 1}, {"n": 1.5}),
        ({"n": 2**53 + 1}, {"n": float(2**53 + 1)}),  # the float cannot hold it: changed
        ({"n": 1}, {"n": "1"}),
        ({"n": 1}, {"n": "1.0"}),
        ({"n": float("nan")}, {"n": 0}),
        ({"n": float("inf")}, {"n": 10**400}),
    ],
)
def test_different_values_still_digest_apart(left: object, right: object) -> None:
    assert context_digest(left) != context_digest(right)


def test_texts_and_other_floats_are_digested_as_they_were() -> None:
    for value in ({"v": "release 2.0", "w": "1e+20"}, {"x": 1.5, "y": float("nan")}, [0.1]):
        text = canonical_json(value)
        assert context_digest(value).size == len(text.encode())
    assert canonical_json({"score": 1.0}) == '{"score":1.0}'  # what content capture shows
    assert context_digest({"score": 1.0}).size == len('{"score":1}')
