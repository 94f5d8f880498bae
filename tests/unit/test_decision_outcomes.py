"""outcome_from_span and decision_outcomes on spans built like the collector's model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agentmesh.collector.detection import Detection
from agentmesh.collector.model import AttributeValue, SpanEventRecord, SpanRecord
from agentmesh.collector.pipeline import Pipeline
from agentmesh.collector.routing.feedback import Feedback, feedback_span
from agentmesh.collector.routing.outcomes import (
    DETECTION_PENALTY,
    DecisionOutcome,
    decision_outcomes,
    feedback_score,
    is_decision_span,
    outcome_from_span,
)
from agentmesh.collector.store.memory_store import MemoryStore
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import StoreError, semconv

T0 = 1_800_000_000_000_000_000  # 2027-01-15, in nanoseconds


def _route(decision_id: str, extra: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.AGENTMESH_ROUTE_DECISION_ID: decision_id,
        semconv.AGENTMESH_ROUTE_POLICY: "utility",
        semconv.AGENTMESH_ROUTE_MODE: "enforce",
        semconv.AGENTMESH_ROUTE_REQUESTED_MODEL: "gpt-4o",
        semconv.AGENTMESH_ROUTE_CANDIDATES: ["gpt-4o-mini", "gpt-4o"],
        semconv.AGENTMESH_ROUTE_SCORES: [0.74, 0.61],
        semconv.AGENTMESH_ROUTE_CHOSEN: "gpt-4o-mini",
        semconv.AGENTMESH_ROUTE_REASON: "best utility",
        semconv.AGENTMESH_ROUTE_TASK_CLASS: "triage",
        semconv.AGENTMESH_ROUTE_FEATURES: '{"chars":812,"cluster":7,"has_tools":false}',
        semconv.AGENTMESH_ROUTE_TABLE_VERSION: 42,
        semconv.AGENTMESH_RUN_ID: "run-1",
    }
    attrs.update(extra)
    return attrs


def _call(
    f: SpanFactory,
    decision_id: str = "d-1",
    *,
    parent: SpanRecord | None = None,
    status: str = "unset",
    events: tuple[SpanEventRecord, ...] = (),
    run_id: str | None = "run-1",
    extra: Mapping[str, AttributeValue] | None = None,
) -> SpanRecord:
    attributes = _route(decision_id, extra or {})
    if run_id is None:
        del attributes[semconv.AGENTMESH_RUN_ID]
    span = f.span(
        "chat gpt-4o-mini",
        parent=parent,
        kind="client",
        attributes=attributes,
        duration_ns=1_500_000_000,
        status_code="error" if status == "error" else "unset",
    )
    return replace(span, events=events)


def _fallback(failed: str, to: str, error: str, time_ns: int) -> SpanEventRecord:
    return SpanEventRecord(
        semconv.EVENT_FALLBACK,
        time_ns,
        {
            semconv.AGENTMESH_ROUTE_FALLBACK_FROM: failed,
            semconv.AGENTMESH_ROUTE_FALLBACK_TO: to,
            semconv.ERROR_TYPE: error,
            semconv.AGENTMESH_ROUTE_DECISION_ID: "d-1",
        },
    )


def _detection(
    trace_id: str, type_: str, run_id: str = "run-1", n: int = 0, spans: tuple[str, ...] = ()
) -> Detection:
    return Detection(
        id=f"det-{type_}-{n}",
        type=type_,
        severity="warning",
        trace_id=trace_id,
        run_id=run_id,
        agent=None,
        span_ids=spans,
        explanation=type_,
        detected_at_ns=T0 + n,
    )


def test_success_carries_the_decision_and_the_call() -> None:
    f = SpanFactory(start_ns=T0)
    span = _call(
        f,
        extra={
            semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 812,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 96,
            semconv.AGENTMESH_COST_USD: 0.000412,
        },
    )
    outcome = outcome_from_span(span)
    assert outcome is not None
    assert outcome.decision_id == "d-1"
    assert (outcome.trace_id, outcome.span_id, outcome.run_id) == (
        f.trace_id,
        span.span_id,
        "run-1",
    )
    assert outcome.start_time == T0 / 1e9
    assert (outcome.task_class, outcome.mode, outcome.policy) == ("triage", "enforce", "utility")
    assert (outcome.requested_model, outcome.chosen) == ("gpt-4o", "gpt-4o-mini")
    assert (outcome.model, outcome.provider) == ("gpt-4o-mini-2024-07-18", "openai")
    assert outcome.candidates == ("gpt-4o-mini", "gpt-4o")
    assert outcome.scores == (0.74, 0.61)
    assert outcome.reason == "best utility"
    assert outcome.features == {"chars": 812, "cluster": 7, "has_tools": False}
    assert outcome.table_version == 42
    assert (outcome.error, outcome.error_type) == (False, None)
    assert outcome.latency_s == pytest.approx(1.5)
    assert outcome.cost_usd == pytest.approx(0.000412)
    assert (outcome.input_tokens, outcome.output_tokens) == (812, 96)
    assert (outcome.fallbacks, outcome.detections, outcome.feedback_score) == ((), (), None)
    assert outcome.quality == 1.0
    row = outcome.as_dict()
    assert row["candidates"] == ["gpt-4o-mini", "gpt-4o"]
    assert row["quality"] == 1.0


def test_model_falls_back_to_the_request_model_and_task_class_to_the_run() -> None:
    f = SpanFactory(start_ns=T0)
    span = f.span(
        "chat",
        attributes={
            semconv.AGENTMESH_ROUTE_DECISION_ID: "d-2",
            semconv.AGENTMESH_ROUTE_CHOSEN: "claude-3-5-haiku",
            semconv.GEN_AI_REQUEST_MODEL: "claude-3-5-haiku",
            semconv.AGENTMESH_RUN_TASK_CLASS: "research",
        },
    )
    outcome = outcome_from_span(span, run_id="run-from-graph")
    assert outcome is not None
    assert outcome.model == "claude-3-5-haiku"
    assert outcome.task_class == "research"
    assert outcome.run_id == "run-from-graph"
    assert (outcome.table_version, outcome.features, outcome.candidates) == (None, {}, ())


def test_error_by_status_or_error_type_scores_zero() -> None:
    f = SpanFactory(start_ns=T0)
    by_status = outcome_from_span(_call(f, status="error"))
    by_type = outcome_from_span(_call(f, "d-2", extra={semconv.ERROR_TYPE: "RateLimitError"}))
    assert by_status is not None
    assert by_type is not None
    assert (by_status.error, by_status.error_type, by_status.quality) == (True, None, 0.0)
    assert (by_type.error, by_type.error_type, by_type.quality) == (True, "RateLimitError", 0.0)


def test_fallback_events_list_the_models_that_failed_in_order() -> None:
    f = SpanFactory(start_ns=T0)
    span = _call(
        f,
        events=(
            _fallback("gpt-4o", "gpt-4o-mini", "RateLimitError", T0 + 1),
            SpanEventRecord("agentmesh.handoff", T0 + 2, {}),
            _fallback("gpt-4o-mini", "claude-3-5-haiku", "APITimeoutError", T0 + 3),
        ),
        extra={semconv.GEN_AI_RESPONSE_MODEL: "claude-3-5-haiku"},
    )
    outcome = outcome_from_span(span)
    assert outcome is not None
    assert outcome.fallbacks == ("gpt-4o", "gpt-4o-mini")
    assert outcome.model == "claude-3-5-haiku"
    assert outcome.error is False
    assert outcome.quality == 1.0  # the answer came; fallbacks are reported, not penalised


def test_feedback_on_the_span_itself_and_on_its_event() -> None:
    f = SpanFactory(start_ns=T0)
    on_span = _call(f, extra={semconv.AGENTMESH_FEEDBACK_SCORE: 0.3})
    outcome = outcome_from_span(on_span)
    assert outcome is not None
    assert (outcome.feedback_score, outcome.quality) == (0.3, 0.3)

    later = SpanEventRecord(
        "agentmesh.feedback", on_span.end_ns + 5, {semconv.AGENTMESH_FEEDBACK_SCORE: 0.9}
    )
    both = replace(on_span, events=(later,))
    assert feedback_score(both) == 0.9  # the later one wins


def test_feedback_on_a_separate_span_joins_by_decision_id() -> None:
    f = SpanFactory(start_ns=T0)
    call = _call(f, status="error")
    other_call = _call(f, "d-other")
    good = feedback_span(
        Feedback(f.trace_id, "d-1", 0.8), parent_span_id=call.span_id, time_ns=T0 + 10**10
    )
    for_other = feedback_span(
        Feedback(f.trace_id, "d-other", 0.1), parent_span_id=None, time_ns=T0 + 2 * 10**10
    )
    outcome = outcome_from_span(call, trace_spans=[call, other_call, good, for_other])
    assert outcome is not None
    assert outcome.feedback_score == 0.8
    assert outcome.error is True
    assert outcome.quality == 0.8  # explicit feedback beats the error
    # The feedback span carries the decision id but made no decision.
    assert not is_decision_span(good)
    assert outcome_from_span(good) is None


def test_feedback_event_elsewhere_and_bad_scores_are_ignored_or_joined() -> None:
    f = SpanFactory(start_ns=T0)
    call = _call(f)
    root = f.workflow("w", run_id="run-1")
    evaluator = replace(
        root,
        events=(
            SpanEventRecord(
                "eval",
                T0 + 50,
                {
                    semconv.AGENTMESH_ROUTE_DECISION_ID: "d-1",
                    semconv.AGENTMESH_FEEDBACK_SCORE: 0.4,
                },
            ),
            SpanEventRecord(
                "eval",
                T0 + 60,
                {
                    semconv.AGENTMESH_ROUTE_DECISION_ID: "d-1",
                    semconv.AGENTMESH_FEEDBACK_SCORE: 1.7,  # out of range: ignored
                },
            ),
            SpanEventRecord(
                "eval",
                T0 + 70,
                {semconv.AGENTMESH_FEEDBACK_SCORE: 0.0},  # no decision id: not ours
            ),
        ),
    )
    assert feedback_score(call, [evaluator]) == 0.4
    nan = replace(call, attributes={**call.attributes, semconv.AGENTMESH_FEEDBACK_SCORE: math.nan})
    assert feedback_score(nan) is None


@pytest.mark.parametrize(
    "features",
    ["not json", "[1, 2]", '"text"', "", "{", "null", '{"chars": NaN}'],
)
def test_bad_features_json_gives_an_empty_dict(features: str) -> None:
    f = SpanFactory(start_ns=T0)
    outcome = outcome_from_span(_call(f, extra={semconv.AGENTMESH_ROUTE_FEATURES: features}))
    assert outcome is not None
    assert outcome.features == {}


def test_spans_without_a_decision_are_not_outcomes() -> None:
    f = SpanFactory(start_ns=T0)
    assert outcome_from_span(f.chat(parent=None)) is None
    inherited = f.span("http", attributes={semconv.AGENTMESH_ROUTE_DECISION_ID: "d-1"})
    assert outcome_from_span(inherited) is None  # the id came by baggage


def test_detections_naming_the_call_lower_its_quality_once_per_type() -> None:
    f = SpanFactory(start_ns=T0)
    call = _call(f)
    detections = [
        _detection(f.trace_id, "handoff_loop", n=1),
        _detection(f.trace_id, "runaway", n=2, spans=(call.span_id,)),
        _detection(f.trace_id, "runaway", n=5, spans=(call.span_id, "0" * 16)),
        _detection("f" * 32, "stuck_agent", run_id="run-1", n=3),
        _detection("e" * 32, "cost_spike", run_id="run-2", n=4, spans=(call.span_id,)),
    ]
    outcome = outcome_from_span(call, detections=detections)
    assert outcome is not None
    # the run's detections are listed; only those naming the call's span lower its quality
    assert outcome.detections == ("handoff_loop", "runaway", "stuck_agent")
    assert outcome.call_detections == ("runaway",)
    assert outcome.quality == pytest.approx(1.0 - DETECTION_PENALTY)
    assert outcome.as_dict()["call_detections"] == ["runaway"]
    many = DecisionOutcome(
        "d", "t", "s", None, 0.0, call_detections=tuple(f"type-{i}" for i in range(9))
    )
    assert many.quality == 0.0
    scored = replace(many, feedback_score=0.6)
    assert scored.quality == 0.6  # explicit feedback wins, as in the router trainer


def test_the_sent_model_is_the_one_that_answered() -> None:
    f = SpanFactory(start_ns=T0)
    fell_back = _call(
        f,
        events=(_fallback("gpt-4o-mini", "claude-3-5-haiku", "RateLimitError", T0 + 1),),
        extra={semconv.GEN_AI_REQUEST_MODEL: "claude-3-5-haiku"},
    )
    enforced = _call(f, extra={semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"})  # an older span
    shadow = _call(f, extra={semconv.AGENTMESH_ROUTE_MODE: "shadow"})
    sent = [outcome_from_span(s) for s in (fell_back, enforced, shadow)]
    assert [o.sent_model if o else None for o in sent] == [
        "claude-3-5-haiku",
        "gpt-4o-mini",
        "gpt-4o-mini",
    ]


async def test_decision_outcomes_reads_a_window_of_runs() -> None:
    store = MemoryStore()
    async with Pipeline(store) as pipeline:
        old = SpanFactory(start_ns=T0)
        old_root = old.workflow("w", run_id="run-old")
        old_call = _call(old, "d-old", parent=old_root, run_id=None)
        new = SpanFactory(start_ns=T0 + 3600 * 10**9)
        root = new.workflow("w", run_id="run-new")
        call = _call(new, "d-new", parent=root)
        late = _call(new, "d-late", parent=root)
        baggage_child = new.span(
            "http", parent=call, attributes={semconv.AGENTMESH_ROUTE_DECISION_ID: "d-new"}
        )
        fb = feedback_span(
            Feedback(new.trace_id, "d-new", 0.25), parent_span_id=call.span_id, time_ns=T0 + 5
        )
        assert pipeline.offer([old_root, old_call])
        assert pipeline.offer([root, call, late, baggage_child, fb])
        await pipeline.drain()
    await store.write_detection(_detection(new.trace_id, "ping_pong", run_id="run-new"))

    every = await decision_outcomes(store)
    assert [o.decision_id for o in every] == ["d-old", "d-new", "d-late"]
    by_id = {o.decision_id: o for o in every}
    assert by_id["d-new"].feedback_score == 0.25
    assert by_id["d-new"].detections == ("ping_pong",)
    assert by_id["d-late"].detections == ("ping_pong",)
    assert by_id["d-late"].quality == 1.0  # the detection names no call of the decision
    assert by_id["d-old"].run_id == "run-old"

    since = datetime.fromtimestamp((late.start_ns - 10_000) / 1e9, UTC)
    assert [o.decision_id for o in await decision_outcomes(store, since=since)] == ["d-late"]
    until = call.start_ns / 1e9
    assert [o.decision_id for o in await decision_outcomes(store, until=until)] == ["d-old"]
    assert [o.decision_id for o in await decision_outcomes(store, limit=1)] == ["d-late"]
    with pytest.raises(StoreError, match="limit"):
        await decision_outcomes(store, limit=0)
    with pytest.raises(StoreError, match="time zone"):
        await decision_outcomes(store, since=datetime(2027, 1, 1))


async def test_many_runs_read_the_detections_once_and_keep_each_runs_own() -> None:
    store = MemoryStore()
    traces: list[str] = []
    async with Pipeline(store) as pipeline:
        for i in range(70):
            f = SpanFactory(start_ns=T0 + i * 10**9)
            root = f.workflow("w", run_id=f"run-{i}")
            assert pipeline.offer([root, _call(f, f"d-{i}", parent=root, run_id=None)])
            traces.append(f.trace_id)
        await pipeline.drain()
    await store.write_detection(_detection(traces[3], "handoff_loop", run_id="run-3"))
    outcomes = await decision_outcomes(store)
    assert len(outcomes) == 70
    assert [o.decision_id for o in outcomes if o.detections] == ["d-3"]
    assert [o.run_id for o in outcomes[:2]] == ["run-0", "run-1"]


async def test_decision_outcomes_pages_through_many_runs_and_stops_when_it_has_enough() -> None:
    # 701 runs, three pages of 256: pairs of runs start in the same nanosecond, so some pairs
    # straddle a page's cut; runs after the 600th hold no decision
    store = MemoryStore()
    expected: list[str] = []
    async with Pipeline(store) as pipeline:
        for i in range(701):
            f = SpanFactory(start_ns=T0 + (i // 2) * 10**9)
            root = f.workflow("w", run_id=f"run-{i}")
            spans = [root]
            if i < 600:
                spans.append(_call(f, f"d-{i}", parent=root, run_id=None))
                expected.append(f"d-{i}")
            assert pipeline.offer(spans)
        await pipeline.drain()
    every = await decision_outcomes(store)
    assert sorted(o.decision_id for o in every) == sorted(expected)
    assert len(every) == 600
    assert [o.start_time for o in every] == sorted(o.start_time for o in every)
    newest = await decision_outcomes(store, limit=5)
    assert [o.decision_id for o in newest][-1] in {"d-598", "d-599"}
    assert len(newest) == 5
    assert {o.run_id for o in newest} <= {f"run-{i}" for i in range(594, 600)}
    calls = 0
    runs = store.runs

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await runs(*args, **kwargs)  # type: ignore[arg-type]

    store.runs = counted  # type: ignore[method-assign]
    await decision_outcomes(store, limit=5)
    # pages of 16, 64 and 256 runs: the 101 newest runs hold no decision, the third page
    # holds enough, and no fourth is read
    assert calls == 3


async def test_decision_outcomes_filters_by_task_class_and_model() -> None:
    store = MemoryStore()
    async with Pipeline(store) as pipeline:
        f = SpanFactory(start_ns=T0)
        root = f.workflow("w", run_id="run-1")
        mini = _call(f, "d-mini", parent=root)
        big = _call(
            f,
            "d-big",
            parent=root,
            extra={
                semconv.AGENTMESH_ROUTE_CHOSEN: "gpt-4o",
                semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-11-20",
                semconv.AGENTMESH_ROUTE_TASK_CLASS: "code",
            },
        )
        assert pipeline.offer([root, mini, big])
        await pipeline.drain()
    assert [o.decision_id for o in await decision_outcomes(store, task_class="code")] == ["d-big"]
    for model in ("gpt-4o", "gpt-4o-2024-11-20"):  # chosen or answered
        assert [o.decision_id for o in await decision_outcomes(store, model=model)] == ["d-big"]
    found = await decision_outcomes(store, task_class="triage", model="gpt-4o-mini", limit=1)
    assert [o.decision_id for o in found] == ["d-mini"]
    assert await decision_outcomes(store, task_class="triage", model="gpt-4o") == []
