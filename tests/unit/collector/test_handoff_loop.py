import random
from dataclasses import replace

import pytest

from agentmesh.collector import Detection, GraphBuilder, HandoffLoopRule, RunGraph, SpanRecord
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import DetectionError


def _run(names: list[str], *, run_id: str = "run-9") -> tuple[SpanFactory, list[SpanRecord]]:
    f = SpanFactory()
    root = f.workflow("supervisor_graph", run_id=run_id)
    return f, [root, *(f.agent(name, parent=root) for name in names)]


def _graph(spans: list[SpanRecord]) -> RunGraph:
    builder = GraphBuilder()
    (trace_id,) = builder.add(spans)
    graph = builder.get(trace_id)
    assert graph is not None
    return graph


def test_fires_on_the_repetition_past_the_bound() -> None:
    rule = HandoffLoopRule(max_repeats=3)
    assert rule.evaluate(_graph(_run(["supervisor", "researcher"] * 3 + ["supervisor"])[1])) == []
    f, spans = _run(["supervisor", "researcher"] * 4)
    (detection,) = rule.evaluate(_graph(spans))
    assert detection.type == rule.name == "handoff_loop"
    assert detection.severity == "error"
    assert detection.trace_id == f.trace_id
    assert detection.run_id == "run-9"
    assert detection.agent == "supervisor"
    assert detection.span_ids == tuple(s.span_id for s in spans[1:])
    assert detection.explanation == (
        "agent cycle supervisor → researcher → supervisor repeated 4 times (bound 3) in run run-9"
    )
    assert detection.details["cycle"] == ["supervisor", "researcher"]
    assert detection.details["repetitions"] == 4
    assert detection.id.startswith("det-")


def test_fires_once_for_a_trace_however_many_batches_arrive() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    agents = [f.agent(name, parent=root) for name in ["supervisor", "researcher"] * 8]
    builder = GraphBuilder()
    rule = HandoffLoopRule(max_repeats=3)
    found = []
    batches = [[root, *agents[:3]], agents[3:8], agents[8:9], agents[9:14], agents[14:]]
    for batch in batches:
        for trace_id in builder.add(batch):
            graph = builder.get(trace_id)
            assert graph is not None
            found.extend(rule.evaluate(graph))
    assert len(found) == 1
    assert found[0].details["repetitions"] == 4  # reported when the 4th repetition arrived


def test_rotations_of_the_same_cycle_are_one_finding() -> None:
    rule = HandoffLoopRule(max_repeats=2)
    f, spans = _run(["a", "b", "c"] * 3)
    (first,) = rule.evaluate(_graph(spans))
    builder = GraphBuilder()
    builder.add(spans)
    more = [f.agent(name, parent=spans[0]) for name in ["b", "c", "a"] * 3]
    builder.add(more)
    graph = builder.get(f.trace_id)
    assert graph is not None
    assert rule.evaluate(graph) == []
    assert first.agent == "a"
    assert first.explanation.startswith("agent cycle a → b → c → a repeated 3 times (bound 2)")


def test_clean_supervisor_pattern_does_not_fire() -> None:
    names = ["supervisor", "a", "supervisor", "b", "supervisor", "c", "supervisor"]
    assert HandoffLoopRule(max_repeats=1).evaluate(_graph(_run(names)[1])) == []
    assert HandoffLoopRule(max_repeats=3).evaluate(_graph(_run(names * 3)[1])) == []


def test_self_repeats_are_not_loops() -> None:
    graph = _graph(_run(["researcher"] * 20)[1])
    assert HandoffLoopRule(max_repeats=1).evaluate(graph) == []


def test_bound_is_configurable() -> None:
    spans = _run(["s", "r"] * 3)[1]
    assert HandoffLoopRule(max_repeats=3).evaluate(_graph(spans)) == []
    assert len(HandoffLoopRule(max_repeats=2).evaluate(_graph(spans))) == 1


def test_cycles_longer_than_the_limit_are_ignored() -> None:
    spans = _run(["a", "b", "c", "d", "e"] * 5)[1]
    assert HandoffLoopRule(max_repeats=3, max_cycle_length=4).evaluate(_graph(spans)) == []
    (found,) = HandoffLoopRule(max_repeats=3, max_cycle_length=5).evaluate(_graph(spans))
    assert found.details["cycle_length"] == 5


def test_loop_after_a_healthy_prefix_reports_only_the_loop_spans() -> None:
    _, spans = _run(["planner", "writer", "s", "r", "s", "r", "s", "r", "s", "r", "done"])
    (found,) = HandoffLoopRule(max_repeats=3).evaluate(_graph(spans))
    assert found.agent == "s"
    assert found.span_ids == tuple(s.span_id for s in spans[3:11])


def test_distinct_loops_in_one_trace_are_reported_separately() -> None:
    _, spans = _run(["a", "b"] * 4 + ["x", "y", "z"] * 4)
    found = HandoffLoopRule(max_repeats=3).evaluate(_graph(spans))
    assert sorted(d.details["cycle_length"] for d in found) == [2, 3]
    assert len({d.id for d in found}) == 2


def test_each_trace_is_judged_on_its_own() -> None:
    rule = HandoffLoopRule(max_repeats=3)
    one = rule.evaluate(_graph(_run(["s", "r"] * 4)[1]))
    two = rule.evaluate(_graph(_run(["s", "r"] * 4)[1]))
    assert len(one) == len(two) == 1
    assert one[0].id != two[0].id


def test_forget_allows_reporting_again() -> None:
    rule = HandoffLoopRule(max_repeats=3)
    graph = _graph(_run(["s", "r"] * 4)[1])
    assert len(rule.evaluate(graph)) == 1
    rule.forget(graph.trace_id)
    assert len(rule.evaluate(graph)) == 1


def test_memory_of_reports_is_bounded() -> None:
    rule = HandoffLoopRule(max_repeats=1, max_remembered=1)
    first = _graph(_run(["s", "r"] * 2)[1])
    second = _graph(_run(["s", "r"] * 2)[1])
    assert len(rule.evaluate(first)) == 1
    assert len(rule.evaluate(second)) == 1
    assert len(rule.evaluate(first)) == 1  # forgotten, so reported again


@pytest.mark.parametrize(
    "kwargs",
    [{"max_repeats": 0}, {"max_cycle_length": 1}, {"max_remembered": 0}],
)
def test_bad_bounds_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(DetectionError):
        HandoffLoopRule(**kwargs)


def test_detection_time_comes_from_the_clock() -> None:
    rule = HandoffLoopRule(max_repeats=1, clock=lambda: 1234)
    (found,) = rule.evaluate(_graph(_run(["s", "r"] * 2)[1]))
    assert found.detected_at_ns == 1234


def _evaluate_per_batch(
    spans: list[SpanRecord], batch: int, shuffle_seed: int | None
) -> tuple[list[Detection], list[Detection]]:
    """Evaluate each snapshot with an incremental rule and with a rule scanning it whole."""
    order = spans[:]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    builder = GraphBuilder()
    incremental = HandoffLoopRule(max_repeats=3, clock=lambda: 1)
    whole = HandoffLoopRule(max_repeats=3, clock=lambda: 1)
    found: tuple[list[Detection], list[Detection]] = ([], [])
    for i in range(0, len(order), batch):
        for trace_id in builder.add(order[i : i + batch]):
            graph = builder.get(trace_id)
            assert graph is not None
            found[0].extend(incremental.evaluate(graph))
            found[1].extend(whole.evaluate(replace(graph, visits=None)))  # scans from 0
    return found


@pytest.mark.parametrize("shuffle_seed", [None, 5])
def test_incremental_evaluation_finds_what_a_whole_evaluation_finds(
    shuffle_seed: int | None,
) -> None:
    rng = random.Random(2)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-long")
    # 1,500 agent spans: healthy supervisor traffic with two loops buried at different depths.
    names: list[str] = []
    for _ in range(300):
        names += ["supervisor", rng.choice(["a", "b", "c", "d", "e"])]
    names[200:200] = ["x", "y"] * 6
    names[900:900] = ["p", "q", "r"] * 5
    spans = [root] + [f.agent(name, parent=root) for name in names]

    incremental, whole = _evaluate_per_batch(spans, 7, shuffle_seed)
    assert incremental == whole
    assert {tuple(d.details["cycle"]) for d in whole} >= {("x", "y"), ("p", "q", "r")}
