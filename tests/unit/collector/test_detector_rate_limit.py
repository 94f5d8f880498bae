"""Rate-limit storms: 429s for one provider/model across runs, one detection per episode."""

from __future__ import annotations

import json

import pytest
from _nodes import chat, cycle, step

from agentmesh.collector.detectors.base import StatefulDetector
from agentmesh.collector.detectors.rate_limit import (
    RATE_LIMIT_STORM,
    RateLimitStormDetector,
    is_rate_limited,
)
from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError


def limited(run: str, t: float, model: str = "gpt-4o") -> GraphNode:
    return chat(run, t, 0.2, model=model, error=True, http_status=429)


def storm(start: float, runs: list[str], model: str = "gpt-4o") -> list[GraphNode]:
    return [limited(run, start + i, model) for i, run in enumerate(runs)]


def test_is_a_stateful_detector() -> None:
    assert isinstance(RateLimitStormDetector(), StatefulDetector)


def test_a_storm_across_runs_is_reported_once() -> None:
    detector = RateLimitStormDetector()
    first = storm(0, ["r1", "r2", "r3", "r1"])
    assert detector.observe(cycle(first)) == []  # 4 < 5
    tipping = storm(4, ["r2"])
    [found] = detector.observe(cycle(tipping))
    assert found.type == RATE_LIMIT_STORM
    assert found.details["events"] == 5
    assert found.details["runs"] == ["r1", "r2", "r3"]
    assert found.details["model"] == "gpt-4o"
    assert "openai/gpt-4o" in found.explanation
    assert "5 HTTP 429" in found.explanation
    assert set(found.span_ids) == {n.span_id for n in first + tipping}
    # the same storm goes on: no new detection
    assert detector.observe(cycle(storm(5, ["r4", "r5", "r1", "r2", "r3"] * 3))) == []
    [episode] = detector.open_episodes()
    assert episode.detection_id == found.id
    assert episode.events == 20


def test_one_run_retrying_is_not_a_storm() -> None:
    detector = RateLimitStormDetector()
    assert detector.observe(cycle(storm(0, ["r1"] * 12))) == []
    # a single 429 in another run, once the retries are a window old, is not a storm either
    assert detector.observe(cycle([limited("r2", 45)])) == []


def test_429s_spread_wider_than_the_window_are_not_a_storm() -> None:
    detector = RateLimitStormDetector(window_seconds=30)
    nodes = [limited(f"r{i}", i * 10.0) for i in range(20)]  # 3-4 per window
    assert detector.observe(cycle(nodes)) == []


def test_other_models_and_errors_do_not_count() -> None:
    detector = RateLimitStormDetector()
    runs = ["r1", "r2", "r3", "r4", "r5", "r6"]
    nodes = [limited(run, i, model=f"m{i % 2}") for i, run in enumerate(runs)]  # 3 per model
    nodes += [chat(run, 7 + i, error=True, http_status=500) for i, run in enumerate(runs)]
    tool = step("r1", "t1", semconv.Operation.EXECUTE_TOOL, "search", 1, 1)
    nodes.append(tool._replace(error=True, http_status=429))
    assert detector.observe(cycle(nodes)) == []


def test_error_types_naming_a_rate_limit_count() -> None:
    assert is_rate_limited(chat("r", 0, error=True, error_type="RateLimitError"))
    assert is_rate_limited(chat("r", 0, error=True, error_type="rate_limit_exceeded"))
    assert is_rate_limited(chat("r", 0, error=True, error_type="Too Many Requests"))
    assert not is_rate_limited(chat("r", 0, error=True, error_type="APITimeoutError"))
    assert not is_rate_limited(chat("r", 0, error=True, http_status=503, error_type="ratelimit"))
    assert not is_rate_limited(chat("r", 0, http_status=429))  # did not fail
    detector = RateLimitStormDetector(min_events=3)
    nodes = [
        chat(run, i, error=True, error_type="RateLimitError")
        for i, run in enumerate(["a", "b", "c"])
    ]
    assert len(detector.observe(cycle(nodes))) == 1


def test_a_new_episode_after_a_quiet_window_is_reported_again() -> None:
    detector = RateLimitStormDetector(window_seconds=30)
    [first] = detector.observe(cycle(storm(0, ["r1", "r2", "r3", "r4", "r5"])))
    [second] = detector.observe(cycle(storm(100, ["r6", "r7", "r8", "r9", "r10"])))
    assert first.id != second.id
    assert second.details["episode_start_ns"] > first.details["episode_start_ns"]  # type: ignore[operator]


def test_replaying_the_same_spans_gives_the_same_id() -> None:
    nodes = storm(0, ["r1", "r2", "r3", "r4", "r5"])
    [a] = RateLimitStormDetector(clock=lambda: 1).observe(cycle(nodes))
    [b] = RateLimitStormDetector(clock=lambda: 2).observe(cycle(nodes))
    assert a.id == b.id


def test_snapshot_restore_round_trip() -> None:
    detector = RateLimitStormDetector()
    detector.observe(cycle(storm(0, ["r1", "r2", "r3", "r4"])))
    restored = RateLimitStormDetector()
    restored.restore(json.loads(json.dumps(detector.snapshot())))
    assert restored.snapshot() == detector.snapshot()
    [found] = restored.observe(cycle(storm(4, ["r5"])))
    assert found.details["events"] == 5
    # an open episode survives too: the storm is not reported again after a restart
    again = RateLimitStormDetector()
    again.restore(json.loads(json.dumps(restored.snapshot())))
    assert again.observe(cycle(storm(6, ["r6", "r7"]))) == []
    assert [e.detection_id for e in again.open_episodes()] == [found.id]


def test_restore_rejects_garbage() -> None:
    with pytest.raises(DetectionError):
        RateLimitStormDetector().restore({"keys": [{"provider": "p"}]})
    with pytest.raises(DetectionError):
        RateLimitStormDetector().restore({"keys": "nope"})


def test_memory_is_bounded() -> None:
    detector = RateLimitStormDetector(max_keys=3, max_events=10, min_events=5)
    for m in range(10):
        detector.observe(cycle([limited("r1", 0.1 * m, model=f"m{m}")]))
    assert len(detector.snapshot()["keys"]) == 3  # type: ignore[arg-type]
    detector.observe(cycle([limited("r1", 0.01 * i, model="m9") for i in range(100)]))
    [key] = [k for k in detector.snapshot()["keys"] if k["model"] == "m9"]  # type: ignore[union-attr,index]
    assert len(key["events"]) == 10  # type: ignore[index,arg-type]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(DetectionError):
        RateLimitStormDetector(window_seconds=0)
    with pytest.raises(DetectionError):
        RateLimitStormDetector(min_events=10, max_events=5)


def test_a_busy_model_answering_a_few_429s_is_not_a_storm() -> None:
    detector = RateLimitStormDetector(min_fraction=0.1)
    nodes: list[GraphNode] = []
    for i in range(3000):  # 100 calls a second, one in 25 refused
        run, t = f"r{i % 40}", i * 0.01
        nodes.append(limited(run, t) if i % 25 == 0 else chat(run, t, 0.2))
    assert detector.observe(cycle(nodes)) == []
    # then most calls are refused: that is a storm
    storm_nodes = [
        limited(f"r{i % 40}", 30 + i * 0.01) if i % 2 else chat(f"r{i % 40}", 30 + i * 0.01, 0.2)
        for i in range(400)
    ]
    [found] = detector.observe(cycle(storm_nodes))
    assert found.details["min_fraction"] == 0.1
    assert found.details["events"] >= 0.1 * found.details["calls"]  # type: ignore[operator]


def test_a_storm_of_an_unnamed_model_says_so() -> None:
    detector = RateLimitStormDetector()
    nodes = [
        chat(run, i, 0.2, model=None, error=True, http_status=429)
        for i, run in enumerate(["r1", "r2", "r3", "r4", "r5"])
    ]
    [found] = detector.observe(cycle(nodes))
    assert "rate-limit storm on openai/unknown model:" in found.explanation
