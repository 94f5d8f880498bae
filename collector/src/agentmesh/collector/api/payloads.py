"""The JSON of the query API: runs, a run's graph, cost rows; and back, for the CLI.

Example:
    >>> run = RunSummary("t" * 32, "run-1", "research", None, 1, 2, ("a", "b"), 1, 5, 2,
    ...                  10, 20, 0.5, True, 0)
    >>> run_from_json(run_to_json(run)) == run
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, cast

from agentmesh.collector.graph.run_graph import AgentNode, HandoffEdge
from agentmesh.collector.store.base import CostRow, RunSummary, StoredGraph
from agentmesh.core import ConfigError

__all__ = [
    "cost_from_json",
    "cost_to_json",
    "graph_from_json",
    "graph_to_json",
    "run_from_json",
    "run_to_json",
]


def run_to_json(run: RunSummary) -> dict[str, Any]:
    """A run's summary as a JSON object (``agents`` as an array)."""
    out = asdict(run)
    out["agents"] = list(run.agents)
    return out


def run_from_json(data: Mapping[str, Any]) -> RunSummary:
    """Read a run's summary written by :func:`run_to_json`.

    Raises:
        ConfigError: The object is not such a summary.
    """
    try:
        fields: dict[str, Any] = {**data, "agents": tuple(cast("list[str]", data["agents"]))}
        return RunSummary(**fields)
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
            fields: dict[str, Any] = {**agent, "span_ids": tuple(agent["span_ids"])}
            agents.append(AgentNode(**fields))
        handoffs = [HandoffEdge(**h) for h in cast("list[dict[str, Any]]", data["handoffs"])]
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
