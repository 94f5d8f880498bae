"""Detector state survives a restart through a JSON file; bad state: a cold start, not a crash."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agentmesh.collector import MemoryStore, Pipeline
from agentmesh.collector.detection import Detection, JsonValue
from agentmesh.collector.detectors.base import CycleView, StatefulDetector
from agentmesh.collector.detectors.state_store import (
    STATE_FORMAT,
    DetectorStateStore,
    FileStateBackend,
    default_state_path,
)
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import CollectorError


class AgentBaseline:
    """A small but real stateful detector: a running mean of each agent's step duration."""

    def __init__(self, name: str = "agent_baseline") -> None:
        self.name = name
        self.counts: dict[str, int] = {}
        self.means: dict[str, float] = {}

    def observe(self, cycle: CycleView) -> list[Detection]:
        for node in cycle.nodes:
            if node.agent is None or node.operation != "invoke_agent":
                continue
            n = self.counts.get(node.agent, 0) + 1
            mean = self.means.get(node.agent, 0.0)
            self.counts[node.agent] = n
            self.means[node.agent] = mean + (node.duration_ns - mean) / n
        return []

    def tick(self, now_ns: int) -> list[Detection]:
        return []

    def snapshot(self) -> dict[str, JsonValue]:
        return {
            "schema": 1,
            "agents": {a: {"n": n, "mean_ns": self.means[a]} for a, n in self.counts.items()},
        }

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        if state.get("schema") != 1:
            raise ValueError(f"unknown schema {state.get('schema')!r}")
        agents = state["agents"]
        if not isinstance(agents, dict):
            raise TypeError("agents is not an object")
        self.counts, self.means = {}, {}
        for agent, entry in agents.items():
            if not isinstance(entry, dict):
                raise TypeError(f"entry of {agent} is not an object")
            n, mean = entry["n"], entry["mean_ns"]
            if not isinstance(n, int) or not isinstance(mean, int | float):
                raise TypeError(f"entry of {agent} is malformed")
            self.counts[agent] = n
            self.means[agent] = float(mean)


class Stateless:
    """A detector without learned state: the store leaves it alone."""

    name = "stateless"

    def observe(self, cycle: CycleView) -> list[Detection]:
        return []

    def tick(self, now_ns: int) -> list[Detection]:
        return []


async def _trained(detector: AgentBaseline, runs: int = 3) -> AgentBaseline:
    async with Pipeline(MemoryStore(), detectors=[detector]) as pipeline:
        for _ in range(runs):
            f = SpanFactory()
            root = f.workflow("w")
            assert pipeline.offer(
                [root, f.agent("planner", parent=root), f.agent("coder", parent=root)]
            )
        await pipeline.drain()
    assert detector.counts == {"planner": runs, "coder": runs}
    return detector


def test_fake_detector_is_a_stateful_detector() -> None:
    assert isinstance(AgentBaseline(), StatefulDetector)
    assert not isinstance(Stateless(), StatefulDetector)


async def test_restart_restores_an_identical_snapshot(tmp_path: Path) -> None:
    path = default_state_path(tmp_path / "agentmesh.duckdb")
    trained = await _trained(AgentBaseline())
    async with DetectorStateStore([trained, Stateless()], FileStateBackend(path)) as store:
        assert store.names == ["agent_baseline"]
    document = json.loads(path.read_text())
    assert document["format"] == STATE_FORMAT
    assert document["detectors"]["agent_baseline"]["state"] == trained.snapshot()
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left

    fresh = AgentBaseline()
    async with DetectorStateStore([fresh], FileStateBackend(path)) as again:
        assert fresh.snapshot() == trained.snapshot()
        assert again.saves == 0
    assert fresh.counts == {"planner": 3, "coder": 3}


async def test_saves_only_what_changed_and_keeps_other_detectors_entries(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    other = AgentBaseline("other")
    other.counts, other.means = {"x": 1}, {"x": 5.0}
    async with DetectorStateStore([other], FileStateBackend(path)):
        pass
    detector = AgentBaseline()
    async with DetectorStateStore([detector], FileStateBackend(path)) as store:
        assert await store.save() == 1
        assert await store.save() == 0  # unchanged: nothing written
        await _trained(detector, runs=1)
        assert await store.save() == 1
    saved = json.loads(path.read_text())["detectors"]
    assert sorted(saved) == ["agent_baseline", "other"]
    assert saved["other"]["state"] == other.snapshot()
    assert saved["agent_baseline"]["state"] == detector.snapshot()


async def test_saves_periodically_while_running(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    detector = await _trained(AgentBaseline(), runs=1)  # trained before the first period
    async with DetectorStateStore(
        [detector], FileStateBackend(path), interval_seconds=0.02
    ) as store:
        async with asyncio.timeout(10):
            while store.saves == 0:  # noqa: ASYNC110 - a counter has no event to await
                await asyncio.sleep(0.01)
        assert json.loads(path.read_text())["detectors"]["agent_baseline"]["state"]["agents"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "someone-else", "detectors": {}}', "not an AgentMesh detector state file"),
        ("[1, 2]", "not an AgentMesh detector state file"),
    ],
)
async def test_corrupt_or_foreign_file_means_a_cold_start(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    detector = AgentBaseline()
    with capture_logs() as logs:
        async with DetectorStateStore([detector], FileStateBackend(path)) as store:
            assert detector.counts == {}
            assert store.failures == 1
    (error,) = [e for e in logs if e["event"].startswith("detector state not loaded")]
    assert reason in error["reason"]
    assert json.loads(path.read_text())["format"] == STATE_FORMAT  # a good file again
    (aside,) = [n for n in os.listdir(tmp_path) if n.startswith("state.json.unreadable-")]
    assert (tmp_path / aside).read_text() == content  # the bad one kept, not overwritten


def _file_with(path: Path, name: str, envelope: object) -> None:
    path.write_text(
        json.dumps({"format": STATE_FORMAT, "version": 1, "detectors": {name: envelope}})
    )


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        ("a string", "not a JSON object"),
        (
            {"format": STATE_FORMAT, "version": 99, "detector": "agent_baseline", "state": {}},
            "version",
        ),
        ({"format": STATE_FORMAT, "version": 1, "detector": "spikes", "state": {}}, "'spikes'"),
        ({"format": STATE_FORMAT, "version": 1, "detector": "agent_baseline", "state": 3}, "state"),
    ],
)
async def test_foreign_envelope_means_a_cold_start(
    tmp_path: Path, envelope: object, reason: str
) -> None:
    path = tmp_path / "state.json"
    _file_with(path, "agent_baseline", envelope)
    detector = AgentBaseline()
    with capture_logs() as logs:
        async with DetectorStateStore([detector], FileStateBackend(path)) as store:
            assert await store.restore() == []
    assert detector.counts == {}
    warnings = [e for e in logs if e["event"].startswith("saved detector state is unreadable")]
    assert warnings
    assert reason in warnings[0]["reason"]


async def test_state_the_detector_refuses_leaves_it_cold(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    half_valid = {"schema": 1, "agents": {"planner": {"n": 2, "mean_ns": 10.0}, "coder": 7}}
    _file_with(
        path,
        "agent_baseline",
        {"format": STATE_FORMAT, "version": 1, "detector": "agent_baseline", "state": half_valid},
    )
    detector = AgentBaseline()
    with capture_logs() as logs:
        store = DetectorStateStore([detector], FileStateBackend(path))
        assert await store.restore() == []
    assert detector.snapshot() == {"schema": 1, "agents": {}}  # not half restored
    assert any(e["event"].startswith("detector refused its saved state") for e in logs)


async def test_an_unwritable_path_is_logged_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    detector = await _trained(AgentBaseline(), runs=1)
    with capture_logs() as logs:
        async with DetectorStateStore(
            [detector], FileStateBackend(blocker / "state.json")
        ) as store:
            assert await store.save() == 0
        assert store.failures >= 2  # the save above and the one on leaving
    assert any(e["event"] == "detector state not saved" for e in logs)


def test_rejects_duplicate_names_and_bad_intervals(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "s.json")
    with pytest.raises(CollectorError, match="same name"):
        DetectorStateStore([AgentBaseline(), AgentBaseline()], backend)
    with pytest.raises(CollectorError, match="positive"):
        DetectorStateStore([AgentBaseline()], backend, interval_seconds=0)
