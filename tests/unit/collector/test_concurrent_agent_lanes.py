"""Concurrent agents are lanes, not handoffs: the graph builder and the loop rules.

Agents that work at the same time (``asyncio.gather`` of two agent steps, parallel LangGraph
branches) interleave by start time without handing anything to each other. An inferred handoff
only joins an invocation to one that ended before it started (or to the agent span enclosing
it), so concurrent siblings make separate lanes, and the loop rules read each lane on its own.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import replace
from typing import cast

import pytest
from _arrivals import SECOND, arrivals, random_lag, timed

from agentmesh.collector import INFERRED, Detection, GraphBuilder, RunGraph, SpanRecord
from agentmesh.collector.detectors import HandoffLoopRule, PingPongRule
from agentmesh.collector.graph.run_graph import AgentInvocation
from agentmesh.collector.testing import SpanFactory, graph_of
from agentmesh.core import semconv

LoopRule = PingPongRule | HandoffLoopRule
MS = 1_000_000


def _rules() -> list[LoopRule]:
    return [PingPongRule(max_repeats=3), HandoffLoopRule(max_repeats=3)]


def _fired(graph: RunGraph) -> list[Detection]:
    return [d for rule in _rules() for d in rule.evaluate(graph)]


def _fired_per_batch(
    make: Callable[[], LoopRule], batches: list[list[SpanRecord]]
) -> list[Detection]:
    builder = GraphBuilder()
    rule = make()
    found: list[Detection] = []
    for batch in batches:
        for trace_id in builder.add(batch):
            graph = builder.get(trace_id)
            assert graph is not None
            found.extend(rule.evaluate(graph))
    return found


def _gathered(
    workers: dict[str, list[str]], *, seed: int = 1, parent: str | None = None
) -> tuple[SpanFactory, list[SpanRecord]]:
    """Workers run side by side (``asyncio.gather``): each starts its next step as the last ends.

    ``workers`` maps a worker to the agents it runs in turn; step lengths vary (250-350 ms), so
    the workers' spans interleave in every order. With ``parent``, the workers run inside one
    span of that agent (a supervisor that gathered them).
    """
    rng = random.Random(seed)
    f = SpanFactory()
    root = f.workflow("gathered", run_id="run-par")
    t0 = root.start_ns + MS
    spans: list[SpanRecord] = []
    outer = root
    if parent is not None:
        outer = f.agent(parent, parent=root, start_ns=t0)
        t0 += MS
    end = t0
    for offset, steps in enumerate(workers.values()):
        t = t0 + offset * 1000  # gathered tasks start microseconds apart
        for name in steps:
            length = rng.randrange(250, 350) * MS
            spans.append(timed(f.agent(name, parent=outer), t, t + length))
            t += length + rng.randrange(1, 50) * 1000  # the next step starts right after
        end = max(end, t)
    if parent is not None:
        spans.append(timed(outer, outer.start_ns, end + MS))
    spans.append(timed(root, root.start_ns, end + 2 * MS))
    return f, spans


def _supersteps(
    branches: list[list[tuple[str, str | None]]], *, seed: int = 1
) -> tuple[SpanFactory, list[SpanRecord]]:
    """Parallel LangGraph branches: step k of every branch starts once all steps k-1 ended.

    Each branch is a list of ``(agent, handoff source)``; the branches' steps end in a random
    order within each superstep.
    """
    rng = random.Random(seed)
    f = SpanFactory()
    root = f.workflow("parallel_graph", run_id="run-lg")
    t = root.start_ns + MS
    spans: list[SpanRecord] = []
    for k in range(max(len(b) for b in branches)):
        ends = t
        for offset, branch in enumerate(branches):
            if k >= len(branch):
                continue
            name, source = branch[k]
            start = t + offset * 5000
            end = start + rng.randrange(280, 320) * MS
            spans.append(timed(f.agent(name, parent=root, handoff_from=source), start, end))
            ends = max(ends, end)
        t = ends + MS
    return f, [*spans, timed(root, root.start_ns, t)]


@pytest.mark.parametrize("seed", range(5))
def test_gathered_workers_make_two_lanes_and_no_handoff(seed: int) -> None:
    f, spans = _gathered({"w1": ["invoice_reader"] * 12, "w2": ["receipt_reader"] * 12}, seed=seed)
    graph = graph_of(spans)
    by_start = [i.agent for i in graph.invocations]
    assert by_start.count("invoice_reader") == 12
    assert any(a != b for a, b in itertools.pairwise(by_start))  # they interleave
    assert graph.handoffs == []  # neither ever handed work to the other
    visits = graph.agent_sequence()
    assert [(v.agent, v.lane, len(v.span_ids)) for v in visits] == [
        ("invoice_reader", 0, 12),
        ("receipt_reader", 1, 12),
    ]
    assert _fired(graph) == []
    # Live, span by span as they end, the rules never see a ping-pong either.
    batches = arrivals(spans, lambda _: 0, window_ns=SECOND // 5)
    assert _fired_per_batch(lambda: PingPongRule(settle_seconds=0), batches) == []
    assert f.trace_id == graph.trace_id


def test_three_gathered_workers_are_no_handoff_loop() -> None:
    _, spans = _gathered({"a": ["a"] * 10, "b": ["b"] * 10, "c": ["c"] * 10}, seed=3)
    graph = graph_of(spans)
    assert graph.handoffs == []
    assert sorted(v.agent for v in graph.agent_sequence()) == ["a", "b", "c"]
    assert _fired(graph) == []


@pytest.mark.parametrize("seed", range(5))
def test_parallel_self_looping_branches_each_stay_in_their_lane(seed: int) -> None:
    # START fans out to two branches that each loop on themselves (LangGraph): no explicit
    # handoff, both steps of a superstep end before the next starts, in either order.
    f, spans = _supersteps(
        [[("invoice_reader", None)] * 8, [("receipt_reader", None)] * 8], seed=seed
    )
    graph = graph_of(spans)
    assert graph.handoffs == []
    assert [(v.agent, v.lane, len(v.span_ids)) for v in graph.agent_sequence()] == [
        ("invoice_reader", 0, 8),
        ("receipt_reader", 1, 8),
    ]
    assert _fired(graph) == []
    assert f.trace_id == graph.trace_id


def test_a_real_ping_pong_in_one_branch_is_still_found_beside_a_busy_one() -> None:
    # One worker loops supervisor <-> researcher, the other works through its own items.
    _, spans = _gathered(
        {"loop": ["supervisor", "researcher"] * 5, "other": ["indexer"] * 10}, seed=4
    )
    graph = graph_of(spans)
    (found,) = _fired(graph)
    assert found.type == "ping_pong"
    assert found.details["cycle"] == ["supervisor", "researcher"]
    names = {s.span_id: s.attributes.get(semconv.GEN_AI_AGENT_NAME) for s in spans}
    assert {names[span_id] for span_id in found.span_ids} == {"supervisor", "researcher"}
    assert {(h.source, h.target) for h in graph.handoffs} == {
        ("supervisor", "researcher"),
        ("researcher", "supervisor"),
    }


def test_explicit_handoffs_keep_a_looping_branch_apart_from_a_parallel_one() -> None:
    # Branch 1 loops b -> c -> b… (the instrumentation records each handoff's source); branch
    # 2 is a self-looping worker. Steps of a superstep end in random order.
    loop = [("b", None)] + [("c", "b"), ("b", "c")] * 4
    f, spans = _supersteps([loop, [("a", None)] * len(loop)], seed=7)
    graph = graph_of(spans)
    fired = _fired(graph)
    assert [(d.type, d.details["cycle"]) for d in fired] == [("ping_pong", ["b", "c"])]
    assert all(h.kind == "edge" for h in graph.handoffs)  # explicit handoffs are kept as sent
    assert f.trace_id == graph.trace_id


def test_the_supervisor_pattern_with_parallel_workers_does_not_fire() -> None:
    # S fans out to two workers, joins, and goes on: S, (A || B), S, (C || D), S…
    f = SpanFactory()
    root = f.workflow("fan", run_id="run-fan")
    t = root.start_ns + MS
    spans: list[SpanRecord] = []
    for pair in [("a", "b"), ("c", "d"), ("a", "c"), ("b", "d"), ("a", "b")] * 2:
        spans.append(timed(f.agent("supervisor", parent=root), t, t + 100 * MS))
        t += 101 * MS
        for offset, name in enumerate(pair):
            spans.append(timed(f.agent(name, parent=root), t + offset, t + (200 + offset) * MS))
        t += 202 * MS
    spans.append(timed(root, root.start_ns, t))
    graph = graph_of(spans)
    assert _fired(graph) == []
    # The first fan-out: the supervisor handed to both workers; neither handed to the other.
    assert [(h.source, h.target) for h in graph.handoffs[:2]] == [
        ("supervisor", "a"),
        ("supervisor", "b"),
    ]
    assert ("a", "b") not in {(h.source, h.target) for h in graph.handoffs}


def test_workers_a_supervisor_gathered_are_its_handoffs_not_each_others() -> None:
    _, spans = _gathered(
        {"w1": ["invoice_reader"] * 6, "w2": ["receipt_reader"] * 6}, parent="supervisor"
    )
    graph = graph_of(spans)
    assert sorted((h.source, h.target, h.kind) for h in graph.handoffs) == [
        ("supervisor", "invoice_reader", INFERRED),
        ("supervisor", "receipt_reader", INFERRED),
    ]
    assert _fired(graph) == []


def test_a_nested_supervisor_still_hands_work_back_and_forth() -> None:
    # Each supervisor turn is a span enclosing the worker it calls: S, a, S, b… as before.
    f = SpanFactory()
    root = f.workflow("nested", run_id="run-n")
    t = root.start_ns
    spans: list[SpanRecord] = []
    for worker in ["researcher"] * 5:
        supervisor = timed(f.agent("supervisor", parent=root), t, t + SECOND)
        spans += [supervisor, timed(f.agent(worker, parent=supervisor), t + 10 * MS, t + 900 * MS)]
        t += SECOND
    spans.append(timed(root, root.start_ns, t))
    graph = graph_of(spans)
    assert [v.agent for v in graph.agent_sequence()] == ["supervisor", "researcher"] * 5
    (found,) = _fired(graph)
    assert found.details["cycle"] == ["supervisor", "researcher"]


@pytest.mark.parametrize("seed", range(3))
def test_the_graph_of_parallel_lanes_does_not_depend_on_arrival_order(seed: int) -> None:
    _, spans = _gathered(
        {"w1": ["x", "y"] * 6, "w2": ["p"] * 12, "w3": ["q", "r", "s"] * 4},
        seed=seed,
        parent="supervisor",
    )
    whole = graph_of(spans)
    rng = random.Random(seed)
    shuffled = spans[:]
    rng.shuffle(shuffled)
    builder = GraphBuilder()
    for i in range(0, len(shuffled), 3):
        builder.add(shuffled[i : i + 3])
        assert builder.get(whole.trace_id) is not None  # a snapshot after each batch
    graph = builder.get(whole.trace_id)
    assert graph is not None
    assert graph == whole
    assert graph.agent_sequence() == whole.agent_sequence()
    assert replace(graph, visits=None).agent_sequence() == whole.agent_sequence()


def test_a_worker_waits_for_its_enclosing_span_to_know_who_called_it() -> None:
    # The workers' spans arrive before the supervisor span that encloses them (it ends last),
    # with a non-agent span between them.
    f = SpanFactory()
    root = f.workflow("w", run_id="run-c")
    supervisor = f.agent("supervisor", parent=root, start_ns=root.start_ns + MS)
    step = f.span("chain", parent=supervisor, start_ns=root.start_ns + 2 * MS)
    t = root.start_ns + 3 * MS
    workers = [
        timed(f.agent("a", parent=step), t, t + 50 * MS),
        timed(f.agent("b", parent=step), t + 1000, t + 60 * MS),
    ]
    ends = t + 70 * MS
    step = timed(step, step.start_ns, ends)
    supervisor = timed(supervisor, supervisor.start_ns, ends + 1)
    root = timed(root, root.start_ns, ends + 2)
    builder = GraphBuilder()
    builder.add(workers)
    early = builder.get(f.trace_id)
    assert early is not None
    assert early.handoffs == []
    builder.add([step])
    builder.add([supervisor, root])
    graph = builder.get(f.trace_id)
    assert graph is not None
    assert [i.caller for i in graph.invocations] == [None, supervisor.span_id, supervisor.span_id]
    assert sorted((h.source, h.target) for h in graph.handoffs) == [
        ("supervisor", "a"),
        ("supervisor", "b"),
    ]
    assert graph == graph_of([*workers, step, supervisor, root])


def _interleaved_loops() -> list[SpanRecord]:
    """A long sequential lane with loops buried in healthy traffic, beside a busy second lane."""
    rng = random.Random(2)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-long")
    names: list[str] = []
    for _ in range(120):
        names += ["supervisor", rng.choice(["a", "b", "c", "d", "e"])]
    names[60:60] = ["x", "y"] * 6
    names[180:180] = ["p", "q", "r"] * 5
    t0 = root.start_ns + MS
    spans: list[SpanRecord] = []
    t = t0
    for name in names:  # lane 1: back to back, 100 ms each
        spans.append(timed(f.agent(name, parent=root), t, t + 100 * MS))
        t += 100 * MS
    u = t0 + 1000
    while u < t:  # lane 2: two or three steps per lane-1 step, alternating two agents
        for name in ("k", "m"):
            length = rng.randrange(30, 50) * MS
            spans.append(timed(f.agent(name, parent=root), u, u + length))
            u += length
    return [*spans, timed(root, root.start_ns, max(t, u) + MS)]


@pytest.mark.parametrize("arrival", ["in_order", "shuffled", "lagged"])
@pytest.mark.parametrize("make", [PingPongRule, HandoffLoopRule])
def test_incremental_rules_find_what_a_whole_scan_finds_with_interleaved_lanes(
    arrival: str, make: Callable[..., LoopRule]
) -> None:
    spans = _interleaved_loops()
    if arrival == "lagged":
        batches = arrivals(spans, random_lag(7, 4 * SECOND))
    else:
        order = spans[:]
        if arrival == "shuffled":
            random.Random(5).shuffle(order)
        batches = [order[i : i + 25] for i in range(0, len(order), 25)]
    builder = GraphBuilder()
    incremental, whole = make(max_repeats=3, clock=lambda: 1), make(max_repeats=3, clock=lambda: 1)
    found: tuple[list[Detection], list[Detection]] = ([], [])
    for batch in batches:
        for trace_id in builder.add(batch):
            graph = builder.get(trace_id)
            assert graph is not None
            found[0].extend(incremental.evaluate(graph))
            found[1].extend(whole.evaluate(replace(graph, visits=None)))  # scans from 0
    assert found[0] == found[1]
    cycles = {tuple(sorted(cast("list[str]", d.details["cycle"]))) for d in found[1]}
    # The second lane's k, m, k, m… is a ping-pong of its own; the first lane's loops are found
    # through it (with whatever its random healthy traffic repeats), and no cycle mixes lanes.
    assert cycles >= ({("k", "m"), ("x", "y")} if make is PingPongRule else {("p", "q", "r")})
    assert all(set(c) <= {"k", "m"} or not set(c) & {"k", "m"} for c in cycles)


def test_lanes_are_rebuilt_the_same_from_any_position() -> None:
    from agentmesh.collector.graph.run_graph import AgentLanes  # (new: imported here)

    rng = random.Random(9)
    invocations: list[AgentInvocation] = []
    for i in range(300):  # three overlapping streams of steps
        start = rng.randrange(0, 10_000)
        invocations.append(
            AgentInvocation(rng.choice("abcd"), f"{i:04d}", start, start + rng.randrange(1, 200))
        )
    invocations.sort(key=lambda each: (each.start_ns, each.span_id))
    once = AgentLanes()
    for invocation in invocations:
        once.add(invocation)
    once.sweep(invocations, 0)
    lanes = AgentLanes()
    known: list[AgentInvocation] = []
    for invocation in rng.sample(invocations, len(invocations)):  # one at a time, any order
        known.append(invocation)
        known.sort(key=lambda each: (each.start_ns, each.span_id))
        lanes.add(invocation)
        lanes.sweep(known, known.index(invocation))
    assert lanes.visits() == once.visits()
    assert lanes.handoffs == once.handoffs
    assert len({v.lane for v in once.visits()}) > 1
