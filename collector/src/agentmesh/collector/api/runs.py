"""``GET /v1/runs``, ``GET /v1/runs/{run}`` and ``GET /v1/costs``: what was stored, over HTTP.

Served on the OTLP/HTTP port, from the collector's own store while it runs (a DuckDB file has
one writer, so a reader elsewhere would have to stop the collector first). With authentication
configured they need the same credentials as OTLP requests.

- ``GET /v1/runs?limit=20&since=15m``: ``{"runs": [...]}``, newest first (``limit`` 1-1000,
  default 20; ``since`` as ``90s``, ``15m``, ``2h``, ``7d``; ``before`` a start time in Unix
  nanoseconds, for the next page: the runs that started before it; an answer gives it as
  ``next_before``, a string, when older runs remain; ``state`` one of ``live``, ``paused``,
  ``resumed``, ``failed``, ``interrupted``, ``complete``: ``state=paused`` lists the runs
  waiting for input, paused and not continued by a stored run, ``state=failed`` the runs whose
  root span ended in error and that no stored run continues, ``state=interrupted`` those
  stopped before they finished without failing; ``conversation`` a conversation id: the runs of
  one LangGraph thread or CrewAI flow state; ``workflow`` a workflow name, exactly). Each run
  names its ``state`` and, when it failed, ``error`` (when it was interrupted, ``interrupted``).
- ``GET /v1/runs/{run}``: ``{"graph": {...}, "detections": [...], "resumed_by": [...]}``
  (``resumed_by``: the runs that continue this one, latest first, at most 20); ``{run}`` is a
  run id or trace id, or a unique prefix of one. ``404`` when no run matches or it has no graph yet,
  ``409`` when several match.
- ``GET /v1/runs/{run}/spans?limit=5000``: ``{"spans": [...], "truncated": false}``, the run's
  spans by start time with what the graph reads of each (operation, agent, model, tokens,
  cost), the first ``limit`` (1-50000, default 5000).
- ``GET /v1/detections?limit=100&since=1h&type=handoff_loop``: ``{"detections": [...],
  "next_before": ...}``, newest first, of every run (``limit`` 1-1000, default 100; ``type``
  one detection type; ``next_before`` is set when older detections remain: pass it as
  ``before`` for the next page; ``before`` may also be a time in Unix nanoseconds).
- ``GET /v1/costs?group_by=agent&since=1h``: ``{"costs": [...]}`` by agent or by model.

Errors are ``{"error": "..."}`` in plain words, with ``400`` for a wrong parameter: a value
out of its form (``before`` included: a ``next_before`` as the listing writes it, or a time),
and a parameter the route does not take or given twice.
"""

from __future__ import annotations

from collections.abc import Iterable
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
from agentmesh.collector.api.payloads import cost_to_json, graph_to_json, run_to_json, span_to_json
from agentmesh.collector.detectors.registry import unknown_detection_type
from agentmesh.collector.hot_state.events import detection_to_dict
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.lookup import (
    GraphNotStoredError,
    RunNotFoundError,
    find_graph,
    find_run,
)
from agentmesh.collector.store.usage import check_state
from agentmesh.core import ConfigError, StoreError

__all__ = [
    "COSTS_PATH",
    "DETECTIONS_PATH",
    "MAX_LIMIT",
    "MAX_SPANS",
    "RUNS_PATH",
    "RUN_PATH",
    "RUN_SPANS_PATH",
    "runs_routes",
]

RUNS_PATH: Final = "/v1/runs"
RUN_PATH: Final = "/v1/runs/{run}"
RUN_SPANS_PATH: Final = "/v1/runs/{run}/spans"
DETECTIONS_PATH: Final = "/v1/detections"
MAX_RESUMPTIONS: Final = 20
"""The runs that continue a run listed with it, at most."""
COSTS_PATH: Final = "/v1/costs"
MAX_LIMIT: Final = 1000
"""Most runs one ``GET /v1/runs`` returns."""
MAX_SPANS: Final = 50_000
"""Most spans one ``GET /v1/runs/{run}/spans`` returns."""
_TRACE_ID: Final = "[0-9a-f]{32}"
"""The id in a runs cursor: a trace id, as stored."""
_DETECTION_ID: Final = "[^:]+"
"""The id in a detections cursor: any id without a colon. The collector's own are
``det-<24 hex>`` (:func:`~agentmesh.collector.detection.detection_id`), but a store may hold
others (detections written by another version, by tests, by a detector of your own)."""


def runs_routes(store: SpanStore, detection_types: Iterable[str] = ()) -> list[web.RouteDef]:
    """Return the routes of the query API, reading ``store``.

    Args:
        store: The collector's span store.
        detection_types: Detection types of the collector's custom rules, besides the built-in
            ones (a ``type`` filter naming none of them and finding nothing is refused).

    Returns:
        The routes to mount on the OTLP/HTTP receiver.
    """
    extra_types = tuple(detection_types)

    async def runs(request: web.Request) -> web.Response:
        try:
            limit, since = limit_param(request, 20, MAX_LIMIT), since_param(request)
        except ConfigError as exc:
            return error_response(str(exc), 400)
        try:
            before = before_param(request, "<ns>:<trace id>", _TRACE_ID)
            state = check_state(request.query.get("state"))
        except (ConfigError, StoreError) as exc:
            return error_response(str(exc), 400)
        found = await store.runs(  # one more: whether there is a page after this one
            limit + 1,
            since_ns=since,
            until_ns=before[0] if before is not None and not before[1] else None,
            after=before if before is not None and before[1] else None,
            state=state,
            conversation_id=request.query.get("conversation") or None,
            workflow_name=request.query.get("workflow") or None,
        )
        page = found[:limit]
        last = page[-1] if len(found) > limit else None
        return json_response(
            {
                "runs": [run_to_json(r) for r in page],
                # text: JavaScript numbers cannot hold nanoseconds since 1970 exactly; the trace
                # id places the cut exactly among runs that started in the same nanosecond
                "next_before": None if last is None else f"{last.start_ns}:{last.trace_id}",
            }
        )

    async def run(request: web.Request) -> web.Response:
        try:
            graph, detections = await find_graph(store, request.match_info["run"])
        except RunNotFoundError as exc:
            return not_found_response(exc)
        except GraphNotStoredError as exc:
            return error_response(str(exc), 404)
        resumed_by = await store.resumptions(graph.run.run_id, limit=MAX_RESUMPTIONS)
        return json_response(
            {
                "graph": graph_to_json(graph),
                "detections": [detection_to_dict(d) for d in detections],
                "resumed_by": [run_to_json(r) for r in resumed_by],
            }
        )

    async def spans(request: web.Request) -> web.Response:
        try:
            limit = limit_param(request, 5000, MAX_SPANS)
        except ConfigError as exc:
            return error_response(str(exc), 400)
        try:
            summary = await find_run(store, request.match_info["run"])
        except RunNotFoundError as exc:
            return not_found_response(exc)
        found = await store.spans(summary.trace_id, limit=limit + 1)  # one more: truncated?
        return json_response(
            {
                "run_id": summary.run_id,
                "trace_id": summary.trace_id,
                "spans": [span_to_json(s) for s in found[:limit]],
                "truncated": len(found) > limit,
            }
        )

    async def detections(request: web.Request) -> web.Response:
        try:
            limit, since = limit_param(request, 100, MAX_LIMIT), since_param(request)
        except ConfigError as exc:
            return error_response(str(exc), 400)
        try:
            before = before_param(request, "<ns>:<detection id>", _DETECTION_ID)
        except ConfigError as exc:
            return error_response(str(exc), 400)
        kind = request.query.get("type")
        found = await store.detections(  # one more: whether there is a page after this one
            since_ns=since, detection_type=kind, limit=limit + 1, before=before
        )
        if not found and kind is not None:
            unknown = unknown_detection_type(kind, extra_types)
            if unknown is not None:
                return error_response(unknown, 400)
        page = found[-limit:]
        oldest = page[0] if len(found) > limit else None
        return json_response(
            {
                "detections": [detection_to_dict(d) for d in reversed(page)],
                "next_before": None if oldest is None else f"{oldest.detected_at_ns}:{oldest.id}",
            }
        )

    async def costs(request: web.Request) -> web.Response:
        group = request.query.get("group_by", "agent")
        if group not in ("agent", "model"):
            return error_response(f"group_by must be agent or model, not {group!r}", 400)
        try:
            since = since_param(request)
        except ConfigError as exc:
            return error_response(str(exc), 400)
        rows = await store.costs(since, group_by=group)
        return json_response({"costs": [cost_to_json(r) for r in rows]})

    return [
        query_route(
            RUNS_PATH, runs, ("limit", "since", "before", "state", "conversation", "workflow")
        ),
        query_route(RUN_PATH, run),
        query_route(RUN_SPANS_PATH, spans, ("limit",)),
        query_route(DETECTIONS_PATH, detections, ("limit", "since", "before", "type")),
        query_route(COSTS_PATH, costs, ("group_by", "since")),
    ]
