"""Why a run failed, in plain words: the step that failed, else its root span's error.

A run *failed* when its root span ended in error: the workflow (or the app's own root span)
raised. A step that failed and was retried, or whose error the app caught, does not fail the
run. The step a failed run names is the failed step (agent, node or tool) that ended last: the
one the error left the run through (an agent that failed because its tool did ends after the
tool; a step that failed and was retried ended before the final failure).
"""

from __future__ import annotations

from typing import Final

from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv

__all__ = [
    "STEP_OPERATIONS",
    "failed_step",
    "later_failure",
    "run_failure",
    "step_failure",
    "step_name",
]

STEP_OPERATIONS: Final = frozenset(
    {
        semconv.Operation.INVOKE_AGENT,
        semconv.Operation.INVOKE_NODE,
        semconv.Operation.EXECUTE_TOOL,
    }
)
"""The operations of a run's steps."""


def failed_step(node: GraphNode) -> bool:
    """Tell whether a span is a step whose own span ended in error (not a start marker).

    Args:
        node: The span.

    Returns:
        Whether it is a failed step.
    """
    return node.error and node.operation in STEP_OPERATIONS and node.started is None


def later_failure(current: GraphNode | None, node: GraphNode) -> GraphNode:
    """Of two failed steps, the one a failed run names: the later end, then the earlier start.

    Args:
        current: The step named so far, if any.
        node: Another failed step.

    Returns:
        The one to name.
    """
    if current is None:
        return node
    if (node.end_ns, -node.start_ns, node.span_id) > (
        current.end_ns,
        -current.start_ns,
        current.span_id,
    ):
        return node
    return current


def step_name(step: GraphNode) -> str:
    """Name a step as failures and interruptions name it: its agent or node, else its tool.

    Args:
        step: The step.

    Returns:
        The agent (or node) name, else the tool name, else the span id.
    """
    return step.agent or step.tool_name or step.span_id


def step_failure(step: GraphNode) -> str:
    """Say which step failed and with what error.

    Args:
        step: The failed step.

    Returns:
        ``step 'writer' failed: RateLimitError`` (the error type when recorded).
    """
    text = f"step {step_name(step)!r} failed"
    return f"{text}: {step.error_type}" if step.error_type else text


def run_failure(root: GraphNode, step: GraphNode | None) -> str | None:
    """Say why a run failed, or ``None`` when its root span did not end in error.

    Args:
        root: The run's root span.
        step: The failed step to name (see :func:`later_failure`), if any.

    Returns:
        The step's failure, else the root's error type, else ``the run ended in error``.
    """
    if not root.error:
        return None
    if step is not None:
        return step_failure(step)
    return root.error_type or "the run ended in error"
