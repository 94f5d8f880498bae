"""Stuck steps: started (start marker seen), not ended within the bound; innermost only."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from _nodes import cycle, marker, ns, step

from agentmesh.collector import Detection, MemoryStore, Pipeline
from agentmesh.collector.detectors.base import StatefulDetector
from agentmesh.collector.detectors.stuck import STUCK, StuckDetector
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError

Op = semconv.Operation
TICK = 0.05


def ticks(detector: StuckDetector, start: float, end: float) -> list[tuple[float, str]]:
    """Tick every 50 ms from ``start`` to ``end``; return (time, step name) of each finding."""
    found: list[tuple[float, str]] = []
    t = start
    while t <= end:
        found += [(t, str(d.details["step_name"])) for d in detector.tick(ns(t))]
        t = round(t + TICK, 6)
    return found


def nested_run(detector: StuckDetector, run: str = "run-1") -> None:
    """Workflow → agent → tool, each started at 0, 1 and 2 s; none has ended."""
    detector.observe(
        cycle(
            [
                marker(run, "wf", 0.0, workflow="research"),
                marker(run, "ag", 1.0, agent="researcher"),
                marker(run, "tl", 2.0, tool="search"),
            ],
            now=2.0,
        )
    )


def test_is_a_stateful_detector() -> None:
    assert isinstance(StuckDetector(), StatefulDetector)


def test_a_stuck_tool_is_reported_once_naming_the_tool() -> None:
    detector = StuckDetector(default_bound_seconds=120)
    nested_run(detector)
    assert detector.open_steps == 3
    assert ticks(detector, 100, 121.95) == []  # the workflow and agent are overdue, the tool not
    [(t, name)] = ticks(detector, 122.0, 400)
    assert name == "search"
    assert t == pytest.approx(122.0)  # within one tick of crossing the bound


def test_the_detection_explains_the_step_and_its_enclosing_steps() -> None:
    detector = StuckDetector(default_bound_seconds=120)
    nested_run(detector)
    [found] = detector.tick(ns(122.5))
    assert found.type == STUCK
    assert found.severity == "error"
    assert found.run_id == "run-1"
    assert found.agent == "researcher"
    assert found.span_ids[0] == "tl"
    assert found.details["step_kind"] == "tool"
    assert found.details["bound_source"] == "default"
    assert found.details["open_seconds"] == pytest.approx(120.5)
    assert [e["name"] for e in found.details["enclosing"]] == ["research", "researcher"]  # type: ignore[index,union-attr]
    assert "tool search has been running for 120.5 s" in found.explanation
    assert "agent researcher" in found.explanation


@pytest.mark.parametrize("workflow_first", [True, False])
def test_steps_started_in_the_same_nanosecond_report_the_innermost(workflow_first: bool) -> None:
    # A coarse clock (or a fast start) gives the workflow and its agent the same start time;
    # the markers may arrive in any order.
    detector = StuckDetector(default_bound_seconds=3)
    markers = [
        marker("run-1", "wf", 0.0, workflow="slowflow"),
        marker("run-1", "ag", 0.0, agent="slowpoke"),
    ]
    detector.observe(cycle(markers if workflow_first else markers[::-1], now=0.0))
    [found] = detector.tick(ns(3.5))
    assert found.details["step_kind"] == "agent"
    assert found.explanation.startswith("agent slowpoke has been running for 3.5 s")
    assert [e["name"] for e in found.details["enclosing"]] == ["slowflow"]  # type: ignore[index,union-attr]


def test_a_step_that_ends_in_time_is_not_reported() -> None:
    detector = StuckDetector(default_bound_seconds=120)
    nested_run(detector)
    detector.observe(cycle([step("run-1", "tl", Op.EXECUTE_TOOL, "search", 2, 100)], now=102))
    detector.observe(cycle([step("run-1", "ag", Op.INVOKE_AGENT, "researcher", 1, 110)], now=111))
    detector.observe(
        cycle([step("run-1", "wf", Op.INVOKE_WORKFLOW, "research", 0, 115, parent=None)], now=115)
    )
    assert detector.open_steps == 0
    assert ticks(detector, 115, 130) == []
    assert detector.tick(ns(10_000)) == []


def test_a_completed_run_is_forgotten() -> None:
    detector = StuckDetector(default_bound_seconds=120)
    nested_run(detector)
    root = step("run-1", "wf", Op.INVOKE_WORKFLOW, "research", 0, 50, parent=None)
    detector.observe(cycle([root], now=50))
    assert detector.open_steps == 0
    assert detector.tick(ns(500)) == []
    # a late marker of the completed run opens nothing
    detector.observe(cycle([marker("run-1", "late", 60, tool="search")], now=60))
    assert detector.open_steps == 0


def test_a_marker_arriving_after_its_step_opens_nothing() -> None:
    detector = StuckDetector(default_bound_seconds=120)
    detector.observe(
        cycle(
            [
                step("run-2", "tl", Op.EXECUTE_TOOL, "search", 0, 1),
                marker("run-2", "tl", 0.0, tool="search"),
            ]
        )
    )
    assert detector.open_steps == 0
    assert detector.tick(ns(500)) == []


def test_an_overdue_agent_is_reported_once_its_inner_tool_has_ended() -> None:
    detector = StuckDetector(default_bound_seconds=120)
    nested_run(detector)
    detector.observe(cycle([step("run-1", "tl", Op.EXECUTE_TOOL, "search", 2, 110)], now=112))
    [(t, name)] = ticks(detector, 112, 200)
    assert name == "researcher"  # the agent is now the innermost open step, and overdue
    assert t == pytest.approx(121.0)


def test_steps_enclosing_a_reported_step_are_not_reported_again() -> None:
    detector = StuckDetector(default_bound_seconds=120)
    nested_run(detector)
    assert [name for _, name in ticks(detector, 121.9, 122.2)] == ["search"]
    detector.observe(cycle([step("run-1", "tl", Op.EXECUTE_TOOL, "search", 2, 200)], now=202))
    assert ticks(detector, 202, 300) == []  # researcher and research were covered


def test_bounds_are_learned_per_step_name() -> None:
    detector = StuckDetector(default_bound_seconds=120, min_bound_seconds=30, learn_after=20)
    ended = [step("old", f"s{i}", Op.EXECUTE_TOOL, "search", i, 1.0 + i % 3) for i in range(20)]
    detector.observe(cycle(ended, now=30))
    assert detector.bound("tool", "search") == (30.0, "learned")  # max(5 x 3 s, 30 s)
    slow = [step("old", f"w{i}", Op.EXECUTE_TOOL, "fetch", i, 60.0) for i in range(25)]
    detector.observe(cycle(slow, now=90))
    assert detector.bound("tool", "fetch") == (300.0, "learned")
    assert detector.bound("tool", "other") == (120.0, "default")
    detector.observe(
        cycle([marker("new", "t1", 100, tool="search"), marker("new2", "t2", 100, tool="fetch")])
    )
    found = ticks(detector, 129.9, 399.9)
    assert found == [(130.0, "search")]
    [(t, name)] = ticks(detector, 400, 401)
    assert (t, name) == (400.0, "fetch")


def test_idle_runs_are_forgotten() -> None:
    detector = StuckDetector(
        default_bound_seconds=10, min_bound_seconds=5, max_bound_seconds=10, forget_after_seconds=60
    )
    detector.observe(cycle([marker("idle", "s1", 0, agent="a")], now=0))
    assert len(detector.tick(ns(11))) == 1
    assert detector.open_steps == 1
    detector.tick(ns(61))
    assert detector.open_steps == 0


def test_snapshot_restore_round_trip() -> None:
    detector = StuckDetector(default_bound_seconds=120)
    ended = [step("old", f"s{i}", Op.EXECUTE_TOOL, "search", i, 2.0) for i in range(25)]
    detector.observe(cycle(ended, now=30))
    nested_run(detector, "run-9")
    state = json.loads(json.dumps(detector.snapshot()))
    restored = StuckDetector(default_bound_seconds=120)
    restored.restore(state)
    assert restored.snapshot() == detector.snapshot()
    assert restored.open_steps == 3
    assert restored.bound("tool", "search") == (30.0, "learned")
    # the tool started at 2 s with the learned bound of 30 s
    assert [(round(t, 2), n) for t, n in ticks(restored, 31.9, 40)] == [(32.0, "search")]
    # a finding survives the restart: not reported again
    again = StuckDetector(default_bound_seconds=120)
    again.restore(json.loads(json.dumps(restored.snapshot())))
    assert ticks(again, 32, 40) == []


def test_restore_rejects_garbage() -> None:
    with pytest.raises(DetectionError):
        StuckDetector().restore({"durations": {"tool:x": [1]}, "traces": [], "reported": []})
    with pytest.raises(DetectionError):
        StuckDetector().restore({"durations": {}, "traces": [[0, [["t", "s"]]]], "reported": []})


def test_memory_is_bounded() -> None:
    detector = StuckDetector(max_traces=10, max_names=5, durations_kept=20, learn_after=5)
    detector.observe(cycle([marker(f"r{i}", f"s{i}", i, agent="a") for i in range(100)], now=100))
    assert detector.open_steps == 10
    ended = [step("x", f"e{i}", Op.EXECUTE_TOOL, f"tool-{i % 8}", i, 1.0) for i in range(400)]
    detector.observe(cycle(ended, now=500))
    durations = detector.snapshot()["durations"]
    assert isinstance(durations, dict)
    assert len(durations) == 5
    for value in durations.values():
        assert isinstance(value, list)
        assert len(value[1]) <= 20  # type: ignore[arg-type]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(DetectionError):
        StuckDetector(default_bound_seconds=0)
    with pytest.raises(DetectionError):
        StuckDetector(max_bound_seconds=100, forget_after_seconds=50)
    with pytest.raises(DetectionError):
        StuckDetector(learn_after=0)


def test_a_stall_is_not_learned_as_a_normal_duration() -> None:
    detector = StuckDetector(default_bound_seconds=120, learn_after=5)
    ended = [step("old", f"s{i}", Op.EXECUTE_TOOL, "search", i, 2.0) for i in range(5)]
    detector.observe(cycle(ended, now=10))
    assert detector.bound("tool", "search") == (30.0, "learned")
    detector.observe(cycle([marker("r", "t1", 20, tool="search")], now=20))
    assert len(detector.tick(ns(50.1))) == 1
    detector.observe(cycle([step("r", "t1", Op.EXECUTE_TOOL, "search", 20, 600)], now=620))
    assert detector.bound("tool", "search") == (30.0, "learned")  # not 5 x 600 s


async def test_a_pipeline_reports_a_stuck_tool_from_real_spans() -> None:
    heard: list[Detection] = []

    async def listener(detection: Detection) -> None:
        heard.append(detection)

    f = SpanFactory(start_ns=time.time_ns())
    root = f.workflow("research", run_id="run-p")
    tool = f.span(
        "execute_tool search",
        parent=root,
        attributes={
            semconv.GEN_AI_OPERATION_NAME: Op.EXECUTE_TOOL,
            semconv.GEN_AI_TOOL_NAME: "search",
        },
    )
    start = f.span(
        "agentmesh.step.start",
        parent=tool,
        start_ns=tool.start_ns,
        duration_ns=0,
        attributes={
            semconv.AGENTMESH_STEP_STARTED: tool.span_id,
            semconv.GEN_AI_TOOL_NAME: "search",
            semconv.AGENTMESH_RUN_ID: "run-p",
        },
    )
    detector = StuckDetector(
        default_bound_seconds=0.2, min_bound_seconds=0.1, max_bound_seconds=1.0
    )
    async with Pipeline(MemoryStore(), detectors=[detector], on_detection=listener) as pipeline:
        assert pipeline.offer([start])  # the tool started and never ends
        for _ in range(200):
            if heard:
                break
            await asyncio.sleep(0.05)
    [found] = heard
    assert found.type == STUCK
    assert found.run_id == "run-p"
    assert found.details["step_name"] == "search"
    assert found.span_ids == (tool.span_id, start.span_id)
