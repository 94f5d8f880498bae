"""Routing decisions joined with their outcomes: what the router learns from.

The instrumentation records each routing decision on the provider call's span
(``agentmesh.route.*``); the span also says how the call went (status, ``error.type``, latency,
tokens, cost, the ``agentmesh.route.fallback`` events of models that failed first). Explicit
feedback arrives later, as ``agentmesh.feedback.score`` on a span or event of the same trace
carrying the same ``agentmesh.route.decision_id`` (``POST /v1/feedback`` writes such a span), and
detections are stored per trace. :func:`outcome_from_span` joins them for one span;
:func:`trace_outcomes` does it for a trace, :func:`decision_outcomes` for a time window of a
store.

Only the span that *made* the decision counts: it carries the decision id and the route's
choice (``agentmesh.route.chosen`` or ``agentmesh.route.policy``). Child spans that carry the
decision id only through baggage, and feedback spans, are not decisions.

Example:
    >>> from agentmesh.collector.testing import SpanFactory
    >>> from agentmesh.core import semconv
    >>> f = SpanFactory()
    >>> call = f.span(
    ...     "chat gpt-4o-mini",
    ...     attributes={
    ...         semconv.AGENTMESH_ROUTE_DECISION_ID: "d-1",
    ...         semconv.AGENTMESH_ROUTE_CHOSEN: "gpt-4o-mini",
    ...         semconv.AGENTMESH_ROUTE_FEATURES: '{"chars": 812}',
    ...         semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    ...     },
    ... )
    >>> outcome = outcome_from_span(call)
    >>> outcome.model, outcome.features, outcome.error, outcome.quality
    ('gpt-4o-mini-2024-07-18', {'chars': 812}, False, 1.0)
    >>> outcome_from_span(f.span("no decision")) is None
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar, cast

from agentmesh.collector.detection import Detection, JsonValue
from agentmesh.collector.graph.sent_model import sent_model
from agentmesh.collector.model import Attributes, SpanRecord, float_of, str_of
from agentmesh.collector.store.base import RunSummary, SpanStore
from agentmesh.collector.store.run_pages import PAGE_RUNS, run_pages
from agentmesh.core import semconv
from agentmesh.core.errors import StoreError
from agentmesh.core.log import get_logger

__all__ = [
    "DEFAULT_RUN_LOOKBACK_SECONDS",
    "DETECTION_PENALTY",
    "DecisionOutcome",
    "decision_outcomes",
    "feedback_score",
    "is_decision_span",
    "outcome_from_span",
    "outcome_quality",
    "trace_outcomes",
]

_log = get_logger(__name__)

DETECTION_PENALTY: Final = 0.25
"""Quality lost per distinct type of the detections naming the call's span or its step (see
:func:`outcome_quality`)."""

DEFAULT_RUN_LOOKBACK_SECONDS: Final = 6 * 3600.0
"""How long before ``since`` a run may have started and still hold decisions of the window."""

_NS: Final = 1_000_000_000
_DETECTIONS_PER_RUN: Final = 8
"""Up to this many runs of a page with decisions, their detections are read run by run."""
_DETECTION_CLOCK_SLACK_NS: Final = 3600 * _NS
"""How much earlier than a run's first span a detection of it may be stamped (clock skew)."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def outcome_quality(*, error: bool, feedback: float | None, penalties: int) -> float:
    """How good a routed call's outcome was, in [0, 1]: the rule the router learns by.

    Explicit feedback wins. Without it, a failed call scores 0.0; a successful one 1.0 minus
    :data:`DETECTION_PENALTY` for each distinct type of the detections that name the call's
    span or the step it ran in (its parent span: an agent in a loop, a runaway, a context
    loss… say the answer was less useful), never below 0.0.
    Fallbacks do not lower it: the answer came (the models that failed first get their own
    failed outcomes). The collector's router trainer and :attr:`DecisionOutcome.quality` (the
    decisions API, ``agentmesh export decisions``) both apply it.

    Args:
        error: Whether the call failed.
        feedback: The latest explicit score in [0, 1], if any.
        penalties: How many distinct detection types name the call's span.

    Returns:
        The quality.

    Example:
        >>> outcome_quality(error=False, feedback=None, penalties=1)
        0.75
        >>> outcome_quality(error=True, feedback=0.5, penalties=2)
        0.5
    """
    if feedback is not None:
        return feedback
    if error:
        return 0.0
    return max(0.0, 1.0 - DETECTION_PENALTY * penalties)


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """One routing decision and how the call it routed went.

    Attributes:
        decision_id: ``agentmesh.route.decision_id``.
        trace_id: The trace of the call.
        span_id: The span of the call (the one carrying the decision).
        run_id: ``agentmesh.run.id`` of the call, else of its run; ``None`` when unknown.
        start_time: When the call started, in seconds since the Unix epoch.
        task_class: ``agentmesh.route.task_class``, else ``agentmesh.run.task_class``.
        mode: ``agentmesh.route.mode`` (``shadow`` or ``enforce``).
        policy: ``agentmesh.route.policy``.
        requested_model: ``agentmesh.route.requested_model``: what the app asked for.
        chosen: ``agentmesh.route.chosen``: the route's choice.
        model: The model that answered: ``gen_ai.response.model``, else
            ``gen_ai.request.model``.
        sent_model: The model the call was sent to last, as the route table names it (the
            one that answered, or failed last): the last fallback's target, else the route's
            choice when enforced, else ``gen_ai.request.model``. The router learns under it.
        provider: ``gen_ai.provider.name``.
        candidates: ``agentmesh.route.candidates``.
        scores: ``agentmesh.route.scores``, in candidate order.
        reason: ``agentmesh.route.reason``.
        features: ``agentmesh.route.features`` parsed (``{}`` when absent or not a JSON
            object).
        table_version: ``agentmesh.route.table_version`` (``None`` when not recorded).
        error: Whether the call failed (span status error, or ``error.type`` set).
        error_type: ``error.type``, when set.
        latency_s: Duration of the call in seconds (fallbacks included).
        cost_usd: ``agentmesh.cost.usd``, when known.
        input_tokens: ``gen_ai.usage.input_tokens``, when known.
        output_tokens: ``gen_ai.usage.output_tokens``, when known.
        fallbacks: Models that failed before the one that answered, in order (from the
            ``agentmesh.route.fallback`` events).
        detections: Types of the detections stored for the call's trace or run, sorted, each
            once.
        call_detections: Of those, the types of the detections that name the call's span or
            the step it ran in (its parent span): each takes :data:`DETECTION_PENALTY` off
            ``quality``.
        feedback_score: The latest explicit score in [0, 1] for the decision, if any.
    """

    decision_id: str
    trace_id: str
    span_id: str
    run_id: str | None
    start_time: float
    task_class: str | None = None
    mode: str | None = None
    policy: str | None = None
    requested_model: str | None = None
    chosen: str | None = None
    model: str | None = None
    sent_model: str | None = None
    provider: str | None = None
    candidates: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    reason: str | None = None
    features: Mapping[str, JsonValue] = field(default_factory=lambda: {}, hash=False)
    table_version: int | None = None
    error: bool = False
    error_type: str | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    fallbacks: tuple[str, ...] = ()
    detections: tuple[str, ...] = ()
    feedback_score: float | None = None
    call_detections: tuple[str, ...] = ()

    @property
    def quality(self) -> float:
        """How good the outcome was, in [0, 1] (see :func:`outcome_quality`)."""
        return outcome_quality(
            error=self.error, feedback=self.feedback_score, penalties=len(self.call_detections)
        )

    def as_dict(self) -> dict[str, JsonValue]:
        """Return the outcome as a JSON-ready dict, ``quality`` included.

        A score that is not a finite number (JSON has none) is given as ``None``; costs are
        finite already (``SpanRecord.float_attr`` reads NaN and infinities as no number).

        Returns:
            A new dict (lists for the tuple fields).
        """
        return {
            "decision_id": self.decision_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "run_id": self.run_id,
            "start_time": self.start_time,
            "task_class": self.task_class,
            "mode": self.mode,
            "policy": self.policy,
            "requested_model": self.requested_model,
            "chosen": self.chosen,
            "model": self.model,
            "sent_model": self.sent_model,
            "provider": self.provider,
            "candidates": list(self.candidates),
            "scores": [s if math.isfinite(s) else None for s in self.scores],
            "reason": self.reason,
            "features": dict(self.features),
            "table_version": self.table_version,
            "error": self.error,
            "error_type": self.error_type,
            "latency_s": self.latency_s,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "fallbacks": list(self.fallbacks),
            "detections": list(self.detections),
            "call_detections": list(self.call_detections),
            "feedback_score": self.feedback_score,
            "quality": self.quality,
        }


def is_decision_span(span: SpanRecord) -> bool:
    """Tell whether a span made a routing decision (rather than inheriting its id by baggage).

    Args:
        span: The span.

    Returns:
        Whether it carries ``agentmesh.route.decision_id`` and the route's choice or policy.
    """
    if not span.str_attr(semconv.AGENTMESH_ROUTE_DECISION_ID):
        return False
    return bool(
        span.str_attr(semconv.AGENTMESH_ROUTE_CHOSEN)
        or span.str_attr(semconv.AGENTMESH_ROUTE_POLICY)
    )


def outcome_from_span(
    span: SpanRecord,
    *,
    trace_spans: Iterable[SpanRecord] = (),
    detections: Iterable[Detection] = (),
    run_id: str | None = None,
) -> DecisionOutcome | None:
    """Join the decision a span made with how the call went.

    Args:
        span: The provider call's span.
        trace_spans: Other spans of its trace, searched for feedback on the decision (the
            span itself may be among them).
        detections: Detections to attribute: those of the span's trace, or of its run.
        run_id: The run's id, used when the span does not carry ``agentmesh.run.id``.

    Returns:
        The outcome, or ``None`` when the span made no decision (see
        :func:`is_decision_span`).
    """
    if not is_decision_span(span):
        return None
    attrs = span.attributes
    decision_id = str_of(attrs, semconv.AGENTMESH_ROUTE_DECISION_ID) or ""
    run = str_of(attrs, semconv.AGENTMESH_RUN_ID) or run_id
    error_type = str_of(attrs, semconv.ERROR_TYPE)
    mine = [
        d
        for d in detections
        if d.trace_id == span.trace_id or (run is not None and d.run_id == run)
    ]
    fallbacks = tuple(
        (failed, event.str_attr(semconv.AGENTMESH_ROUTE_FALLBACK_TO))
        for event in span.events
        if event.name == semconv.EVENT_FALLBACK
        and (failed := event.str_attr(semconv.AGENTMESH_ROUTE_FALLBACK_FROM))
    )
    chosen = str_of(attrs, semconv.AGENTMESH_ROUTE_CHOSEN)
    mode = str_of(attrs, semconv.AGENTMESH_ROUTE_MODE)
    return DecisionOutcome(
        decision_id=decision_id,
        trace_id=span.trace_id,
        span_id=span.span_id,
        run_id=run,
        start_time=span.start_ns / _NS,
        task_class=str_of(attrs, semconv.AGENTMESH_ROUTE_TASK_CLASS)
        or str_of(attrs, semconv.AGENTMESH_RUN_TASK_CLASS),
        mode=mode,
        policy=str_of(attrs, semconv.AGENTMESH_ROUTE_POLICY),
        requested_model=str_of(attrs, semconv.AGENTMESH_ROUTE_REQUESTED_MODEL),
        chosen=chosen,
        model=str_of(attrs, semconv.GEN_AI_RESPONSE_MODEL)
        or str_of(attrs, semconv.GEN_AI_REQUEST_MODEL),
        sent_model=sent_model(
            str_of(attrs, semconv.GEN_AI_REQUEST_MODEL),
            chosen if mode == "enforce" else None,
            fallbacks[-1][1] if fallbacks else None,
        ),
        provider=str_of(attrs, semconv.GEN_AI_PROVIDER_NAME),
        candidates=tuple(
            v for v in _list(attrs, semconv.AGENTMESH_ROUTE_CANDIDATES) if isinstance(v, str)
        ),
        scores=tuple(
            float(v)
            for v in _list(attrs, semconv.AGENTMESH_ROUTE_SCORES)
            if isinstance(v, int | float) and not isinstance(v, bool)
        ),
        reason=str_of(attrs, semconv.AGENTMESH_ROUTE_REASON),
        features=_features(attrs),
        table_version=span.int_attr(semconv.AGENTMESH_ROUTE_TABLE_VERSION),
        error=span.status_code == "error" or error_type is not None,
        error_type=error_type,
        latency_s=span.duration_ns / _NS,
        cost_usd=_not_negative(span.float_attr(semconv.AGENTMESH_COST_USD)),
        input_tokens=_not_negative(span.int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=_not_negative(span.int_attr(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)),
        fallbacks=tuple(failed for failed, _to in fallbacks),
        detections=tuple(sorted({d.type for d in mine})),
        feedback_score=feedback_score(span, trace_spans),
        call_detections=tuple(
            sorted({d.type for d in mine if _names_call(d, span.span_id, span.parent_span_id)})
        ),
    )


def _names_call(detection: Detection, span_id: str, parent_id: str | None) -> bool:
    """Whether a detection names a call's span or the step it ran in (its parent span)."""
    named = detection.span_ids
    return span_id in named or (parent_id is not None and parent_id in named)


def feedback_score(span: SpanRecord, trace_spans: Iterable[SpanRecord] = ()) -> float | None:
    """Find the latest explicit feedback on the decision a span made.

    Feedback is ``agentmesh.feedback.score`` (a number in [0, 1]; other values are ignored) on
    the span itself, on one of its events, or on any span or event of ``trace_spans`` that
    carries the same ``agentmesh.route.decision_id``. The latest wins (events by their time,
    spans by their end).

    Args:
        span: The decision's span.
        trace_spans: Spans of the same trace.

    Returns:
        The score, or ``None`` without feedback.
    """
    decision_id = span.str_attr(semconv.AGENTMESH_ROUTE_DECISION_ID)
    latest: tuple[int, float] | None = None

    def consider(time_ns: int, attrs: Attributes, *, own: bool) -> None:
        nonlocal latest
        score = _score(attrs)
        if score is None:
            return
        about = str_of(attrs, semconv.AGENTMESH_ROUTE_DECISION_ID)
        if about != decision_id and not (own and about is None):
            return
        if latest is None or time_ns >= latest[0]:
            latest = (time_ns, score)

    consider(span.end_ns, span.attributes, own=True)
    for event in span.events:
        consider(event.time_ns, event.attributes, own=True)
    if decision_id:
        for other in trace_spans:
            if other.span_id == span.span_id:
                continue
            consider(other.end_ns, other.attributes, own=False)
            for event in other.events:
                consider(event.time_ns, event.attributes, own=False)
    return None if latest is None else latest[1]


def trace_outcomes(
    spans: Sequence[SpanRecord],
    detections: Iterable[Detection] = (),
    *,
    run_id: str | None = None,
) -> list[DecisionOutcome]:
    """Join every decision made in one trace with its outcome.

    Args:
        spans: The trace's spans (feedback is searched among them too).
        detections: The detections stored for the trace or its run.
        run_id: The run's id, for spans that do not carry ``agentmesh.run.id``.

    Returns:
        One outcome per decision id (the earliest span when several carry it), oldest call
        first.
    """
    outcomes: dict[str, DecisionOutcome] = {}
    for outcome in _outcomes(spans, list(detections), run_id, lambda _span: True):
        _keep_earliest(outcomes, outcome)
    return sorted(outcomes.values(), key=lambda o: (o.start_time, o.decision_id))


def _outcomes(
    spans: Sequence[SpanRecord],
    detections: Sequence[Detection],
    run_id: str | None,
    keep: Callable[[SpanRecord], bool],
) -> Iterator[DecisionOutcome]:
    for span in spans:
        if keep(span):
            outcome = outcome_from_span(
                span, trace_spans=spans, detections=detections, run_id=run_id
            )
            if outcome is not None:
                yield outcome


def _keep_earliest(outcomes: dict[str, DecisionOutcome], outcome: DecisionOutcome) -> None:
    kept = outcomes.get(outcome.decision_id)
    if kept is not None:
        _log.warning(
            "decision id on several spans; keeping the earliest",
            decision_id=outcome.decision_id,
            trace_id=outcome.trace_id,
        )
        if kept.start_time <= outcome.start_time:
            return
    outcomes[outcome.decision_id] = outcome


async def decision_outcomes(
    store: SpanStore,
    *,
    since: float | datetime | None = None,
    until: float | datetime | None = None,
    limit: int | None = None,
    task_class: str | None = None,
    model: str | None = None,
    run_lookback_seconds: float = DEFAULT_RUN_LOOKBACK_SECONDS,
) -> list[DecisionOutcome]:
    """Read the routing decisions stored in a time window, joined with their outcomes.

    Uses the store's existing queries: the runs (``SpanStore.runs``) that started up to
    ``run_lookback_seconds`` before ``since`` and before ``until`` and ended at or after
    ``since``, newest first, a page of runs at a time (up to 256; smaller first pages for a
    small ``limit``), then each page's spans and detections.
    A decision is in the window when its call started in it (``since <= start < until``). With
    a ``limit``, reading stops at the page where enough decisions were found, so the newest
    decisions of a long window cost about as much as those of a short one. Spans stored
    without a run graph (late spans of a trace whose graph was never written) are not seen.

    Args:
        store: An open store.
        since: Earliest call start (epoch seconds or an aware datetime); open when ``None``.
        until: Calls starting before this; open when ``None``.
        limit: Most decisions returned (the latest ones); all when ``None``.
        task_class: Only the decisions of this task class.
        model: Only the decisions that chose this model or were answered by it.
        run_lookback_seconds: How long before ``since`` a run holding decisions of the window
            may have started.

    Returns:
        One outcome per decision id, oldest call first.

    Raises:
        StoreError: ``limit`` is below 1, or the store failed.
    """
    if limit is not None and limit < 1:
        raise StoreError(f"limit must be at least 1, got {limit}")
    since_ns = _ns(since)
    until_ns = _ns(until)
    runs_since = None if since_ns is None else since_ns - int(run_lookback_seconds * _NS)

    def in_window(span: SpanRecord) -> bool:
        return (since_ns is None or span.start_ns >= since_ns) and (
            until_ns is None or span.start_ns < until_ns
        )

    def wanted(outcome: DecisionOutcome) -> bool:
        return (task_class is None or outcome.task_class == task_class) and (
            model is None or model in (outcome.chosen, outcome.model)
        )

    outcomes: dict[str, DecisionOutcome] = {}
    # the newest few decisions need few runs: pages start small and grow to the full size
    first = PAGE_RUNS if limit is None else min(PAGE_RUNS, max(16, limit))
    async for page in run_pages(store, since_ns=runs_since, until_ns=until_ns, first=first):
        runs = [r for r in page if since_ns is None or r.end_ns >= since_ns]
        needed = None if limit is None else limit - len(outcomes)
        for outcome in await _page_outcomes(store, runs, in_window, wanted, needed):
            _keep_earliest(outcomes, outcome)
        if limit is not None and len(outcomes) >= limit:
            break
    ordered = sorted(outcomes.values(), key=lambda o: (o.start_time, o.decision_id))
    return ordered if limit is None else ordered[-limit:]


async def _page_outcomes(
    store: SpanStore,
    runs: Sequence[RunSummary],
    keep: Callable[[SpanRecord], bool],
    wanted: Callable[[DecisionOutcome], bool],
    needed: int | None,
) -> list[DecisionOutcome]:
    """The wanted decisions of a page of runs, newest run first, until ``needed`` are found.

    One spans query for the page; then the runs holding decisions are joined a batch at a
    time, each batch just large enough for the decisions still needed (joining costs far more
    than reading), with its detections read in one query at most.
    """
    if not runs:
        return []
    spans = await store.spans_of([r.trace_id for r in runs])
    deciding: list[tuple[RunSummary, int]] = []
    for run in runs:
        held = sum(1 for s in spans.get(run.trace_id, ()) if keep(s) and is_decision_span(s))
        if held:
            deciding.append((run, held))
    found: list[DecisionOutcome] = []
    start = 0
    while start < len(deciding) and (needed is None or len(found) < needed):
        end, held = start, 0
        while end < len(deciding) and (needed is None or held < needed - len(found)):
            held += deciding[end][1]
            end += 1
        batch = [run for run, _ in deciding[start:end]]
        by_trace = await _detections_of(store, batch)
        for run in batch:
            found.extend(
                outcome
                for outcome in _outcomes(
                    spans[run.trace_id], by_trace.get(run.trace_id, []), run.run_id, keep
                )
                if wanted(outcome)
            )
        start = end
    return found


async def _detections_of(
    store: SpanStore, runs: Sequence[RunSummary]
) -> dict[str, list[Detection]]:
    """The detections of some runs, by trace: run by run when few, else in one query."""
    by_trace: dict[str, list[Detection]] = {}
    if len(runs) <= _DETECTIONS_PER_RUN:
        for run in runs:
            by_trace[run.trace_id] = await store.detections(run.trace_id)
        return by_trace
    traces = {r.trace_id for r in runs}  # those made since the oldest of the runs began
    oldest = min(r.start_ns for r in runs) - _DETECTION_CLOCK_SLACK_NS
    for detection in await store.detections(since_ns=oldest):
        if detection.trace_id in traces:
            by_trace.setdefault(detection.trace_id, []).append(detection)
    return by_trace


def _ns(when: float | datetime | None) -> int | None:
    if when is None:
        return None
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise StoreError(f"a time bound needs a time zone, got {when.isoformat()}")
        return (when - _EPOCH) // timedelta(microseconds=1) * 1000
    return round(when * _NS)


def _list(attrs: Attributes, name: str) -> Sequence[object]:
    value = attrs.get(name)
    return value if isinstance(value, list) else ()


def _score(attrs: Attributes) -> float | None:
    score = float_of(attrs, semconv.AGENTMESH_FEEDBACK_SCORE)
    if score is None or not math.isfinite(score) or not 0.0 <= score <= 1.0:
        return None
    return score


def _features(attrs: Attributes) -> dict[str, JsonValue]:
    text = str_of(attrs, semconv.AGENTMESH_ROUTE_FEATURES)
    if not text:
        return {}
    try:
        parsed: object = json.loads(text, parse_constant=_refuse_constant)
    except ValueError:  # not JSON, or NaN / Infinity (not JSON either)
        return {}
    if not isinstance(parsed, dict):
        return {}
    return cast("dict[str, JsonValue]", parsed)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


_Number = TypeVar("_Number", int, float)


def _not_negative(value: _Number | None) -> _Number | None:
    """A cost or token count, unknown (``None``) when negative: no call earns money or tokens."""
    return value if value is not None and value >= 0 else None
