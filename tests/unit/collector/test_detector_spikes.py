"""Latency, token and cost spikes per (agent, model, task class)."""

from __future__ import annotations

import json
import random

import pytest
from _nodes import chat, cycle, marker, new_id, step

from agentmesh.collector.anomaly import AdaptiveSpikeModel
from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import StatefulDetector
from agentmesh.collector.detectors.spikes import (
    COST_SPIKE,
    LATENCY_SPIKE,
    TOKEN_SPIKE,
    SpikeDetector,
)
from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError


class Run:
    """A run of one agent step (announced by its start marker) making model calls."""

    def __init__(self, name: str, agent: str = "researcher", task_class: str = "qa") -> None:
        self.name = name
        self.agent_span = new_id()
        self.task_class = task_class
        self.marker = marker(name, self.agent_span, 0.0, agent=agent, task_class=task_class)

    def call(
        self, t: float, latency: float = 1.0, tokens: int = 1000, cost: float = 0.01
    ) -> GraphNode:
        return chat(
            self.name,
            t,
            latency,
            parent=self.agent_span,
            input_tokens=tokens * 3 // 4,
            output_tokens=tokens - tokens * 3 // 4,
            cost_usd=cost,
        )


def clean_runs(
    detector: SpikeDetector, runs: int, calls: int = 5, seed: int = 1
) -> list[Detection]:
    """Runs whose calls vary like real ones: latency jitter, tokens and cost within 2x."""
    rng = random.Random(seed)
    found: list[Detection] = []
    for r in range(runs):
        run = Run(f"clean-{seed}-{r}")
        nodes = [run.marker]
        for c in range(calls):
            scale = rng.uniform(0.6, 1.6)
            nodes.append(
                run.call(
                    r * 10 + c,
                    latency=rng.uniform(0.6, 1.8),
                    tokens=int(1000 * scale),
                    cost=0.01 * scale,
                )
            )
        found += detector.observe(cycle(nodes))
    return found


def test_is_a_stateful_detector() -> None:
    assert isinstance(SpikeDetector(), StatefulDetector)


def test_a_slow_call_is_a_latency_spike_of_its_agent() -> None:
    detector = SpikeDetector()
    assert clean_runs(detector, 20) == []
    run = Run("slow")
    [found] = detector.observe(cycle([run.marker, run.call(500, latency=12.0)]))
    assert found.type == LATENCY_SPIKE
    assert found.agent == "researcher"
    assert found.run_id == "slow"
    assert found.details["task_class"] == "qa"
    assert found.details["model"] == "gpt-4o"
    assert found.details["ratio"] > 5  # type: ignore[operator]
    assert "researcher" in found.explanation
    assert "12.00 s" in found.explanation
    # more slow calls of the same run and key: one finding per run
    assert detector.observe(cycle([run.call(520, latency=15.0)])) == []
    # another run's spike is its own finding
    other = Run("slow-2")
    [again] = detector.observe(cycle([other.marker, other.call(540, latency=14.0)]))
    assert again.id != found.id


def test_token_and_cost_spikes() -> None:
    detector = SpikeDetector()
    clean_runs(detector, 20)
    run = Run("big")
    found = detector.observe(cycle([run.marker, run.call(500, tokens=20_000, cost=0.3)]))
    assert sorted(d.type for d in found) == [COST_SPIKE, TOKEN_SPIKE]
    tokens = next(d for d in found if d.type == TOKEN_SPIKE)
    assert "20,000 tokens" in tokens.explanation


def test_legitimate_variation_is_silent() -> None:
    detector = SpikeDetector()
    assert clean_runs(detector, 400, seed=2) == []
    # twice the usual tokens and latency, or far less, is not a spike either
    run = Run("double")
    nodes = [run.marker, run.call(9000, latency=2.4, tokens=2000, cost=0.02)]
    nodes.append(run.call(9001, latency=0.05, tokens=10, cost=0.0001))
    assert detector.observe(cycle(nodes)) == []


def test_cold_start_is_silent() -> None:
    detector = SpikeDetector()
    run = Run("new")
    values = [1.0, 30.0, 0.5, 60.0, 2.0, 90.0, 1.0, 120.0]
    nodes = [run.marker] + [
        run.call(i, latency=v, tokens=int(v * 100)) for i, v in enumerate(values)
    ]
    assert detector.observe(cycle(nodes)) == []


def test_agents_have_their_own_norms() -> None:
    detector = SpikeDetector()
    clean_runs(detector, 20)  # researcher: ~1000 tokens per call
    rng = random.Random(3)
    for r in range(20):  # writer: ~10,000 tokens per call
        run = Run(f"writer-{r}", agent="writer")
        nodes = [run.marker] + [
            run.call(r * 10 + c, tokens=int(rng.uniform(8000, 12000))) for c in range(5)
        ]
        assert detector.observe(cycle(nodes)) == []
    assert detector.normal("tokens", "writer", "gpt-4o", "qa") == pytest.approx(10_000, rel=0.2)
    assert detector.normal("tokens", "researcher", "gpt-4o", "qa") == pytest.approx(1050, rel=0.2)


def test_a_call_below_a_tool_is_its_agents_once_the_tool_span_arrives() -> None:
    detector = SpikeDetector(idle_seconds=600)
    run = Run("nested", agent="planner")
    tool_span = new_id()
    call = chat("nested", 5, 1.0, parent=tool_span, task_class=None)
    detector.observe(cycle([run.marker, call]))
    assert detector.normal("latency", "planner", "gpt-4o", "qa") is None  # no guess
    tool = step("nested", tool_span, semconv.Operation.EXECUTE_TOOL, "search", 4, 3)
    detector.observe(cycle([tool._replace(parent_id=run.agent_span)]))
    assert detector.normal("latency", "planner", "gpt-4o", "qa") == pytest.approx(1.0)
    # no marker, parent never arrives: the call counts for no agent once its run is idle
    orphan = chat("orphan", 5, 2.0, parent=new_id(), task_class="qa")
    detector.observe(cycle([orphan]))
    assert detector.normal("latency", None, "gpt-4o", "qa") is None
    detector.tick(orphan.end_ns + 601_000_000_000)
    assert detector.normal("latency", None, "gpt-4o", "qa") == pytest.approx(2.0)
    # an agent span that already arrived attributes its late calls too
    agent_span = step("late", "a1", semconv.Operation.INVOKE_AGENT, "critic", 0, 3)
    detector.observe(cycle([agent_span, chat("late", 1, 1.5, parent="a1", task_class="qa")]))
    assert detector.normal("latency", "critic", "gpt-4o", "qa") == pytest.approx(1.5)


def test_failed_calls_and_other_spans_are_ignored() -> None:
    detector = SpikeDetector()
    nodes = [chat("r", i, 100.0, error=True, error_type="Timeout") for i in range(50)]
    nodes += [
        step("r", f"t{i}", semconv.Operation.EXECUTE_TOOL, "search", i, 100.0) for i in range(50)
    ]
    assert detector.observe(cycle(nodes)) == []
    assert detector.snapshot()["keys"] == [] or all(
        not k["streams"]
        for k in detector.snapshot()["keys"]  # type: ignore[index,union-attr]
    )


def test_snapshot_restore_round_trip() -> None:
    detector = SpikeDetector()
    clean_runs(detector, 20)
    restored = SpikeDetector()
    restored.restore(json.loads(json.dumps(detector.snapshot())))
    assert restored.snapshot() == detector.snapshot()
    assert restored.normal("latency", "researcher", "gpt-4o", "qa") == detector.normal(
        "latency", "researcher", "gpt-4o", "qa"
    )
    run = Run("after-restart")
    [found] = restored.observe(cycle([run.marker, run.call(500, latency=20.0)]))
    assert found.type == LATENCY_SPIKE


def test_restore_rejects_garbage() -> None:
    with pytest.raises(DetectionError):
        SpikeDetector().restore({"keys": [{"agent": 3}]})
    with pytest.raises(DetectionError):
        SpikeDetector().restore(
            {
                "keys": [
                    {
                        "agent": None,
                        "model": "m",
                        "task_class": None,
                        "streams": {"latency": {"ring": [], "model": {"kind": "?"}}},
                    }
                ]
            }
        )


def test_memory_is_bounded() -> None:
    detector = SpikeDetector(max_keys=5, max_steps=10, max_traces=10, max_reported=3, ring_size=32)
    for i in range(200):
        run = Run(f"m-{i}", agent=f"agent-{i}")
        detector.observe(cycle([run.marker] + [run.call(i + c * 0.1) for c in range(40)]))
    keys = detector.snapshot()["keys"]
    assert isinstance(keys, list)
    assert len(keys) == 5
    for key in keys:
        assert isinstance(key, dict)
        streams = key["streams"]
        assert isinstance(streams, dict)
        for stream in streams.values():
            assert len(stream["baseline"]["ring"]) <= 32  # type: ignore[index,arg-type,call-overload]
    assert len(detector._steps) <= 10
    assert len(detector._traces) <= 10


def test_only_chosen_metrics_are_followed() -> None:
    detector = SpikeDetector(metrics=["tokens"])
    clean_runs(detector, 20)
    run = Run("slow-only")
    assert detector.observe(cycle([run.marker, run.call(500, latency=30.0)])) == []
    assert detector.normal("latency", "researcher", "gpt-4o", "qa") is None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(DetectionError):
        SpikeDetector(metrics=["speed"])  # type: ignore[list-item]
    with pytest.raises(DetectionError):
        SpikeDetector(min_ratio=1.0)
    with pytest.raises(DetectionError):
        SpikeDetector(min_samples=100, ring_size=64)


def test_another_anomaly_model_can_score() -> None:
    def factory() -> AdaptiveSpikeModel:
        return AdaptiveSpikeModel(warmup=20, rest=0, log_scale=True, upward_only=True)

    detector = SpikeDetector(metrics=["latency"], model_factory=factory)
    assert clean_runs(detector, 20) == []
    restored = SpikeDetector(metrics=["latency"], model_factory=factory)
    restored.restore(json.loads(json.dumps(detector.snapshot())))
    assert restored.snapshot() == detector.snapshot()
    run = Run("slow")
    for d in (detector, restored):
        found = d.observe(cycle([run.marker, run.call(500, latency=50.0)]))
        assert [x.type for x in found] == [LATENCY_SPIKE]


def test_an_ended_agent_is_not_blamed_for_later_calls() -> None:
    detector = SpikeDetector()
    run = Run("seq", agent="first")
    ended = step("seq", run.agent_span, semconv.Operation.INVOKE_AGENT, "first", 0, 3)
    detector.observe(cycle([run.marker, ended]))
    # a later call whose parent is unknown (no marker for its agent) is not "first"'s
    later = chat("seq", 5, 1.0, parent=new_id(), task_class="qa")
    detector.observe(cycle([later]))
    detector.tick(later.end_ns + 601_000_000_000)  # its parent never arrived: the run is idle
    assert detector.normal("latency", "first", "gpt-4o", "qa") is None
    assert detector.normal("latency", None, "gpt-4o", "qa") == pytest.approx(1.0)


def _fast_runs(detector: SpikeDetector, runs: int, seed: int = 3) -> None:
    """Calls of a local model server: 3-5 ms, a few hundred tokens."""
    rng = random.Random(seed)
    for r in range(runs):
        run = Run(f"fast-{seed}-{r}")
        calls = [run.call(r * 10 + c, latency=rng.uniform(0.003, 0.005)) for c in range(5)]
        assert detector.observe(cycle([run.marker, *calls])) == []


def test_a_few_milliseconds_slower_is_no_latency_spike() -> None:
    detector = SpikeDetector()
    _fast_runs(detector, 20)
    run = Run("reconnect")  # a fresh process pays for its TCP connection: 40 ms
    assert detector.observe(cycle([run.marker, run.call(500, latency=0.04)])) == []
    slow = Run("stalled")  # a real stall is still one
    [found] = detector.observe(cycle([slow.marker, slow.call(600, latency=0.6)]))
    assert found.type == LATENCY_SPIKE
    assert "took 0.60 s" in found.explanation
    assert found.explanation.endswith("x its usual 4 ms")


def test_the_latency_floor_can_be_lowered() -> None:
    detector = SpikeDetector(min_latency_excess_seconds=0.0)
    _fast_runs(detector, 20)
    run = Run("reconnect")
    [found] = detector.observe(cycle([run.marker, run.call(500, latency=0.04)]))
    assert found.type == LATENCY_SPIKE
    assert "took 40 ms" in found.explanation
    with pytest.raises(DetectionError, match="min_latency_excess_seconds"):
        SpikeDetector(min_latency_excess_seconds=-1.0)
