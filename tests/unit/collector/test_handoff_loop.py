import random
from collections.abc import Callable
from dataclasses import replace

import pytest
from _arrivals import SECOND, arrivals, random_lag, timed

from agentmesh.collector import Detection, GraphBuilder, HandoffLoopRule, SpanRecord
from agentmesh.collector.detectors import PingPongRule
from agentmesh.collector.testing import SpanFactory, graph_of
from agentmesh.core import DetectionError, semconv

LoopRule = PingPongRule | HandoffLoopRule


def _run(names: list[str], *, run_id: str = "run-9") -> tuple[SpanFactory, list[SpanRecord]]:
    f = SpanFactory()
    root = f.workflow("supervisor_graph", run_id=run_id)
    return f, [root, *(f.agent(name, parent=root) for name in names)]


def test_fires_on_the_repetition_past_the_bound() -> None:
    rule = PingPongRule(max_repeats=3)
    assert rule.evaluate(graph_of(_run(["supervisor", "researcher"] * 3 + ["supervisor"])[1])) == []
    f, spans = _run(["supervisor", "researcher"] * 4)
    (detection,) = rule.evaluate(graph_of(spans))
    assert detection.type == rule.name == "ping_pong"
    assert detection.severity == "error"
    assert detection.trace_id == f.trace_id
    assert detection.run_id == "run-9"
    assert detection.agent == "supervisor"
    assert detection.span_ids == tuple(s.span_id for s in spans[1:])
    assert detection.explanation == (
        "ping-pong supervisor → researcher → supervisor repeated 4 times (bound 3) in run run-9"
    )
    assert detection.details["cycle"] == ["supervisor", "researcher"]
    assert detection.details["repetitions"] == 4
    assert detection.id.startswith("det-")


def test_fires_once_for_a_trace_however_many_batches_arrive() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    agents = [f.agent(name, parent=root) for name in ["supervisor", "researcher"] * 8]
    builder = GraphBuilder()
    rule = PingPongRule(max_repeats=3)
    found: list[Detection] = []
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
    (first,) = rule.evaluate(graph_of(spans))
    builder = GraphBuilder()
    builder.add(spans)
    more = [f.agent(name, parent=spans[0]) for name in ["b", "c", "a"] * 3]
    builder.add(more)
    graph = builder.get(f.trace_id)
    assert graph is not None
    assert rule.evaluate(graph) == []
    assert first.agent == "a"
    assert first.explanation.startswith("agent cycle a → b → c → a repeated 3 times (bound 2)")


@pytest.mark.parametrize("make", [PingPongRule, HandoffLoopRule])
def test_clean_supervisor_pattern_does_not_fire(make: Callable[..., LoopRule]) -> None:
    names = ["supervisor", "a", "supervisor", "b", "supervisor", "c", "supervisor"]
    assert make(max_repeats=1).evaluate(graph_of(_run(names)[1])) == []
    assert make(max_repeats=3).evaluate(graph_of(_run(names * 3)[1])) == []


@pytest.mark.parametrize("make", [PingPongRule, HandoffLoopRule])
def test_self_repeats_are_not_loops(make: Callable[..., LoopRule]) -> None:
    graph = graph_of(_run(["researcher"] * 20)[1])
    assert make(max_repeats=1).evaluate(graph) == []


@pytest.mark.parametrize("make", [PingPongRule, HandoffLoopRule])
def test_a_legitimate_retry_does_not_fire(make: Callable[..., LoopRule]) -> None:
    # The same agent twice in a row, and a handoff back once (A → B → A), with default bounds.
    names = ["planner", "researcher", "researcher", "writer", "researcher", "writer", "done"]
    assert make().evaluate(graph_of(_run(names)[1])) == []


def test_two_agent_cycles_are_ping_pong_and_longer_ones_handoff_loops() -> None:
    two = graph_of(_run(["s", "r"] * 5)[1])
    three = graph_of(_run(["a", "b", "c"] * 5)[1])
    assert [d.type for d in PingPongRule().evaluate(two)] == ["ping_pong"]
    assert HandoffLoopRule().evaluate(two) == []
    assert PingPongRule().evaluate(three) == []
    (loop,) = HandoffLoopRule().evaluate(three)
    assert loop.type == "handoff_loop"
    assert loop.details["cycle"] == ["a", "b", "c"]


def test_bound_is_configurable() -> None:
    spans = _run(["s", "r"] * 3)[1]
    assert PingPongRule(max_repeats=3).evaluate(graph_of(spans)) == []
    assert len(PingPongRule(max_repeats=2).evaluate(graph_of(spans))) == 1


def test_cycles_longer_than_the_limit_are_ignored() -> None:
    spans = _run(["a", "b", "c", "d", "e"] * 5)[1]
    assert HandoffLoopRule(max_repeats=3, max_cycle_length=4).evaluate(graph_of(spans)) == []
    (found,) = HandoffLoopRule(max_repeats=3, max_cycle_length=5).evaluate(graph_of(spans))
    assert found.details["cycle_length"] == 5


def test_loop_after_a_healthy_prefix_reports_only_the_loop_spans() -> None:
    _, spans = _run(["planner", "writer", "s", "r", "s", "r", "s", "r", "s", "r", "done"])
    (found,) = PingPongRule(max_repeats=3).evaluate(graph_of(spans))
    assert found.agent == "s"
    assert found.span_ids == tuple(s.span_id for s in spans[3:11])


def test_distinct_loops_in_one_trace_are_reported_separately() -> None:
    _, spans = _run(["a", "b"] * 4 + ["x", "y", "z"] * 4 + ["p", "q", "r"] * 4)
    graph = graph_of(spans)
    (pong,) = PingPongRule(max_repeats=3).evaluate(graph)
    loops = HandoffLoopRule(max_repeats=3).evaluate(graph)
    assert pong.details["cycle"] == ["a", "b"]
    assert sorted(str(d.details["cycle"]) for d in loops) == [
        str(["p", "q", "r"]),
        str(["x", "y", "z"]),
    ]
    assert len({d.id for d in [pong, *loops]}) == 3


def test_each_trace_is_judged_on_its_own() -> None:
    rule = PingPongRule(max_repeats=3)
    one = rule.evaluate(graph_of(_run(["s", "r"] * 4)[1]))
    two = rule.evaluate(graph_of(_run(["s", "r"] * 4)[1]))
    assert len(one) == len(two) == 1
    assert one[0].id != two[0].id


def test_forget_allows_reporting_again() -> None:
    rule = PingPongRule(max_repeats=3)
    graph = graph_of(_run(["s", "r"] * 4)[1])
    assert len(rule.evaluate(graph)) == 1
    rule.forget(graph.trace_id)
    assert len(rule.evaluate(graph)) == 1


def test_memory_of_reports_is_bounded() -> None:
    rule = PingPongRule(max_repeats=1, max_remembered=1)
    first = graph_of(_run(["s", "r"] * 2)[1])
    second = graph_of(_run(["s", "r"] * 2)[1])
    assert len(rule.evaluate(first)) == 1
    assert len(rule.evaluate(second)) == 1
    assert len(rule.evaluate(first)) == 1  # forgotten, so reported again


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_repeats": 0},
        {"max_cycle_length": 1},
        {"max_remembered": 0},
        {"settle_seconds": -1.0},
    ],
)
def test_bad_bounds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(DetectionError):
        HandoffLoopRule(**kwargs)  # type: ignore[arg-type]
    if "max_cycle_length" not in kwargs:
        with pytest.raises(DetectionError):
            PingPongRule(**kwargs)  # type: ignore[arg-type]


def test_detection_time_comes_from_the_clock() -> None:
    rule = PingPongRule(max_repeats=1, clock=lambda: 1234)
    (found,) = rule.evaluate(graph_of(_run(["s", "r"] * 2)[1]))
    assert found.detected_at_ns == 1234


def _evaluate_per_batch(
    make: Callable[[], LoopRule], batches: list[list[SpanRecord]]
) -> tuple[list[Detection], list[Detection]]:
    """Evaluate each snapshot with an incremental rule and with a rule scanning it whole."""
    builder = GraphBuilder()
    incremental, whole = make(), make()
    found: tuple[list[Detection], list[Detection]] = ([], [])
    for batch in batches:
        for trace_id in builder.add(batch):
            graph = builder.get(trace_id)
            assert graph is not None
            found[0].extend(incremental.evaluate(graph))
            found[1].extend(whole.evaluate(replace(graph, visits=None)))  # scans from 0
    return found


def _long_run(step_ns: int) -> list[SpanRecord]:
    rng = random.Random(2)
    f = SpanFactory(step_ns=step_ns)
    root = f.workflow("w", run_id="run-long")
    # 1,500 agent spans: healthy supervisor traffic with loops buried at different depths.
    names: list[str] = []
    for _ in range(300):
        names += ["supervisor", rng.choice(["a", "b", "c", "d", "e"])]
    names[200:200] = ["x", "y"] * 6
    names[900:900] = ["p", "q", "r"] * 5
    spans = [f.agent(name, parent=root) for name in names]
    return [*spans, timed(root, root.start_ns, spans[-1].end_ns + step_ns)]


@pytest.mark.parametrize("arrival", ["in_order", "shuffled", "lagged"])
@pytest.mark.parametrize("make", [PingPongRule, HandoffLoopRule])
def test_incremental_evaluation_finds_what_a_whole_evaluation_finds(
    arrival: str, make: Callable[..., LoopRule]
) -> None:
    spans = _long_run(SECOND)
    if arrival == "lagged":  # spans arrive when they end, up to 4 s late
        batches = arrivals(spans, random_lag(7, 4 * SECOND))
    else:
        order = spans[:]
        if arrival == "shuffled":
            random.Random(5).shuffle(order)
        batches = [order[i : i + 7] for i in range(0, len(order), 7)]
    incremental, whole = _evaluate_per_batch(lambda: make(max_repeats=3, clock=lambda: 1), batches)
    assert incremental == whole
    cycles = {str(d.details["cycle"]) for d in whole}
    assert cycles >= ({str(["x", "y"])} if make is PingPongRule else {str(["p", "q", "r"])})
    assert all(d.details["cycle_length"] == (2 if make is PingPongRule else 3) for d in whole)


def _nested_supervisor(
    rounds: list[str], *, run_id: str = "run-n", turn_ns: int = SECOND
) -> list[SpanRecord]:
    """Each supervisor turn is a span containing the worker it hands to."""
    f = SpanFactory()
    root = f.workflow("nested", run_id=run_id)
    t = root.start_ns
    spans: list[SpanRecord] = []
    for worker in rounds:
        supervisor = timed(f.agent("supervisor", parent=root), t, t + turn_ns)
        child = timed(f.agent(worker, parent=supervisor), t + turn_ns // 10, t + turn_ns * 9 // 10)
        spans += [supervisor, child]
        t += turn_ns
    return [*spans, timed(root, root.start_ns, t)]


def _fired_per_batch(rule: LoopRule, batches: list[list[SpanRecord]]) -> list[Detection]:
    builder = GraphBuilder()
    found: list[Detection] = []
    for batch in batches:
        for trace_id in builder.add(batch):
            graph = builder.get(trace_id)
            assert graph is not None
            found.extend(rule.evaluate(graph))
    return found


def test_supervisor_spans_arriving_after_their_workers_do_not_fake_a_ping_pong() -> None:
    # The supervisor (and the workflow around it) runs in another process, whose exporter lags
    # 3 s behind the workers': for a while the graph holds only a, b, a, b… (the known weakness
    # of judging live runs).
    spans = _nested_supervisor(["a", "b"] * 12, turn_ns=SECOND // 4)
    workers = {
        s.span_id for s in spans if s.attributes.get(semconv.GEN_AI_AGENT_NAME) in ("a", "b")
    }

    def lag(span: SpanRecord) -> int:
        return 0 if span.span_id in workers else 3 * SECOND

    batches = arrivals(spans, lag)
    assert _fired_per_batch(PingPongRule(), batches) == []  # settled part only
    assert _fired_per_batch(HandoffLoopRule(), batches) == []
    # Judging the unsettled graph is what fired before: the test can tell.
    assert [d.type for d in _fired_per_batch(PingPongRule(settle_seconds=0), batches)] == [
        "ping_pong"
    ]
    # Settled, the run is the healthy supervisor pattern.
    assert PingPongRule().evaluate(graph_of(spans)) == []


def _sibling_supervisor(rounds: list[str]) -> list[SpanRecord]:
    """The supervisor and its workers are sibling spans, one per second (LangGraph style)."""
    f = SpanFactory(step_ns=SECOND)
    root = f.workflow("siblings", run_id="run-s")
    spans = [f.agent(name, parent=root) for w in rounds for name in ("supervisor", w)]
    spans.append(f.agent("supervisor", parent=root))
    return [*spans, timed(root, root.start_ns, spans[-1].end_ns + SECOND)]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("shape", [_nested_supervisor, _sibling_supervisor])
def test_supervisor_pattern_never_fires_under_lagged_arrival(
    seed: int, shape: Callable[[list[str]], list[SpanRecord]]
) -> None:
    spans = shape(["a", "b", "c"] * 5)  # S→A→S→B→S→C, five times over
    batches = arrivals(spans, random_lag(seed, 4 * SECOND))
    assert len(batches) > 10
    assert _fired_per_batch(PingPongRule(max_repeats=1), batches) == []
    assert _fired_per_batch(HandoffLoopRule(max_repeats=1), batches) == []


def test_a_live_loop_is_reported_once_settled_without_waiting_for_the_run_to_end() -> None:
    f = SpanFactory(step_ns=SECOND)
    root = f.workflow("w", run_id="run-live")
    agents = [f.agent(name, parent=root) for name in ["s", "r"] * 10]
    rule = PingPongRule(max_repeats=3, settle_seconds=5.0)
    builder = GraphBuilder()
    fired_at: list[int] = []
    for i, span in enumerate(agents):  # one span per cycle, the root never arrives
        (trace_id,) = builder.add([span])
        graph = builder.get(trace_id)
        assert graph is not None
        assert not graph.complete
        if rule.evaluate(graph):
            fired_at.append(i)
    # The 4th repetition ends with span 7; it is settled once a span ending 5 s later is in.
    assert fired_at == [12]


@pytest.mark.parametrize("make", [PingPongRule, HandoffLoopRule])
def test_the_finding_does_not_depend_on_arrival_order(make: Callable[..., LoopRule]) -> None:
    _, spans = _run(["a", "b"] * 5 + ["x", "y", "z"] * 5)
    forward = _fired_per_batch(make(clock=lambda: 1), [spans[i : i + 3] for i in range(0, 40, 3)])
    backward = spans[::-1]
    reverse = _fired_per_batch(
        make(clock=lambda: 1), [backward[i : i + 3] for i in range(0, 40, 3)]
    )
    assert len(forward) == len(reverse) == 1
    assert forward[0].id == reverse[0].id
