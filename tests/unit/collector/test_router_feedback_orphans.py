"""Feedback that comes before its routing decision: held, applied late, or dropped as an orphan."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from agentmesh.collector.graph.node import GraphNode, graph_node
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.routing.table_state import MemoryRouteTableState
from agentmesh.collector.routing.trainer import RouterTrainer, make_router_trainer
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import semconv
from agentmesh.core.errors import ConfigError

pytestmark = pytest.mark.asyncio

_GRACE = 600.0


class _Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _call(f: SpanFactory, decision: str, model: str = "m") -> GraphNode:
    span = f.span(
        f"chat {model}",
        attributes={
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_REQUEST_MODEL: model,
            semconv.AGENTMESH_ROUTE_DECISION_ID: decision,
            semconv.AGENTMESH_ROUTE_CHOSEN: model,
            semconv.AGENTMESH_ROUTE_TASK_CLASS: "triage",
            semconv.AGENTMESH_ROUTE_FEATURES: '{"cluster":1}',
        },
        kind="client",
    )
    return graph_node(span)


def _feedback(f: SpanFactory, decision: str, score: float) -> GraphNode:
    span: SpanRecord = f.span(
        "agentmesh.feedback",
        attributes={
            semconv.AGENTMESH_ROUTE_DECISION_ID: decision,
            semconv.AGENTMESH_FEEDBACK_SCORE: score,
        },
    )
    return graph_node(span)


def _quality(trainer: RouterTrainer, model: str = "m") -> float:
    (prediction,) = trainer.predictor.quality.predict("triage", 1, (model,))
    return prediction.quality


def _dropped(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "router.feedback_orphans_dropped"]


async def test_a_score_before_its_decision_is_applied_when_the_decision_arrives_in_time() -> None:
    f, clock = SpanFactory(), _Clock()
    async with MemoryRouteTableState() as state:
        trainer = RouterTrainer(state, feedback_grace_s=_GRACE, clock=clock)
        trainer.observe_nodes([_feedback(f, "d-early", 0.0)])
        assert trainer.feedback_held == 1
        clock.now += _GRACE - 1
        assert trainer.expire_feedback() == 0  # still within the grace period
        trainer.observe_nodes([_call(f, "d-early")])
        assert (trainer.feedback_held, trainer.feedback_joined_late) == (0, 1)
        assert trainer.feedback_orphans_expired == 0
        table = await trainer.publish_now()

        on_time = RouterTrainer(state, feedback_grace_s=_GRACE)  # the usual order, for reference
        on_time.observe_nodes([_call(f, "d-usual"), _feedback(f, "d-usual", 0.0)])
    assert table.models["m"].quality_mean == pytest.approx(0.0)  # the score, not the assumed 1.0
    assert table.models["m"].calls == 1  # corrected, not counted twice
    assert _quality(trainer) == pytest.approx(_quality(on_time))


async def test_a_score_in_the_same_cycle_before_its_call_is_applied() -> None:
    f = SpanFactory()
    async with MemoryRouteTableState() as state:
        trainer = RouterTrainer(state)
        trainer.observe_nodes([_feedback(f, "d1", 0.2), _call(f, "d1")])
        table = await trainer.publish_now()
    assert table.models["m"].quality_mean == pytest.approx(0.2)
    assert trainer.feedback_held == 0


async def test_the_latest_score_held_for_a_decision_wins() -> None:
    f = SpanFactory()
    async with MemoryRouteTableState() as state:
        trainer = RouterTrainer(state)
        trainer.observe_nodes([_feedback(f, "d1", 0.9), _feedback(f, "d1", 0.3)])
        assert trainer.feedback_held == 1
        trainer.observe_nodes([_call(f, "d1")])
        table = await trainer.publish_now()
    assert table.models["m"].quality_mean == pytest.approx(0.3)


async def test_orphans_expire_after_the_grace_period_counted_and_logged_once_per_sweep() -> None:
    f, clock = SpanFactory(), _Clock()
    async with MemoryRouteTableState() as state:
        trainer = RouterTrainer(state, feedback_grace_s=_GRACE, clock=clock)
        trainer.observe_nodes([_feedback(f, "d-old", 0.1), _feedback(f, "d-older-twin", 0.1)])
        clock.now += 10
        trainer.observe_nodes([_feedback(f, "d-young", 0.1)])
        clock.now += _GRACE - 5  # the first two are past the grace period, the last is not
        with capture_logs() as logs:
            assert trainer.expire_feedback() == 2
        (entry,) = _dropped(logs)
        assert entry["log_level"] == "warning"
        assert (entry["expired"], entry["evicted"]) == (2, 0)
        assert entry["oldest_decision_id"] == "d-old"
        assert (trainer.feedback_held, trainer.feedback_orphans_expired) == (1, 2)

        with capture_logs() as logs:
            assert trainer.expire_feedback() == 0
        assert not _dropped(logs)  # nothing dropped: nothing logged

        trainer.observe_nodes([_call(f, "d-old"), _call(f, "d-young")])  # too late, in time
        table = await trainer.publish_now()
    assert trainer.feedback_joined_late == 1
    assert table.models["m"].quality_mean == pytest.approx((1.0 + 0.1) / 2)


async def test_the_scores_held_are_capped_and_what_the_cap_drops_is_counted() -> None:
    f, clock = SpanFactory(), _Clock()
    async with MemoryRouteTableState() as state:
        trainer = RouterTrainer(state, feedback_grace_s=_GRACE, max_held_feedback=3, clock=clock)
        with capture_logs() as logs:
            trainer.observe_nodes([_feedback(f, f"d{i}", 0.0) for i in range(5)])
        assert not _dropped(logs)  # reported by the next sweep, not per score
        assert (trainer.feedback_held, trainer.feedback_orphans_evicted) == (3, 2)
        with capture_logs() as logs:
            assert trainer.expire_feedback() == 0
        (entry,) = _dropped(logs)
        assert (entry["expired"], entry["evicted"], entry["oldest_decision_id"]) == (0, 2, "d0")
        trainer.observe_nodes([_call(f, "d0"), _call(f, "d4")])  # d0 was evicted, d4 held
        table = await trainer.publish_now()
    assert trainer.feedback_joined_late == 1
    assert table.models["m"].quality_mean == pytest.approx(0.5)


async def test_the_pipeline_ticks_sweep_a_tenth_of_the_grace_period_apart() -> None:
    f, clock = SpanFactory(), _Clock()
    async with MemoryRouteTableState() as state:
        trainer = RouterTrainer(state, feedback_grace_s=_GRACE, clock=clock)
        trainer.observe_nodes([_feedback(f, "d1", 0.5)])
        clock.now += _GRACE + 1
        observer = trainer.observer
        second = 1_000_000_000
        assert observer.tick(0) == []  # the first tick only schedules
        observer.tick(59 * second)
        assert trainer.feedback_held == 1
        observer.tick(60 * second)
        assert (trainer.feedback_held, trainer.feedback_orphans_expired) == (0, 1)


async def test_the_grace_period_is_a_collector_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_ROUTER_FEEDBACK_GRACE_SECONDS", "30")
    settings = CollectorSettings.load()
    assert settings.router_feedback_grace_seconds == 30.0
    assert CollectorSettings.model_fields["router_feedback_grace_seconds"].default == 600.0
    async with MemoryRouteTableState() as state:
        trainer = make_router_trainer(settings, state)
        assert trainer is not None
        assert trainer.feedback_grace_s == 30.0
        with pytest.raises(ConfigError):
            RouterTrainer(state, feedback_grace_s=0.0)
    monkeypatch.setenv("AGENTMESH_COLLECTOR_ROUTER_FEEDBACK_GRACE_SECONDS", "0")
    with pytest.raises(ConfigError, match="ROUTER_FEEDBACK_GRACE_SECONDS"):
        CollectorSettings.load()
