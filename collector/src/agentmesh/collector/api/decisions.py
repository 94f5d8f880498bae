"""``GET /v1/decisions`` and ``GET /v1/runs/{run}/decisions``: the routing decision log.

Each decision the router made, as the instrumentation recorded it on the provider call's span
(features, candidates and their scores, the choice, the reason, the mode), with how the call
went: error, fallbacks, latency, cost, tokens, the detections of its run, explicit feedback and
the quality the router learns from. See
:class:`~agentmesh.collector.routing.outcomes.DecisionOutcome` for the fields.

- ``GET /v1/decisions?limit=100&since=1h&task_class=triage&model=gpt-4o-mini``:
  ``{"decisions": [...], "next_before": ...}``, newest call first (``limit`` 1-1000, default
  100; ``model`` matches the model chosen or the one that answered; ``next_before``,
  ``"<ns>:<decision id>"``, is set when older decisions remain: pass it as ``before`` for the
  next page, as on ``GET /v1/runs`` and ``GET /v1/detections``; ``before`` may also be a time
  in Unix nanoseconds).
- ``GET /v1/runs/{run}/decisions``: ``{"run_id", "trace_id", "decisions": [...]}``, the run's
  decisions in call order; ``{run}`` as in ``GET /v1/runs/{run}`` (404, 409).

Same credentials as OTLP requests when authentication is configured; errors are
``{"error": "..."}`` in plain words, ``400`` for a wrong parameter (one the route does not take
included).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from agentmesh.collector.api.params import (
    before_param,
    error_response,
    json_response,
    limit_param,
    not_found_response,
    query_route,
    since_param,
)
from agentmesh.collector.routing.outcomes import DecisionOutcome, decision_outcomes, trace_outcomes
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.lookup import RunNotFoundError, find_run
from agentmesh.core import ConfigError

__all__ = ["DECISIONS_PATH", "MAX_DECISIONS", "RUN_DECISIONS_PATH", "decisions_routes"]

DECISIONS_PATH: Final = "/v1/decisions"
RUN_DECISIONS_PATH: Final = "/v1/runs/{run}/decisions"
MAX_DECISIONS: Final = 1000
"""Most decisions one ``GET /v1/decisions`` returns."""
_NS: Final = 1_000_000_000
_MARGIN_S: Final = 1e-5
"""Slack around a time bound given to the store in float seconds, coarser than nanoseconds."""


def _key(outcome: DecisionOutcome) -> tuple[int, str]:
    """Where a decision sorts, as its cursor names it: call start (Unix ns), decision id.

    The order of the decision log: by start, then id (outcomes give the start in float seconds,
    whose distinct values stay distinct in nanoseconds).
    """
    return round(outcome.start_time * _NS), outcome.decision_id


async def _newest(
    store: SpanStore,
    count: int,
    before: tuple[int, str] | None,
    *,
    since_ns: int | None,
    task_class: str | None,
    model: str | None,
) -> list[DecisionOutcome]:
    """The newest ``count`` decisions ordered before ``before`` (``None``: any), oldest first."""

    async def read(limit: int, until: float | None) -> list[DecisionOutcome]:
        return await decision_outcomes(
            store,
            since=None if since_ns is None else since_ns / _NS,
            until=until,
            limit=limit,
            task_class=task_class,
            model=model,
        )

    if before is None:
        return await read(count, None)
    # the store is asked for the calls that started up to just past the cursor (its bound, in
    # float seconds, is coarser than a nanosecond); those at or after the cursor are left out
    until = before[0] / _NS + _MARGIN_S
    ask = count + 1  # the cursor's own decision comes back too
    while True:
        found = await read(ask, until)
        older = sorted((o for o in found if _key(o) < before), key=_key)
        if len(older) >= count or len(found) < ask:  # enough, or every one was read
            return older[-count:]
        ask += len(found) - len(older)  # more at or after the cursor than thought: skip them


def decisions_routes(store: SpanStore) -> list[web.RouteDef]:
    """Return the decision log's routes, reading ``store``.

    Args:
        store: The collector's span store.

    Returns:
        The routes to mount on the OTLP/HTTP receiver.
    """

    async def decisions(request: web.Request) -> web.Response:
        try:
            limit = limit_param(request, 100, MAX_DECISIONS)
            since = since_param(request)
            before = before_param(request, "<ns>:<decision id>", "(?s).+")
        except ConfigError as exc:
            return error_response(str(exc), 400)
        found = await _newest(  # one more: whether there is a page after this one
            store,
            limit + 1,
            before,
            since_ns=since,
            task_class=request.query.get("task_class") or None,
            model=request.query.get("model") or None,
        )
        page = found[-limit:]
        oldest = _key(page[0]) if len(found) > limit else None
        return json_response(
            {
                "decisions": [o.as_dict() for o in reversed(page)],
                "next_before": None if oldest is None else f"{oldest[0]}:{oldest[1]}",
            }
        )

    async def run_decisions(request: web.Request) -> web.Response:
        try:
            run = await find_run(store, request.match_info["run"])
        except RunNotFoundError as exc:
            return not_found_response(exc)
        spans = await store.spans(run.trace_id)
        found = trace_outcomes(spans, await store.detections(run.trace_id), run_id=run.run_id)
        return json_response(
            {
                "run_id": run.run_id,
                "trace_id": run.trace_id,
                "decisions": [o.as_dict() for o in found],
            }
        )

    return [
        query_route(DECISIONS_PATH, decisions, ("limit", "since", "before", "task_class", "model")),
        query_route(RUN_DECISIONS_PATH, run_decisions),
    ]
