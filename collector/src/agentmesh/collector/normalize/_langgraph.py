"""LangGraph node detection shared by the conventions that record LangChain metadata."""

from __future__ import annotations

import json
from typing import cast

from agentmesh.collector.model import AttributeValue
from agentmesh.collector.normalize import _foreign as f
from agentmesh.collector.normalize._rewrite import Rewrite, as_int
from agentmesh.core import semconv

__all__ = ["mark_node", "mark_workflow", "metadata_node"]


def metadata_node(metadata: AttributeValue | None) -> tuple[str, int | None] | None:
    """Read the LangGraph node (and step) from LangChain run metadata serialised as JSON.

    Args:
        metadata: The ``metadata`` attribute OpenInference writes, or ``None``.

    Returns:
        ``(node, step)``, or ``None`` when the metadata names no node.
    """
    if not isinstance(metadata, str) or f.LANGGRAPH_NODE_KEY not in metadata:
        return None
    try:
        parsed: object = json.loads(metadata)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    fields = cast("dict[str, object]", parsed)
    node = fields.get(f.LANGGRAPH_NODE_KEY)
    if not isinstance(node, str) or not node or node == f.LANGGRAPH_START_NODE:
        return None
    return node, as_int(fields.get(f.LANGGRAPH_STEP_KEY))


def mark_node(rewrite: Rewrite, node: str, step: int | None) -> None:
    """Make the span the invocation of agent ``node`` (a LangGraph node).

    Args:
        rewrite: The span being rewritten.
        node: The node's name, which becomes the agent's.
        step: The superstep it ran in, when known.
    """
    rewrite.put(semconv.GEN_AI_OPERATION_NAME, semconv.Operation.INVOKE_AGENT)
    rewrite.put(semconv.GEN_AI_AGENT_NAME, node)
    rewrite.add(semconv.AGENTMESH_LANGGRAPH_NODE, node)
    rewrite.add(semconv.AGENTMESH_LANGGRAPH_STEP, step)
    rewrite.add(semconv.AGENTMESH_FRAMEWORK, f.LANGGRAPH)


def mark_workflow(rewrite: Rewrite, name: str, framework: str | None) -> None:
    """Make the span the invocation of workflow ``name``.

    Args:
        rewrite: The span being rewritten.
        name: The workflow's name.
        framework: The framework running it, when known.
    """
    rewrite.put(semconv.GEN_AI_OPERATION_NAME, semconv.Operation.INVOKE_WORKFLOW)
    rewrite.add(semconv.GEN_AI_WORKFLOW_NAME, name)
    rewrite.add(semconv.AGENTMESH_FRAMEWORK, framework)
