"""The collector's query API: runs, graphs, spans, costs, decisions and exports over HTTP."""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.api.decision_export import (
        DECISION_EXPORT_PATH,
        decision_export_routes,
    )
    from agentmesh.collector.api.decisions import (
        DECISIONS_PATH,
        RUN_DECISIONS_PATH,
        decisions_routes,
    )
    from agentmesh.collector.api.export import EXPORT_PATH, EXPORT_ROWS_HEADER, export_routes
    from agentmesh.collector.api.payloads import (
        cost_from_json,
        cost_to_json,
        graph_from_json,
        graph_to_json,
        run_from_json,
        run_to_json,
        span_to_json,
    )
    from agentmesh.collector.api.runs import (
        COSTS_PATH,
        DETECTIONS_PATH,
        RUN_PATH,
        RUN_SPANS_PATH,
        RUNS_PATH,
        runs_routes,
    )

__all__ = [
    "COSTS_PATH",
    "DECISIONS_PATH",
    "DECISION_EXPORT_PATH",
    "DETECTIONS_PATH",
    "EXPORT_PATH",
    "EXPORT_ROWS_HEADER",
    "RUNS_PATH",
    "RUN_DECISIONS_PATH",
    "RUN_PATH",
    "RUN_SPANS_PATH",
    "cost_from_json",
    "cost_to_json",
    "decision_export_routes",
    "decisions_routes",
    "export_routes",
    "graph_from_json",
    "graph_to_json",
    "run_from_json",
    "run_to_json",
    "runs_routes",
    "span_to_json",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "COSTS_PATH": "agentmesh.collector.api.runs",
        "DECISIONS_PATH": "agentmesh.collector.api.decisions",
        "DECISION_EXPORT_PATH": "agentmesh.collector.api.decision_export",
        "decision_export_routes": "agentmesh.collector.api.decision_export",
        "RUN_DECISIONS_PATH": "agentmesh.collector.api.decisions",
        "decisions_routes": "agentmesh.collector.api.decisions",
        "DETECTIONS_PATH": "agentmesh.collector.api.runs",
        "EXPORT_PATH": "agentmesh.collector.api.export",
        "EXPORT_ROWS_HEADER": "agentmesh.collector.api.export",
        "export_routes": "agentmesh.collector.api.export",
        "RUNS_PATH": "agentmesh.collector.api.runs",
        "RUN_PATH": "agentmesh.collector.api.runs",
        "RUN_SPANS_PATH": "agentmesh.collector.api.runs",
        "cost_from_json": "agentmesh.collector.api.payloads",
        "cost_to_json": "agentmesh.collector.api.payloads",
        "graph_from_json": "agentmesh.collector.api.payloads",
        "graph_to_json": "agentmesh.collector.api.payloads",
        "run_from_json": "agentmesh.collector.api.payloads",
        "run_to_json": "agentmesh.collector.api.payloads",
        "runs_routes": "agentmesh.collector.api.runs",
        "span_to_json": "agentmesh.collector.api.payloads",
    },
)
