"""Provider outages: server-side errors or a latency jump for one model across runs."""

from __future__ import annotations

import json
import random

import pytest
from _nodes import chat, cycle

from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import StatefulDetector
from agentmesh.collector.detectors.outage import (
    PROVIDER_OUTAGE,
    PROVIDER_RECOVERED,
    ProviderOutageDetector,
    is_client_error,
)
from agentmesh.collector.graph.node import GraphNode
from agentmesh.core.errors import DetectionError


def ok(run: str, t: float, latency: float = 1.0, model: str = "gpt-4o") -> GraphNode:
    return chat(run, t, latency, model=model)


def failed(
    run: str, t: float, status: int | None = 503, error_type: str | None = None
) -> GraphNode:
    return chat(run, t, 0.1, error=True, http_status=status, error_type=error_type)


def feed(detector: ProviderOutageDetector, nodes: list[GraphNode]) -> list[Detection]:
    found: list[Detection] = []
    for node in nodes:  # one span per cycle, as under light load
        found += detector.observe(cycle([node]))
    return found


def healthy(n: int, start: float = 0.0, seed: int = 1, jitter: float = 0.3) -> list[GraphNode]:
    rng = random.Random(seed)
    return [ok(f"r{i % 7}", start + i * 0.5, rng.lognormvariate(0.0, jitter)) for i in range(n)]


def test_is_a_stateful_detector() -> None:
    assert isinstance(ProviderOutageDetector(), StatefulDetector)


def test_server_errors_across_runs_open_one_episode_and_recovery_closes_it() -> None:
    detector = ProviderOutageDetector()
    assert feed(detector, healthy(40)) == []
    outage = [failed(f"r{i % 3}", 20 + i * 0.5) for i in range(30)]
    [found] = feed(detector, outage)
    assert found.type == PROVIDER_OUTAGE
    assert found.severity == "error"
    assert found.details["reason"] == "errors"
    assert found.details["model"] == "gpt-4o"
    assert found.details["provider"] == "openai"
    assert found.details["runs"] == ["r0", "r1", "r2"]
    assert "openai/gpt-4o" in found.explanation
    [episode] = detector.open_episodes()
    assert episode.detection_id == found.id
    # two successes are not yet a recovery; a failure in between restarts the count
    assert feed(detector, [ok("r1", 40), ok("r2", 41), failed("r1", 42)]) == []
    [recovered] = feed(detector, [ok("r1", 43), ok("r2", 44), ok("r3", 45)])
    assert recovered.type == PROVIDER_RECOVERED
    assert recovered.severity == "info"
    assert recovered.details["outage_detection_id"] == found.id
    assert detector.open_episodes() == []
    # the failures of the ended episode do not open another one
    assert feed(detector, healthy(10, start=46)) == []


def test_rate_limits_and_client_errors_are_not_an_outage() -> None:
    detector = ProviderOutageDetector()
    nodes = [failed(f"r{i % 4}", i, status=429) for i in range(20)]
    nodes += [failed(f"r{i % 4}", 20 + i, status=400) for i in range(20)]
    nodes += [failed(f"r{i % 4}", 40 + i, None, "BadRequestError") for i in range(20)]
    nodes += [failed(f"r{i % 4}", 60 + i, None, "RateLimitError") for i in range(20)]
    assert feed(detector, nodes) == []
    assert is_client_error(failed("r", 0, status=404))
    assert not is_client_error(failed("r", 0, status=408))
    assert not is_client_error(failed("r", 0, None, "APITimeoutError"))
    assert is_client_error(failed("r", 0, None, "context_length_exceeded"))


def test_timeouts_and_connection_errors_are_an_outage() -> None:
    detector = ProviderOutageDetector()
    nodes = [failed(f"r{i % 2}", i, None, "APIConnectionError") for i in range(3)]
    nodes += [failed(f"r{i % 2}", 3 + i, None, "APITimeoutError") for i in range(3)]
    [found] = feed(detector, nodes)
    assert found.details["failures"] == 6


def test_one_run_retrying_a_failing_call_is_not_an_outage() -> None:
    detector = ProviderOutageDetector()
    assert feed(detector, [failed("r1", i) for i in range(20)]) == []


def test_a_few_random_errors_are_not_an_outage() -> None:
    rng = random.Random(7)
    detector = ProviderOutageDetector()
    nodes = [
        failed(f"r{i % 50}", i * 0.1)
        if rng.random() < 0.03
        else ok(f"r{i % 50}", i * 0.1, rng.lognormvariate(0, 0.4))
        for i in range(5000)
    ]
    assert feed(detector, nodes) == []


def test_a_latency_jump_across_runs_is_an_outage() -> None:
    detector = ProviderOutageDetector()
    assert feed(detector, healthy(100)) == []
    assert detector.baseline_median("openai", "gpt-4o") == pytest.approx(1.0, rel=0.2)
    slow = [ok(f"r{i % 3}", 50 + i, 9.0 + i * 0.1) for i in range(20)]
    [found] = feed(detector, slow)
    assert found.details["reason"] == "latency"
    assert "median latency" in found.explanation
    # slow calls are not learned as the new normal
    assert detector.baseline_median("openai", "gpt-4o") == pytest.approx(1.0, rel=0.2)
    [recovered] = feed(detector, [ok("r1", 80), ok("r2", 81), ok("r3", 82)])
    assert recovered.type == PROVIDER_RECOVERED
    assert recovered.details["reason"] == "latency"


def test_latency_jitter_and_a_few_slow_calls_are_not_an_outage() -> None:
    detector = ProviderOutageDetector()
    nodes = healthy(5000, jitter=0.5, seed=3)
    nodes += [ok("r1", 3000 + i, 20.0) for i in range(5)]  # one run's slow calls
    assert feed(detector, nodes) == []


def test_replaying_the_same_spans_gives_the_same_id() -> None:
    nodes = [failed(f"r{i % 3}", i) for i in range(6)]
    [a] = feed(ProviderOutageDetector(clock=lambda: 1), nodes)
    [b] = feed(ProviderOutageDetector(clock=lambda: 2), nodes)
    assert a.id == b.id


def test_snapshot_restore_round_trip_keeps_baseline_and_open_episode() -> None:
    detector = ProviderOutageDetector()
    feed(detector, healthy(100))
    [found] = feed(detector, [failed(f"r{i % 3}", 60 + i) for i in range(12)])
    state = json.loads(json.dumps(detector.snapshot()))
    restored = ProviderOutageDetector()
    restored.restore(state)
    assert restored.snapshot() == detector.snapshot()
    assert restored.baseline_median("openai", "gpt-4o") == detector.baseline_median(
        "openai", "gpt-4o"
    )
    assert [e.detection_id for e in restored.open_episodes()] == [found.id]
    assert feed(restored, [failed("r5", 80)]) == []  # same episode: not reported again
    [recovered] = feed(restored, [ok("r1", 81), ok("r2", 82), ok("r3", 83)])
    assert recovered.details["outage_detection_id"] == found.id


def test_restore_rejects_garbage() -> None:
    with pytest.raises(DetectionError):
        ProviderOutageDetector().restore({"lines": [{"provider": "p", "model": "m"}]})
    with pytest.raises(DetectionError):
        ProviderOutageDetector().restore(
            {
                "lines": [
                    {
                        "provider": "p",
                        "model": "m",
                        "recent": [],
                        "baseline": [],
                        "episode": ["x", 1, "d"],
                    }
                ]
            }
        )


def test_memory_is_bounded() -> None:
    detector = ProviderOutageDetector(max_keys=4, max_calls=10, baseline_size=50, min_baseline=10)
    feed(detector, [ok("r1", i * 0.1, model=f"m{i % 9}") for i in range(900)])
    lines = detector.snapshot()["lines"]
    assert isinstance(lines, list)
    assert len(lines) == 4
    for line in lines:
        assert isinstance(line, dict)
        assert len(line["recent"]) <= 10  # type: ignore[arg-type]
        assert len(line["baseline"]) <= 50  # type: ignore[arg-type]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(DetectionError):
        ProviderOutageDetector(min_calls=30, max_calls=20)
    with pytest.raises(DetectionError):
        ProviderOutageDetector(error_rate=0)
    with pytest.raises(DetectionError):
        ProviderOutageDetector(latency_factor=1)
