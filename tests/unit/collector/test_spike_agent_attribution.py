"""Spike detections name and key the agent the run graph attributes a call to.

A call's agent is its nearest agent ancestor. Spans arrive when they end, so a call usually
arrives before its agent's span (the usual GenAI shape without start markers): the call waits
until the span leading to its agent arrives, and is never scored under a guess.
"""

from __future__ import annotations

import dataclasses

import pytest
from _nodes import chat, cycle, marker, new_id, step

from agentmesh.collector import MemoryStore, Pipeline, SpanRecord
from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.spikes import LATENCY_SPIKE, SpikeDetector
from agentmesh.collector.testing import DetectorFeed, SpanFactory
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError

_AGENT = semconv.Operation.INVOKE_AGENT
_TOOL = semconv.Operation.EXECUTE_TOOL
_WORKFLOW = semconv.Operation.INVOKE_WORKFLOW


def _routed_run(index: int, latency_s: float, *, agent: str | None = "triager") -> list[SpanRecord]:
    """A workflow whose agent (if any) makes one call, as the OpenTelemetry SDK exports it.

    Chat first, then its agent, then the root: each span is exported when it ends. The call
    carries no ``gen_ai.agent.name`` and no run id; span ids are unique across runs.
    """
    f = SpanFactory(start_ns=1_700_000_000_000_000_000 + index * 100_000_000_000)
    run_id = f"route-run-{index}"
    root = f.workflow("routed", run_id=run_id)
    parent = root if agent is None else f.agent(agent, parent=root, run_id=run_id)
    call = f.chat(parent=parent, input_tokens=100, output_tokens=20, cost_usd=0.001)
    call = dataclasses.replace(call, end_ns=call.start_ns + int(latency_s * 1e9))
    spans = [call] if agent is None else [call, parent]
    spans.append(root)
    prefix = f"{index + 1:08x}"
    return [
        dataclasses.replace(
            span,
            span_id=prefix + span.span_id[8:],
            parent_span_id=None
            if span.parent_span_id is None
            else prefix + span.parent_span_id[8:],
        )
        for span in spans
    ]


async def test_a_spike_names_the_agent_the_run_graph_attributes_the_call_to() -> None:
    store = MemoryStore()
    detector = SpikeDetector(metrics=["latency"])
    async with Pipeline(store, detectors=[detector]) as pipeline:
        for index in range(26):
            for span in _routed_run(index, 20.0 if index == 25 else 1.0 + 0.01 * index):
                assert pipeline.offer([span])  # one span per request, as a simple processor
                await pipeline.drain()
    [found] = await store.detections()
    assert found.type == LATENCY_SPIKE
    assert found.agent == "triager"
    assert found.run_id == "route-run-25"  # the graph's (from the agent span): not on the call
    assert "by agent triager" in found.explanation
    assert found.details["agent"] == "triager"
    graph = await store.graph(found.trace_id)
    assert graph is not None
    assert [(a.name, a.llm_calls) for a in graph.agents] == [("triager", 1)]
    assert [(row.key, row.llm_calls) for row in await store.costs()] == [("triager", 26)]
    # one baseline, the agent's: nothing went to the calls of no agent
    assert detector.normal("latency", "triager", "gpt-4o-mini", None) == pytest.approx(1.1, rel=0.1)
    assert detector.normal("latency", None, "gpt-4o-mini", None) is None


def test_a_call_outside_any_agent_waits_for_the_root_and_is_named_so() -> None:
    detector = SpikeDetector(metrics=["latency"])
    feed = DetectorFeed(detector)
    found: list[Detection] = []
    for index in range(26):
        spans = _routed_run(index, 20.0 if index == 25 else 1.0, agent=None)
        found += feed([spans[0]])
        assert detector.normal("latency", None, "gpt-4o-mini", None) == (
            None if index == 0 else pytest.approx(1.0)
        )  # the call waits until its root says no agent is above it
        found += feed(spans[1:])
    [spike] = found
    assert spike.agent is None
    assert spike.run_id == "route-run-25"
    assert "a call to gpt-4o-mini (no agent in the run graph) took 20.00 s" in spike.explanation
    assert "unattributed" not in spike.explanation


def test_a_call_waits_for_the_spans_between_it_and_its_agent() -> None:
    detector = SpikeDetector()
    feed = DetectorFeed(detector)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    agent = f.agent("planner", parent=root)
    tool = f.tool("search", parent=agent)
    call = f.chat(parent=tool, input_tokens=10, output_tokens=2, cost_usd=0.01)
    for arrived in ([call], [tool]):
        feed(arrived)
        assert detector.snapshot()["keys"] == []  # nothing scored under a guess
    feed([agent, root])
    assert detector.normal("tokens", "planner", "gpt-4o-mini", None) == pytest.approx(12)
    graph = feed.builder.get(f.trace_id)
    assert graph is not None
    assert graph.agents["planner"].llm_calls == 1  # the graph agrees


def test_a_parent_listed_before_its_call_in_a_request_leads_to_the_agent() -> None:
    detector = SpikeDetector()
    tool = step("order", new_id(), _TOOL, "search", 0, 4, parent="a1")
    detector.observe(cycle([tool, chat("order", 1, 2.0, parent=tool.span_id)]))
    assert detector.snapshot()["keys"] == []
    detector.observe(cycle([step("order", "a1", _AGENT, "critic", 0, 5)]))
    assert detector.normal("latency", "critic", "gpt-4o", None) == pytest.approx(2.0)


def test_a_concurrent_agent_is_not_blamed_for_another_agents_call() -> None:
    detector = SpikeDetector()
    writer, reviewer, tool = new_id(), new_id(), new_id()
    markers = [
        marker("par", writer, 0, agent="writer"),
        marker("par", reviewer, 1, agent="reviewer"),  # started later, still running
    ]
    detector.observe(cycle([*markers, chat("par", 2, 3.0, parent=tool)]))  # inside writer's tool
    assert detector.normal("latency", "reviewer", "gpt-4o", None) is None
    detector.observe(cycle([step("par", tool, _TOOL, "search", 2, 4, parent=writer)]))
    assert detector.normal("latency", "writer", "gpt-4o", None) == pytest.approx(3.0)
    assert detector.normal("latency", "reviewer", "gpt-4o", None) is None


def test_a_call_whose_chain_stays_broken_is_scored_for_no_agent_when_its_run_goes_quiet() -> None:
    detector = SpikeDetector(linger_seconds=10, idle_seconds=100)
    feed = DetectorFeed(detector)
    second = 1_000_000_000

    def run_losing_a_span(tokens: int) -> tuple[SpanRecord, SpanRecord]:
        f = SpanFactory()
        root = f.workflow("w", run_id=f"lossy-{tokens}")
        lost = f.tool("lookup", parent=root)  # never arrives: the chain to the root is broken
        return root, f.chat(parent=lost, input_tokens=tokens)

    # a run whose spans stop arriving: its call waits for the idle time
    _, call = run_losing_a_span(10)
    feed([call])
    assert feed.tick(99 * second) == []
    assert detector.normal("tokens", None, "gpt-4o-mini", None) is None
    feed.tick(2 * second)
    assert detector.normal("tokens", None, "gpt-4o-mini", None) == pytest.approx(10)
    # a complete run (its root arrived): its call waits for the linger time after its last span
    root, call = run_losing_a_span(40)
    feed([call])
    feed([root], advance_ns=second)
    feed.tick(9 * second)
    assert detector.normal("tokens", None, "gpt-4o-mini", None) == pytest.approx(10)
    feed.tick(2 * second)
    assert detector.normal("tokens", None, "gpt-4o-mini", None) == pytest.approx(20)  # 10, 40
    assert detector.normal("tokens", "lookup", "gpt-4o-mini", None) is None


def test_waiting_calls_are_bounded() -> None:
    detector = SpikeDetector(max_traces=2)
    for index in range(5):
        detector.observe(cycle([chat(f"w-{index}", index, 1.0 + index, parent=new_id())]))
    # the three least recently active runs stopped waiting: scored for no agent (1, 2, 3 s)
    assert detector.normal("latency", None, "gpt-4o", None) == pytest.approx(2.0)
    detector = SpikeDetector(max_waiting=3)
    detector.observe(cycle([chat("many", i, 4.0, parent=new_id()) for i in range(4)]))
    assert detector.normal("latency", None, "gpt-4o", None) == pytest.approx(4.0)


def test_bad_waiting_bounds_are_refused() -> None:
    with pytest.raises(DetectionError):
        SpikeDetector(max_waiting=0)
    with pytest.raises(DetectionError):
        SpikeDetector(linger_seconds=60, idle_seconds=30)
