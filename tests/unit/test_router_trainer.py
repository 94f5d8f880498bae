"""The router trainer: routed calls and feedback in, the route table's predictor and stats out."""

from __future__ import annotations

import dataclasses

import pytest

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.node import GraphNode, graph_node
from agentmesh.collector.model import SpanEventRecord, SpanRecord
from agentmesh.collector.routing.outcomes import DETECTION_PENALTY
from agentmesh.collector.routing.table_state import MemoryRouteTableState
from agentmesh.collector.routing.trainer import RouterTrainer
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import semconv

pytestmark = pytest.mark.asyncio


def _call(
    f: SpanFactory,
    model: str,
    decision: str,
    *,
    ok: bool = True,
    cluster: int = 2,
    fell_back_from: str | None = None,
    score: float | None = None,
) -> SpanRecord:
    attributes: dict[str, object] = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.AGENTMESH_ROUTE_DECISION_ID: decision,
        semconv.AGENTMESH_ROUTE_MODE: "enforce",
        semconv.AGENTMESH_ROUTE_CHOSEN: model,
        semconv.AGENTMESH_ROUTE_TASK_CLASS: "triage",
        semconv.AGENTMESH_ROUTE_FEATURES: f'{{"total_chars":12,"cluster":{cluster}}}',
        semconv.AGENTMESH_COST_USD: 0.001,
    }
    if score is not None:
        attributes[semconv.AGENTMESH_FEEDBACK_SCORE] = score
    span = f.span(
        f"chat {model}",
        attributes=attributes,  # pyright: ignore[reportArgumentType]
        duration_ns=400_000_000,
        kind="client",
        status_code="ok" if ok else "error",
    )
    if fell_back_from is not None:
        event = SpanEventRecord(
            semconv.EVENT_FALLBACK,
            span.start_ns,
            {
                semconv.AGENTMESH_ROUTE_FALLBACK_FROM: fell_back_from,
                semconv.AGENTMESH_ROUTE_FALLBACK_TO: model,
                semconv.ERROR_TYPE: "InternalServerError",
            },
        )
        span = dataclasses.replace(span, events=[event])
    return span


def _nodes(*spans: SpanRecord) -> list[GraphNode]:
    return [graph_node(s) for s in spans]


async def test_routed_calls_train_the_predictor_and_the_model_stats() -> None:
    f = SpanFactory()
    async with (
        MemoryRouteTableState() as state,
        RouterTrainer(state, publish_interval_s=0.01) as trainer,
    ):
        trainer.observe_nodes(
            _nodes(
                _call(f, "gpt-4o-mini", "d1"),
                _call(f, "gpt-4o-mini", "d2", ok=False),
                _call(f, "gpt-4o", "d3", fell_back_from="gpt-4o-mini"),
                f.span("plain span"),
            )
        )
        table = await trainer.publish_now()
    mini = table.models["gpt-4o-mini"]
    assert (mini.calls, mini.errors) == (3, 2)  # d1 ok, d2 failed, d3's failed first attempt
    assert mini.latency_p50_s == pytest.approx(0.4)
    big = table.models["gpt-4o"]
    assert (big.calls, big.errors, big.cost_mean_usd) == (1, 0, pytest.approx(0.001))
    assert table.predictor is not None
    assert trainer.outcomes == 4
    small, large = trainer.predictor.quality.predict("triage", 2, ("gpt-4o-mini", "gpt-4o"))
    assert small.quality < large.quality
    assert small.evidence == 3


async def test_feedback_and_detections_correct_earlier_outcomes() -> None:
    f = SpanFactory()
    async with (
        MemoryRouteTableState() as state,
        RouterTrainer(state, publish_interval_s=0.01) as trainer,
    ):
        call = _call(f, "gpt-4o-mini", "d1")
        trainer.observe_nodes(_nodes(call, _call(f, "gpt-4o-mini", "d2")))
        (before,) = trainer.predictor.quality.predict("triage", 2, ("gpt-4o-mini",))
        feedback = f.span(
            "agentmesh.feedback",
            attributes={
                semconv.AGENTMESH_ROUTE_DECISION_ID: "d2",
                semconv.AGENTMESH_FEEDBACK_SCORE: 0.0,
            },
        )
        trainer.observe_nodes(_nodes(feedback))
        (after_feedback,) = trainer.predictor.quality.predict("triage", 2, ("gpt-4o-mini",))
        assert after_feedback.quality < before.quality
        assert after_feedback.evidence == before.evidence  # corrected, not counted twice
        detection = Detection(
            "det-1", "tool_loop", "warning", call.trace_id, "run", None,
            (call.span_id,), "looped", 0,
        )  # fmt: skip
        await trainer.on_detection(detection)
        (after,) = trainer.predictor.quality.predict("triage", 2, ("gpt-4o-mini",))
        assert after.quality < after_feedback.quality
        table = await trainer.publish_now()
    assert table.models["gpt-4o-mini"].quality_mean == pytest.approx((1.0 - DETECTION_PENALTY) / 2)


async def test_span_level_feedback_sets_the_quality_and_restart_resumes_from_the_table() -> None:
    f = SpanFactory()
    async with MemoryRouteTableState() as state:
        async with RouterTrainer(state, publish_interval_s=0.01) as trainer:
            trainer.observe_nodes(_nodes(_call(f, "m", "d1", score=0.25)))
            await trainer.publish_now()
        published = state.published.version
        async with RouterTrainer(state, publish_interval_s=0.01) as again:
            (p,) = again.predictor.quality.predict("triage", 2, ("m",))
            assert p.evidence == 1
            assert again.predictor.quality.to_dict()["models"]["m"][0] == pytest.approx(0.25)
            again.observe_nodes(_nodes(_call(f, "m", "d2")))
        assert state.published.version > published  # unpublished outcomes go out on exit
        assert state.published.models["m"].calls == 2


async def test_the_background_loop_publishes_after_outcomes() -> None:
    f = SpanFactory()
    async with MemoryRouteTableState() as state:
        start = state.published.version
        async with RouterTrainer(state, publish_interval_s=0.01) as trainer:
            trainer.observe_nodes(_nodes(_call(f, "m", "d1")))
            table = await state.wait_for(start, 5.0)
        assert table is not None
        assert table.models["m"].calls == 1
