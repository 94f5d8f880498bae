"""Why a run failed, in plain words: the step that failed, else its root span's error.

A run *failed* when its root span ended in error: the workflow (or the app's own root span)
raised. A step that failed and was retried, or whose error the app caught, does not fail the
run. The step a failed run names is the failed step (agent, node or tool) that ended last: the
one the error left the run through (an agent that failed because its tool did ends after the
tool; a step that failed and was retried ended before the final failure). When that step failed
because a tool inside it raised the same error (a LangGraph ``ToolNode`` running a tool that
raised), the tool is named too: ``step 'tools' failed: ValueError in tool 'lookup'``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv

__all__ = [
    "STEP_OPERATIONS",
    "failed_step",
    "failed_tool",
    "inner_tool",
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


def failed_tool(node: GraphNode) -> bool:
    """Tell whether a span is a tool call that ended in error.

    Args:
        node: The span.

    Returns:
        Whether it is a failed ``execute_tool`` step.
    """
    return failed_step(node) and node.operation == semconv.Operation.EXECUTE_TOOL


_MAX_DEPTH: Final = 256
"""How far up a tool's ancestry :func:`inner_tool` looks for the failed step."""


def _path_to(
    node: GraphNode, step: GraphNode, nodes: Mapping[str, GraphNode]
) -> tuple[str, ...] | None:
    """The span ids between a span and a step above it, or ``None`` when it is not below."""
    path: list[str] = []
    parent = node.parent_id
    for _ in range(_MAX_DEPTH):
        if parent is None:
            return None
        if parent == step.span_id:
            return tuple(path)
        path.append(parent)
        above = nodes.get(parent)
        if above is None:
            return None
        parent = above.parent_id
    return None


def inner_tool(
    step: GraphNode | None, tools: Iterable[GraphNode], nodes: Mapping[str, GraphNode]
) -> GraphNode | None:
    """The tool a failed step failed through: inside the step, and with the step's error.

    Of the failed tool calls below the step with its error type, the innermost one (a
    LangGraph ``ToolNode`` is itself an ``execute_tool`` span around the tool that raised) that
    ended last (a tool retried inside the step failed before its final failure).

    Args:
        step: The failed step the run names, if any.
        tools: The run's failed tool calls (see :func:`failed_tool`).
        nodes: The run's spans by span id (to walk each tool's ancestry).

    Returns:
        The tool, else ``None`` (no tool below the step failed with its error: the step failed
        otherwise, or a tool's error was handled).
    """
    if step is None:
        return None
    below: dict[str, tuple[GraphNode, tuple[str, ...]]] = {}
    for tool in tools:
        if tool is step or tool.error_type != step.error_type:
            continue
        path = _path_to(tool, step, nodes)
        if path is not None:
            below[tool.span_id] = (tool, path)
    outer = {span_id for _, path in below.values() for span_id in path}
    named: GraphNode | None = None
    for tool, _ in below.values():
        if tool.span_id not in outer:
            named = later_failure(named, tool)
    return named


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


def step_failure(step: GraphNode, tool: GraphNode | None = None) -> str:
    """Say which step failed and with what error.

    Args:
        step: The failed step.
        tool: The tool it failed through (see :func:`inner_tool`), if any.

    Returns:
        ``step 'writer' failed: RateLimitError`` (the error type when recorded), with
        `` in tool 'lookup'`` when a tool is given.
    """
    text = f"step {step_name(step)!r} failed"
    if step.error_type:
        text = f"{text}: {step.error_type}"
    if tool is not None and tool.tool_name:
        text = f"{text} in tool {tool.tool_name!r}"
    return text


def run_failure(
    root: GraphNode, step: GraphNode | None, tool: GraphNode | None = None
) -> str | None:
    """Say why a run failed, or ``None`` when its root span did not end in error.

    Args:
        root: The run's root span.
        step: The failed step to name (see :func:`later_failure`), if any.
        tool: The tool the step failed through (see :func:`inner_tool`), if any.

    Returns:
        The step's failure, else the root's error type, else ``the run ended in error``.
    """
    if not root.error:
        return None
    if step is not None:
        return step_failure(step, tool)
    return root.error_type or "the run ended in error"
