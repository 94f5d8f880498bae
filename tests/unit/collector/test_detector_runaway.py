import itertools
import json
import random

import pytest

from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors import RunawayDetector, StatefulDetector
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import DetectorFeed, SpanFactory, cycle_of, with_attributes
from agentmesh.core import DetectionError, semconv

SECOND = 1_000_000_000
_runs = itertools.count(1)


def _run(
    costs: list[float],
    *,
    workflow: str = "research",
    tokens: int = 1000,
    budget: float | None = None,
) -> tuple[str, SpanRecord, list[SpanRecord], SpanRecord]:
    """A run: (run id, the agent span, its chat spans, the root span that completes it).

    The chat spans carry the run id (as baggage puts it on every span); the first of them
    comes after the workflow's start marker, which names the workflow while the run goes on.
    """
    run_id = f"r-{next(_runs)}"
    f = SpanFactory()
    root = f.workflow(workflow, run_id=run_id)
    agent = f.agent("researcher", parent=root, run_id=run_id)
    chats = [
        with_attributes(
            f.chat(parent=agent, input_tokens=tokens, output_tokens=tokens // 10, cost_usd=cost),
            {semconv.AGENTMESH_RUN_ID: run_id},
        )
        for cost in costs
    ]
    chats.insert(0, f.marker(root))
    if budget is not None:
        attributes = {semconv.AGENTMESH_RUN_BUDGET_USD: budget}
        agent = with_attributes(agent, attributes)
        chats = [with_attributes(chat, attributes) for chat in chats]
    return run_id, agent, chats, root


def _complete(
    feed: DetectorFeed, costs: list[float], *, workflow: str = "research"
) -> list[Detection]:
    _, agent, chats, root = _run(costs, workflow=workflow)
    return [*feed([*chats, agent]), *feed([root])]


def test_crossing_the_run_budget_fires_at_that_llm_call_while_the_run_goes_on() -> None:
    run_id, agent, chats, root = _run([0.1] * 10, budget=0.45)
    detector = RunawayDetector(clock=lambda: 5)
    feed = DetectorFeed(detector)
    assert feed(chats[:3]) == []  # the workflow's start marker and two calls
    (found,) = feed(chats[3:6])  # the fifth call took it over 0.45
    assert found.type == detector.name == "runaway"
    assert found.severity == "critical"
    assert found.span_ids == (chats[5].span_id,)
    assert found.run_id == run_id
    assert found.detected_at_ns == 5
    assert found.explanation == (
        f"run {run_id} has cost $0.5000 so far, over its budget of $0.4500"
    )
    assert found.details["basis"] == "budget"
    assert found.details["budget_usd"] == 0.45
    assert feed([*chats[6:], agent, root]) == []  # once per run


def test_a_run_within_budget_does_not_fire() -> None:
    _, agent, chats, root = _run([0.1] * 4, budget=0.45)
    assert RunawayDetector().observe(cycle_of([*chats, agent, root])) == []


def test_a_budget_known_only_late_still_fires_and_the_smallest_budget_wins() -> None:
    _, agent, chats, root = _run([0.2] * 3)
    feed = DetectorFeed(RunawayDetector())
    assert feed(chats) == []
    limited = with_attributes(agent, {semconv.AGENTMESH_RUN_BUDGET_USD: 0.5})
    root = with_attributes(root, {semconv.AGENTMESH_RUN_BUDGET_USD: 5.0})
    (found,) = feed([root, limited])
    assert found.details["limit_usd"] == 0.5


def test_caps_for_every_run() -> None:
    _, agent, chats, root = _run([0.3] * 4, tokens=10_000)
    spans = [*chats, agent, root]
    assert RunawayDetector().observe(cycle_of(spans)) == []
    (cost,) = RunawayDetector(max_run_cost_usd=1.0).observe(cycle_of(spans))
    assert cost.details["limit_usd"] == 1.0
    (tokens,) = RunawayDetector(max_run_tokens=40_000).observe(cycle_of(spans))
    assert tokens.details["limit_tokens"] == 40_000
    assert "44,000 tokens" in tokens.explanation


@pytest.mark.parametrize("seed", [1, 2])
def test_the_budget_finding_does_not_depend_on_arrival_order(seed: int) -> None:
    _, agent, chats, root = _run([0.1] * 8, budget=0.35)
    order = [*chats, agent]
    random.Random(seed).shuffle(order)
    feed = DetectorFeed(RunawayDetector())
    found = [d for i in range(0, len(order), 2) for d in feed(order[i : i + 2])]
    found += feed([root])
    (in_order,) = RunawayDetector().observe(cycle_of([*chats, agent, root]))
    assert [d.id for d in found] == [in_order.id]


def _learn(
    feed: DetectorFeed, runs: int, rng: random.Random, *, workflow: str = "research"
) -> None:
    # Clean runs: 5 to 10 calls (x2 in length) of 0.01 to 0.02 dollars each.
    for _ in range(runs):
        costs = [rng.uniform(0.01, 0.02) for _ in range(rng.randint(5, 10))]
        assert _complete(feed, costs, workflow=workflow) == []


def test_no_norm_verdict_before_enough_completed_runs() -> None:
    detector = RunawayDetector(min_runs=20)
    feed = DetectorFeed(detector)
    _learn(feed, 19, random.Random(1))
    _, agent, chats, _ = _run([0.02] * 200)
    assert feed([agent, *chats]) == []  # 4 dollars, but only 19 runs to compare with
    norm = detector.norm("research")
    assert norm is not None
    assert norm.runs == 19


def test_a_run_far_over_its_workflows_norm_fires_while_live() -> None:
    detector = RunawayDetector(min_runs=20)
    feed = DetectorFeed(detector)
    _learn(feed, 40, random.Random(2))
    norm = detector.norm("research")
    assert norm is not None
    run_id, agent, chats, _ = _run([0.02] * 60)
    found = feed([agent])  # the run is live: its root never arrives
    for i in range(0, 61, 5):
        found += feed(chats[i : i + 5])
    (runaway,) = found
    assert runaway.severity == "error"
    assert runaway.details["basis"] == "norm"
    assert runaway.details["metric"] == "cost_usd"
    # The call whose cost took the run over the threshold.
    crossed = next(i for i in range(60) if 0.02 * (i + 1) > norm.cost_threshold)
    assert runaway.span_ids == (chats[1 + crossed].span_id,)
    assert runaway.explanation.startswith(f"run {run_id} has cost $")
    assert "completed runs of workflow research (threshold $" in runaway.explanation
    assert norm.cost_threshold == pytest.approx(3 * sorted(norm.costs)[37], rel=0.1)


def test_clean_runs_with_realistic_variation_never_fire() -> None:
    rng = random.Random(3)
    feed = DetectorFeed(RunawayDetector(min_runs=20))
    _learn(feed, 300, rng)  # judged from the 21st run on: none fires


def test_runaway_runs_do_not_teach_the_norm_and_workflows_are_apart() -> None:
    detector = RunawayDetector(min_runs=5)
    feed = DetectorFeed(detector)
    _learn(feed, 10, random.Random(4))
    assert len(_complete(feed, [1.0] * 5)) == 1  # far over: reported, not learned
    norm = detector.norm("research")
    assert norm is not None
    assert norm.runs == 10
    assert _complete(feed, [1.0] * 5, workflow="other") == []  # no history for "other"
    assert detector.norm("other") is not None


def test_runs_of_unnamed_workflows_have_no_norm() -> None:
    detector = RunawayDetector(min_runs=1)
    f = SpanFactory()
    root = f.span("root")  # no workflow name anywhere
    chat = f.chat(parent=root, cost_usd=1.0)
    assert detector.observe(cycle_of([chat, root])) == []
    assert detector.snapshot() == {"version": 1, "workflows": {}}


def test_snapshot_and_restore_round_trip() -> None:
    detector = RunawayDetector(min_runs=20)
    assert isinstance(detector, StatefulDetector)
    feed = DetectorFeed(detector)
    _learn(feed, 25, random.Random(5))
    _learn(feed, 3, random.Random(6), workflow="triage")
    state = json.loads(json.dumps(detector.snapshot()))
    restored = RunawayDetector(min_runs=20)
    restored.restore(state)
    assert restored.snapshot() == detector.snapshot()
    before, after = detector.norm("research"), restored.norm("research")
    assert before is not None
    assert after is not None
    assert (after.cost_threshold, after.token_threshold) == (
        before.cost_threshold,
        before.token_threshold,
    )
    # The restored detector judges as the original does.
    _, agent, chats, _ = _run([0.05] * 40)
    assert len(DetectorFeed(restored)([agent, *chats])) == 1


@pytest.mark.parametrize(
    "state",
    [
        {"version": 2, "workflows": {}},
        {"version": 1},
        {"version": 1, "workflows": {"w": {"cost": [1.0]}}},
        {"version": 1, "workflows": {"w": {"cost": ["x"], "tokens": [1]}}},
    ],
)
def test_restore_refuses_what_it_cannot_read(state: dict[str, object]) -> None:
    with pytest.raises(DetectionError):
        RunawayDetector().restore(state)  # type: ignore[arg-type]


def test_memory_is_bounded() -> None:
    detector = RunawayDetector(max_traces=4, max_workflows=2)
    feed = DetectorFeed(detector)
    for i in range(3):
        _complete(feed, [0.01], workflow=f"w{i}")
    assert detector.norm("w0") is None  # the least recently completed workflow went first
    assert detector.norm("w2") is not None
    feed.tick(advance_ns=31 * SECOND)
    assert detector.runs_held == 0  # finished runs forgotten after the linger time
    for _ in range(10):
        feed(_run([0.01])[2])
    assert detector.runs_held == 4
    feed.tick(advance_ns=601 * SECOND)
    assert detector.runs_held == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"min_runs": 0}, {"min_runs": 30, "window": 20}, {"p95_factor": 0.5}, {"max_workflows": 0}],
)
def test_bad_bounds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(DetectionError):
        RunawayDetector(**kwargs)  # type: ignore[arg-type]
