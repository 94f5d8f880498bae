"""The router trainer: routed calls and feedback in, the route table's predictor and stats out."""

from __future__ import annotations

import dataclasses
import itertools

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


def _fallback(
    f: SpanFactory, chosen: str, chain: list[str], decision: str, *, ok: bool = True
) -> SpanRecord:
    """A call the router sent to ``chosen`` that fell back along ``chain``, as spans are now:
    ``gen_ai.request.model`` names the model sent last."""
    span = _call(f, chain[-1], decision, ok=ok)
    attributes = {**span.attributes, semconv.AGENTMESH_ROUTE_CHOSEN: chosen}
    tried = [chosen, *chain]
    events = [
        SpanEventRecord(
            semconv.EVENT_FALLBACK,
            span.start_ns,
            {
                semconv.AGENTMESH_ROUTE_FALLBACK_FROM: failed,
                semconv.AGENTMESH_ROUTE_FALLBACK_TO: target,
                semconv.ERROR_TYPE: "InternalServerError",
            },
        )
        for failed, target in itertools.pairwise(tried)
    ]
    return dataclasses.replace(span, attributes=attributes, events=events)


async def test_a_fallbacks_answer_is_credited_to_the_model_that_gave_it() -> None:
    f = SpanFactory()
    async with (
        MemoryRouteTableState() as state,
        RouterTrainer(state, publish_interval_s=0.01) as trainer,
    ):
        trainer.observe_nodes(_nodes(_fallback(f, "gpt-4o", ["gpt-4o-mini"], "d1")))
        # every model of the chain failed: the last one tried failed last
        trainer.observe_nodes(_nodes(_fallback(f, "gpt-4o", ["o3", "o4-mini"], "d2", ok=False)))
        table = await trainer.publish_now()
    stats = {m: (s.calls, s.errors) for m, s in table.models.items()}
    assert stats == {"gpt-4o": (2, 2), "gpt-4o-mini": (1, 0), "o3": (1, 1), "o4-mini": (1, 1)}
    assert table.models["gpt-4o-mini"].quality_mean == pytest.approx(1.0)
    # a span recorded before the sent model was named: gen_ai.request.model kept the app's
    old = _call(f, "gpt-4o", "d3")
    old = dataclasses.replace(
        old, attributes={**old.attributes, semconv.AGENTMESH_ROUTE_CHOSEN: "gpt-4o-mini"}
    )
    assert graph_node(old).request_model == "gpt-4o-mini"


async def test_a_detection_type_counts_once_and_feedback_wins_over_detections() -> None:
    f = SpanFactory()
    async with (
        MemoryRouteTableState() as state,
        RouterTrainer(state, publish_interval_s=0.01) as trainer,
    ):
        scored, penalised = _call(f, "m", "d1"), _call(f, "m", "d2")
        trainer.observe_nodes(_nodes(scored, penalised))
        for index, (kind, span) in enumerate(
            [("runaway", penalised), ("runaway", penalised), ("context_loss", penalised)]
        ):
            await trainer.on_detection(
                Detection(
                    f"det-{index}",
                    kind,
                    "warning",
                    span.trace_id,
                    "r",
                    None,
                    (span.span_id,),
                    "x",
                    0,
                )
            )
        feedback = f.span(
            "agentmesh.feedback",
            attributes={
                semconv.AGENTMESH_ROUTE_DECISION_ID: "d1",
                semconv.AGENTMESH_FEEDBACK_SCORE: 0.9,
            },
        )
        trainer.observe_nodes(_nodes(feedback))
        await trainer.on_detection(
            Detection(
                "det-9", "runaway", "warning", scored.trace_id, "r", None, (scored.span_id,), "x", 0
            )
        )
        table = await trainer.publish_now()
    # d2: 1.0 - 2 types x 0.25 = 0.5 (runaway once); d1: the score, the later detection ignored
    assert table.models["m"].quality_mean == pytest.approx((0.5 + 0.9) / 2)


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
