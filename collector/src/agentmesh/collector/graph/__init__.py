"""Execution graphs of runs, rebuilt from their traces as spans arrive."""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.graph.builder import GraphBuilder
    from agentmesh.collector.graph.run_graph import (
        INFERRED,
        AgentInvocation,
        AgentNode,
        AgentVisit,
        HandoffEdge,
        RunGraph,
    )

__all__ = [
    "INFERRED",
    "AgentInvocation",
    "AgentNode",
    "AgentVisit",
    "GraphBuilder",
    "HandoffEdge",
    "RunGraph",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "AgentInvocation": "agentmesh.collector.graph.run_graph",
        "AgentNode": "agentmesh.collector.graph.run_graph",
        "AgentVisit": "agentmesh.collector.graph.run_graph",
        "GraphBuilder": "agentmesh.collector.graph.builder",
        "HandoffEdge": "agentmesh.collector.graph.run_graph",
        "INFERRED": "agentmesh.collector.graph.run_graph",
        "RunGraph": "agentmesh.collector.graph.run_graph",
    },
)
