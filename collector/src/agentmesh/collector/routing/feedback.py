"""``POST /v1/feedback``: explicit quality scores for routing decisions, stored as spans.

The body is JSON::

    {"trace_id": "<32 hex>", "span_id": "<16 hex, optional>", "decision_id": "d-7c1e",
     "score": 0.8, "comment": "optional text"}

The feedback becomes a span named ``agentmesh.feedback`` in that trace, carrying
``agentmesh.route.decision_id`` and ``agentmesh.feedback.score`` (and
``agentmesh.feedback.comment``), so :func:`~agentmesh.collector.routing.outcomes.decision_outcomes`
joins it with the decision. Its parent is ``span_id`` when given, else the stored span that made
the decision, else none (the decision's spans have not been stored yet).

The span goes where the receivers put decoded spans (the pipeline), so it is stored, graphed
and seen by the detectors, unless its trace has left the graph builder while its graph is
stored: then it is written to the store directly, since a graph rebuilt from the feedback span
alone would replace the stored one.

Answers ``202`` with ``{"span_id": …, "trace_id": …, "parent_span_id": …, "decision_found":
…}`` (``false``: no stored span of the trace carries the decision yet, logged as a warning; the
score joins the decision only if such a span arrives); errors are ``{"error": "…"}`` in plain
words: ``400`` for a body that is not JSON, a missing or malformed field or a score outside
[0, 1]; ``413`` for a body over 64 KiB; ``405`` for methods other than ``POST``; ``503`` with
``Retry-After`` when the pipeline's queue is full.

Example:
    >>> feedback = Feedback.from_json(
    ...     b'{"trace_id": "' + b"ab" * 16 + b'", "decision_id": "d-1", "score": 1}'
    ... )
    >>> feedback.score, feedback.span_id
    (1.0, None)
"""

from __future__ import annotations

import inspect
import json
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, cast

from aiohttp import ClientPayloadError, web

from agentmesh.collector.api.params import error_response
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.model import AttributeValue, SpanRecord
from agentmesh.collector.receiver.http_body import BodyTooLargeError, read_capped
from agentmesh.collector.receiver.ingest import SpanSink
from agentmesh.collector.store.base import SpanStore
from agentmesh.core import semconv
from agentmesh.core.errors import ContractError
from agentmesh.core.log import get_logger

__all__ = [
    "FEEDBACK_COMMENT",
    "FEEDBACK_PATH",
    "FEEDBACK_SCOPE",
    "FEEDBACK_SPAN_NAME",
    "MAX_BODY_BYTES",
    "MAX_COMMENT_CHARS",
    "Feedback",
    "FeedbackError",
    "FeedbackListener",
    "feedback_routes",
    "feedback_span",
]

_log = get_logger(__name__)

FEEDBACK_PATH: Final = "/v1/feedback"
"""Where feedback is posted."""

FEEDBACK_SPAN_NAME: Final = "agentmesh.feedback"
"""Name of the span a feedback becomes."""

FEEDBACK_SCOPE: Final = "agentmesh.collector.feedback"
"""Instrumentation scope of feedback spans."""

FEEDBACK_COMMENT: Final = semconv.AGENTMESH_FEEDBACK_COMMENT
"""Attribute holding the feedback's comment (not yet in :mod:`agentmesh.core.semconv`)."""

MAX_BODY_BYTES: Final = 64 * 1024
"""Largest feedback body accepted."""

MAX_COMMENT_CHARS: Final = 4096
"""Longest comment accepted."""

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_MAX_DECISION_ID_CHARS: Final = 256


class FeedbackError(ContractError):
    """A feedback body is not JSON, misses a field or has a wrong value."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """An explicit score for one routing decision.

    Attributes:
        trace_id: The trace of the call (32 lowercase hex digits).
        decision_id: ``agentmesh.route.decision_id`` of the decision.
        score: Quality of the outcome, in [0, 1].
        span_id: The span the feedback is about (16 lowercase hex digits), if given.
        comment: Free text, if given.
    """

    trace_id: str
    decision_id: str
    score: float
    span_id: str | None = None
    comment: str | None = None

    @classmethod
    def from_json(cls, body: bytes | str) -> Feedback:
        """Parse and check a feedback body.

        Args:
            body: The JSON text.

        Returns:
            The feedback (ids in lower case).

        Raises:
            FeedbackError: The body is not a JSON object, a field is missing or malformed, or
                the score is outside [0, 1]; the message says which.
        """
        try:
            parsed: object = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FeedbackError(f"the body is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise FeedbackError("the body must be a JSON object")
        return cls.from_mapping(cast("dict[str, object]", parsed))

    @classmethod
    def from_mapping(cls, fields: Mapping[str, object]) -> Feedback:
        """Check decoded feedback fields.

        Args:
            fields: ``trace_id``, ``decision_id``, ``score``, optional ``span_id`` and
                ``comment`` (other keys are ignored).

        Returns:
            The feedback.

        Raises:
            FeedbackError: A field is missing or malformed, or the score is outside [0, 1].
        """
        trace_id = _hex_id(fields, "trace_id", _TRACE_ID, 32, required=True)
        span_id = _hex_id(fields, "span_id", _SPAN_ID, 16, required=False)
        decision_id = fields.get("decision_id")
        if not isinstance(decision_id, str) or not decision_id.strip():
            raise FeedbackError("decision_id is required: the agentmesh.route.decision_id")
        if len(decision_id) > _MAX_DECISION_ID_CHARS:
            raise FeedbackError(f"decision_id is longer than {_MAX_DECISION_ID_CHARS} characters")
        score = fields.get("score")
        if score is None:
            raise FeedbackError("score is required: a number between 0 and 1")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise FeedbackError(f"score must be a number between 0 and 1, got {score!r}")
        value = float(score)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise FeedbackError(f"score must be between 0 and 1, got {score!r}")
        comment = fields.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise FeedbackError("comment must be a string")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise FeedbackError(f"comment is longer than {MAX_COMMENT_CHARS} characters")
        return cls(
            trace_id=trace_id or "",
            decision_id=decision_id,
            score=value,
            span_id=span_id,
            comment=comment or None,
        )


FeedbackListener = Callable[[Feedback, SpanRecord], Awaitable[None] | None]
"""Called with each accepted feedback and its span (a live trainer can learn at once)."""


def feedback_span(
    feedback: Feedback,
    *,
    parent_span_id: str | None,
    span_id: str | None = None,
    time_ns: int | None = None,
    run_id: str | None = None,
) -> SpanRecord:
    """Build the ``agentmesh.feedback`` span of a feedback.

    Args:
        feedback: The feedback.
        parent_span_id: Its parent (the decision's span), or ``None``.
        span_id: Its id; random by default.
        time_ns: When the feedback was received (start and end); now by default.
        run_id: ``agentmesh.run.id`` of the decision, when known.

    Returns:
        The span.
    """
    now = time.time_ns() if time_ns is None else time_ns
    attributes: dict[str, AttributeValue] = {
        semconv.AGENTMESH_ROUTE_DECISION_ID: feedback.decision_id,
        semconv.AGENTMESH_FEEDBACK_SCORE: feedback.score,
    }
    if feedback.comment:
        attributes[FEEDBACK_COMMENT] = feedback.comment
    if run_id:
        attributes[semconv.AGENTMESH_RUN_ID] = run_id
    return SpanRecord(
        trace_id=feedback.trace_id,
        span_id=span_id or _new_span_id(),
        parent_span_id=parent_span_id,
        name=FEEDBACK_SPAN_NAME,
        kind="internal",
        start_ns=now,
        end_ns=now,
        attributes=attributes,
        scope_name=FEEDBACK_SCOPE,
    )


def feedback_routes(
    sink: SpanSink,
    store: SpanStore,
    *,
    builder: GraphBuilder | None = None,
    on_feedback: FeedbackListener | None = None,
    retry_after_seconds: int = 1,
) -> list[web.RouteDef]:
    """Return the route taking feedback at :data:`FEEDBACK_PATH`.

    Args:
        sink: Where decoded spans go (the collector's pipeline).
        store: The collector's store (the decision's span is looked up there).
        builder: The pipeline's graph builder; with it, feedback on a trace that left memory
            while its graph is stored is written to the store directly (see the module).
        on_feedback: Called with each accepted feedback and its span; its errors are logged.
        retry_after_seconds: ``Retry-After`` of the ``503`` answered when the sink is full.

    Returns:
        The routes to mount on the OTLP/HTTP receiver.
    """

    async def handler(request: web.Request) -> web.Response:
        if request.method != "POST":
            refused = error_response(
                f"{request.method} is not supported on {FEEDBACK_PATH}; send POST", 405
            )
            refused.headers["Allow"] = "POST"
            return refused
        try:
            body = await read_capped(
                request.content.iter_any(), request.content_length, MAX_BODY_BYTES
            )
        except BodyTooLargeError as exc:
            return error_response(str(exc), 413)
        except (ClientPayloadError, OSError) as exc:  # the client went away or broke the body
            return error_response(f"cannot read the body: {exc}", 400)
        try:
            feedback = Feedback.from_json(body)
        except FeedbackError as exc:
            return error_response(str(exc), 400)
        parent, run_id, found = await _decision_span(store, feedback)
        span = feedback_span(feedback, parent_span_id=parent, run_id=run_id)
        refused = await _deliver(span, sink, store, builder)
        if refused is not None:
            busy = error_response(f"{refused}; retry later", 503)
            busy.headers["Retry-After"] = str(retry_after_seconds)
            return busy
        _log.info(
            "feedback",
            trace_id=feedback.trace_id,
            decision_id=feedback.decision_id,
            score=feedback.score,
            span_id=span.span_id,
            decision_found=found,
        )
        if not found:
            _log.warning(
                "feedback for a decision not stored (yet): it joins the decision only when a "
                "span of the trace carries it",
                trace_id=feedback.trace_id,
                decision_id=feedback.decision_id,
            )
        if on_feedback is not None:
            try:
                outcome = on_feedback(feedback, span)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # noqa: BLE001 - a listener must not fail the request
                _log.exception("feedback listener failed", decision_id=feedback.decision_id)
        return web.json_response(
            {
                "span_id": span.span_id,
                "trace_id": span.trace_id,
                "parent_span_id": parent,
                "decision_found": found,
            },
            status=202,
        )

    return [web.route("*", FEEDBACK_PATH, handler)]


async def _decision_span(
    store: SpanStore, feedback: Feedback
) -> tuple[str | None, str | None, bool]:
    """The feedback's parent span id, the decision's run id, and whether the decision is stored."""
    try:
        spans = await store.spans(feedback.trace_id)
    except Exception:  # noqa: BLE001 - logged; the feedback keeps the given parent
        _log.warning("feedback: trace not read", trace_id=feedback.trace_id, exc_info=True)
        return feedback.span_id, None, False
    decision: SpanRecord | None = None
    for span in spans:
        if feedback.span_id is not None and span.span_id == feedback.span_id:
            decision = span
            break
        if (
            feedback.span_id is None
            and decision is None
            and span.str_attr(semconv.AGENTMESH_ROUTE_DECISION_ID) == feedback.decision_id
            and (
                span.str_attr(semconv.AGENTMESH_ROUTE_CHOSEN)
                or span.str_attr(semconv.AGENTMESH_ROUTE_POLICY)
            )
        ):
            decision = span
    if decision is None:
        return feedback.span_id, None, False
    return decision.span_id, decision.str_attr(semconv.AGENTMESH_RUN_ID), True


async def _deliver(
    span: SpanRecord, sink: SpanSink, store: SpanStore, builder: GraphBuilder | None
) -> str | None:
    """Hand the span to the sink, or to the store when the sink would damage a stored graph.

    Returns ``None`` when delivered, else why not.
    """
    if builder is not None and span.trace_id not in builder:
        try:
            stored = await store.graph(span.trace_id) is not None
        except Exception:  # noqa: BLE001 - logged; the span goes to the pipeline
            _log.warning("feedback: graph not read", trace_id=span.trace_id, exc_info=True)
            stored = False
        if stored:
            try:
                await store.write_spans([span])
            except Exception:  # noqa: BLE001 - logged; answered 503
                _log.exception("feedback span not stored", trace_id=span.trace_id)
                return "the store could not write the feedback"
            return None
    try:
        verdict = sink([span])
        accepted = await verdict if inspect.isawaitable(verdict) else verdict
    except Exception:  # noqa: BLE001 - logged; answered 503
        _log.exception("feedback span refused by the pipeline", trace_id=span.trace_id)
        return "the collector's pipeline failed"
    return None if accepted else "the collector's queue is full"


def _hex_id(
    fields: Mapping[str, object],
    name: str,
    pattern: re.Pattern[str],
    digits: int,
    *,
    required: bool,
) -> str | None:
    value = fields.get(name)
    if value is None:
        if required:
            raise FeedbackError(f"{name} is required: {digits} hex digits")
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value.lower()):
        raise FeedbackError(f"{name} must be {digits} hex digits, got {value!r}")
    if not value.strip("0"):
        raise FeedbackError(f"{name} must not be all zeros")
    return value.lower()


def _new_span_id() -> str:
    while True:
        span_id = secrets.token_hex(8)
        if span_id.strip("0"):
            return span_id
