"""The JSON of the query API: runs, a run's graph, cost rows; and back, for the CLI.

Reading back keeps the fields this version knows and ignores the others, so a CLI reads a newer
collector (which may send fields added since) as well as its own.

Example:
    >>> run = RunSummary("t" * 32, "run-1", "research", None, 1, 2, ("a", "b"), 1, 5, 2,
    ...                  10, 20, 0.5, True, 0)
    >>> run_from_json(run_to_json(run)) == run
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, cast

from agentmesh.collector.graph.node import graph_node
from agentmesh.collector.graph.run_graph import AgentNode, HandoffEdge
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.store.base import CostRow, RunSummary, StoredGraph
from agentmesh.core import ConfigError

__all__ = [
    "cost_from_json",
    "cost_to_json",
    "graph_from_json",
    "graph_to_json",
    "run_from_json",
    "run_to_json",
    "span_to_json",
]


def run_to_json(run: RunSummary) -> dict[str, Any]:
    """A run's summary as a JSON object (``agents`` as an array; its ``state`` named)."""
    out = asdict(run)
    out["agents"] = list(run.agents)
    out["state"] = run.state
    return out


def _known(kind: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of the dataclass ``kind``."""
    names = {field.name for field in fields(kind)}
    return {key: value for key, value in data.items() if key in names}


def run_from_json(data: Mapping[str, Any]) -> RunSummary:
    """Read a run's summary written by :func:`run_to_json`.

    Raises:
        ConfigError: The object is not such a summary.
    """
    try:
        known = _known(RunSummary, data)
        known["agents"] = tuple(cast("list[str]", data["agents"]))
        return RunSummary(**known)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"not a run summary: {exc}") from exc


def graph_to_json(graph: StoredGraph) -> dict[str, Any]:
    """A stored graph as a JSON object: ``run``, ``agents``, ``handoffs``."""
    return {
        "run": run_to_json(graph.run),
        "agents": [{**asdict(a), "span_ids": list(a.span_ids)} for a in graph.agents],
        "handoffs": [asdict(h) for h in graph.handoffs],
    }


def graph_from_json(data: Mapping[str, Any]) -> StoredGraph:
    """Read a stored graph written by :func:`graph_to_json`.

    Raises:
        ConfigError: The object is not such a graph.
    """
    try:
        agents: list[AgentNode] = []
        for agent in cast("list[dict[str, Any]]", data["agents"]):
            known = _known(AgentNode, agent)
            known["span_ids"] = tuple(agent["span_ids"])
            agents.append(AgentNode(**known))
        handoffs = [
            HandoffEdge(**_known(HandoffEdge, h))
            for h in cast("list[dict[str, Any]]", data["handoffs"])
        ]
        return StoredGraph(run_from_json(data["run"]), agents, handoffs)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"not a run graph: {exc}") from exc


def cost_to_json(row: CostRow) -> dict[str, Any]:
    """A cost row as a JSON object."""
    return asdict(row)


def cost_from_json(data: Mapping[str, Any]) -> CostRow:
    """Read a cost row written by :func:`cost_to_json`.

    Raises:
        ConfigError: The object is not such a row.
    """
    try:
        fields: dict[str, Any] = dict(data)
        return CostRow(**fields)
    except TypeError as exc:
        raise ConfigError(f"not a cost row: {exc}") from exc


def span_to_json(span: SpanRecord) -> dict[str, Any]:
    """A stored span as a JSON object, with what the graph reads of it.

    Besides the span's own fields and attributes, ``operation`` (``gen_ai.operation.name``),
    ``agent``, ``model``, ``tool``, tokens, ``cost_usd`` and ``error_type`` are the values the
    graph builder takes from the normalised attributes, whatever convention the span came in;
    ``marker`` is true on a step's start marker (a span that only says a step began).
    """
    node = graph_node(span)
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "kind": span.kind,
        "start_ns": span.start_ns,
        "end_ns": span.end_ns,
        "status_code": span.status_code,
        "status_message": span.status_message,
        "service_name": span.service_name,
        "operation": node.operation,
        "agent": node.agent,
        "model": node.model,
        "tool": node.tool_name,
        "input_tokens": node.input_tokens,
        "output_tokens": node.output_tokens,
        "cost_usd": node.cost_usd,
        "error_type": node.error_type,
        "marker": node.started is not None,
        "attributes": dict(span.attributes),
        "events": [
            {"name": e.name, "time_ns": e.time_ns, "attributes": dict(e.attributes)}
            for e in span.events
        ],
    }
