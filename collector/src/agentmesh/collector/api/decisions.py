"""``GET /v1/decisions`` and ``GET /v1/runs/{run}/decisions``: the routing decision log.

Each decision the router made, as the instrumentation recorded it on the provider call's span
(features, candidates and their scores, the choice, the reason, the mode), with how the call
went: error, fallbacks, latency, cost, tokens, the detections of its run, explicit feedback and
the quality the router learns from. See
:class:`~agentmesh.collector.routing.outcomes.DecisionOutcome` for the fields.

- ``GET /v1/decisions?limit=100&since=1h&task_class=triage&model=gpt-4o-mini``:
  ``{"decisions": [...]}``, newest call first (``limit`` 1-1000, default 100; ``model`` matches
  the model chosen or the one that answered).
- ``GET /v1/runs/{run}/decisions``: ``{"run_id", "trace_id", "decisions": [...]}``, the run's
  decisions in call order; ``{run}`` as in ``GET /v1/runs/{run}`` (404, 409).

Same credentials as OTLP requests when authentication is configured; errors are
``{"error": "..."}`` in plain words, ``400`` for a wrong parameter.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from agentmesh.collector.api.params import (
    error_response,
    json_response,
    limit_param,
    not_found_response,
    since_param,
)
from agentmesh.collector.routing.outcomes import decision_outcomes, trace_outcomes
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.lookup import RunNotFoundError, find_run
from agentmesh.core import ConfigError

__all__ = ["DECISIONS_PATH", "MAX_DECISIONS", "RUN_DECISIONS_PATH", "decisions_routes"]

DECISIONS_PATH: Final = "/v1/decisions"
RUN_DECISIONS_PATH: Final = "/v1/runs/{run}/decisions"
MAX_DECISIONS: Final = 1000
"""Most decisions one ``GET /v1/decisions`` returns."""


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
        except ConfigError as exc:
            return error_response(str(exc), 400)
        found = await decision_outcomes(
            store,
            since=None if since is None else since / 1e9,
            limit=limit,
            task_class=request.query.get("task_class") or None,
            model=request.query.get("model") or None,
        )
        return json_response({"decisions": [o.as_dict() for o in reversed(found)]})

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
        web.route("GET", DECISIONS_PATH, decisions),
        web.route("GET", RUN_DECISIONS_PATH, run_decisions),
    ]
