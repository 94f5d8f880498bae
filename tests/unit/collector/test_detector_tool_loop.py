import random

import pytest

from agentmesh.collector.detectors import ToolLoopDetector
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import DetectorFeed, SpanFactory, cycle_of
from agentmesh.core import DetectionError

SECOND = 1_000_000_000


def _calls(
    f: SpanFactory, parent: SpanRecord, results: list[str | None], *, args: str | None = "args-1"
) -> list[SpanRecord]:
    return [
        f.tool("search", parent=parent, args_digest=args, result_digest=result)
        for result in results
    ]


def _run(
    results: list[str | None], *, args: str | None = "args-1"
) -> tuple[SpanFactory, SpanRecord, SpanRecord, list[SpanRecord]]:
    f = SpanFactory()
    root = f.workflow("research", run_id="r-12")
    agent = f.agent("researcher", parent=root, run_id="r-12")
    return f, root, agent, _calls(f, agent, results, args=args)


def test_the_fourth_identical_call_fires_once() -> None:
    f, root, agent, calls = _run(["res-1"] * 6)
    detector = ToolLoopDetector(clock=lambda: 42)
    feed = DetectorFeed(detector)
    assert feed([f.marker(agent), *calls[:3]]) == []
    (found,) = feed([calls[3]])
    assert found.type == detector.name == "tool_loop"
    assert found.severity == "error"
    assert found.span_ids == tuple(c.span_id for c in calls[:4])
    assert found.span_ids[-1] == calls[3].span_id  # the call that tipped it over
    assert found.agent == "researcher"  # known from the agent's start marker
    assert found.run_id == "r-12"
    assert found.detected_at_ns == 42
    assert found.explanation == (
        "tool search called 4 times with the same arguments and the same result in run r-12 "
        "(bound 3)"
    )
    assert found.details["digests"] is True
    assert found.details["arguments_digest"] == "args-1"
    assert found.details["result_digest"] == "res-1"
    assert feed([calls[4], calls[5], agent, root]) == []  # once per run


def test_calls_arriving_together_are_all_counted_in_the_finding() -> None:
    f, _, agent, calls = _run(["res-1"] * 6)
    (found,) = DetectorFeed(ToolLoopDetector())([f.marker(agent), *calls])
    assert found.explanation.startswith("tool search called 6 times with the same arguments")
    assert found.details["calls"] == 6
    assert found.span_ids == tuple(c.span_id for c in calls)
    assert found.details["span_id"] == calls[3].span_id  # the call that tipped it over


def test_calls_whose_results_differ_are_progress() -> None:
    _, root, agent, calls = _run(["pending", "pending", "running", "running", "done", "done"])
    assert ToolLoopDetector().observe(cycle_of([*calls, agent, root])) == []


def test_different_arguments_are_different_calls() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    agent = f.agent("a", parent=root)
    calls = [
        f.tool("search", parent=agent, args_digest=f"args-{i}", result_digest="same")
        for i in range(8)
    ]
    assert ToolLoopDetector().observe(cycle_of([*calls, agent, root])) == []


def test_calls_spread_over_agents_of_the_run_count_together() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    one, two = f.agent("one", parent=root), f.agent("two", parent=root)
    calls = _calls(f, one, ["x"] * 2) + _calls(f, two, ["x"] * 2)
    (found,) = ToolLoopDetector().observe(cycle_of([*calls, one, two, root]))
    assert found.details["calls"] == 4


def test_runs_are_counted_apart() -> None:
    first, second = _run(["x"] * 3), _run(["x"] * 3)
    spans = first[3] + second[3]
    assert ToolLoopDetector().observe(cycle_of(spans)) == []


def test_a_redelivered_span_is_not_counted_twice() -> None:
    _, _, _, calls = _run(["x"] * 3)
    feed = DetectorFeed(ToolLoopDetector())
    assert feed(calls) == []
    assert feed(calls) == []
    assert feed([calls[0]]) == []


def test_the_finding_does_not_depend_on_arrival_order() -> None:
    _, root, agent, calls = _run(["x"] * 5)
    spans = [*calls, agent, root]
    found: list[str] = []
    for seed in (1, 2, 3):
        order = spans[:]
        random.Random(seed).shuffle(order)
        feed = DetectorFeed(ToolLoopDetector())
        detections = [d for i in range(0, len(order), 2) for d in feed(order[i : i + 2])]
        assert len(detections) == 1
        assert len(detections[0].span_ids) == 4
        found.append(detections[0].id)
    assert len(set(found)) == 1


def test_calls_without_digests_fire_only_past_the_higher_bound() -> None:
    _, root, agent, calls = _run([None] * 11, args=None)
    detector = ToolLoopDetector(max_undigested_repeats=10)
    feed = DetectorFeed(detector)
    assert feed([agent, *calls[:10]]) == []
    (found,) = feed([calls[10], root])
    assert found.severity == "warning"
    assert found.details["digests"] is False
    assert found.agent == "researcher"
    assert found.explanation == (
        "tool search called 11 times in one step of agent researcher in run r-12, without "
        "digests to tell progress from a loop (bound 10)"
    )


def test_the_fallback_counts_per_agent_step_and_can_be_turned_off() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    steps = [f.agent("researcher", parent=root) for _ in range(3)]
    calls = [c for step in steps for c in _calls(f, step, [None] * 6, args=None)]
    assert ToolLoopDetector().observe(cycle_of([*calls, *steps])) == []  # 6 per step
    _, _, _, many = _run([None] * 30, args=None)
    assert ToolLoopDetector(max_undigested_repeats=0).observe(cycle_of(many)) == []


def test_failed_calls_without_a_result_are_not_digest_loops() -> None:
    # A flaky tool retried with the same arguments: four failures are a retry policy at work.
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    agent = f.agent("a", parent=root)
    calls = [
        f.tool("fetch", parent=agent, args_digest="same", error_type="TimeoutError")
        for _ in range(4)
    ]
    assert ToolLoopDetector().observe(cycle_of([*calls, agent, root])) == []


def test_finished_runs_are_forgotten() -> None:
    detector = ToolLoopDetector(linger_seconds=30, idle_seconds=600)
    feed = DetectorFeed(detector)
    _, root, agent, calls = _run(["x"] * 2)
    feed([*calls, agent])
    assert detector.runs_held == 1
    feed([root])  # the run completes
    assert detector.runs_held == 1  # kept for late spans
    feed.tick(advance_ns=31 * SECOND)
    assert detector.runs_held == 0
    _, _, _, idle = _run(["x"])
    feed(idle)
    assert detector.runs_held == 1
    feed.tick(advance_ns=601 * SECOND)  # never completed: expired when idle
    assert detector.runs_held == 0


def test_runs_held_are_capped() -> None:
    detector = ToolLoopDetector(max_traces=5)
    feed = DetectorFeed(detector)
    for _ in range(20):
        feed(_run(["x"])[3])
    assert detector.runs_held == 5


def test_calls_per_run_are_capped() -> None:
    _, _, _, calls = _run(["x"] * 10)
    assert ToolLoopDetector(max_calls_per_run=3).observe(cycle_of(calls)) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"max_repeats": 0}, {"max_undigested_repeats": -1}, {"max_calls_per_run": 0}],
)
def test_bad_bounds_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(DetectionError):
        ToolLoopDetector(**kwargs)  # type: ignore[arg-type]
