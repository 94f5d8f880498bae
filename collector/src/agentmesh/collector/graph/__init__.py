"""Execution graphs of runs, rebuilt from their traces as spans arrive."""

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
