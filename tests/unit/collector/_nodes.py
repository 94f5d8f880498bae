"""Small builders of graph nodes and cycles for the streaming detector tests.

Times are seconds after ``T0`` (an arbitrary Unix time), so tests read like a timeline.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv

T0 = 1_700_000_000.0
"""Unix seconds of time 0 in the tests."""

_ids = itertools.count(1)


def ns(t: float) -> int:
    """Unix nanoseconds of test time ``t`` (seconds after ``T0``)."""
    return round((T0 + t) * 1e9)


def new_id() -> str:
    """A fresh span id (16 hex digits)."""
    return f"{next(_ids):016x}"


def trace_of(run: str) -> str:
    """A trace id (32 hex digits) derived from a run name."""
    return hashlib.sha256(run.encode()).hexdigest()[:32]


def chat(
    run: str,
    start: float,
    duration: float = 1.0,
    *,
    parent: str | None = "p",
    model: str | None = "gpt-4o",
    provider: str | None = "openai",
    input_tokens: int = 100,
    output_tokens: int = 50,
    cost_usd: float = 0.001,
    error: bool = False,
    http_status: int | None = None,
    error_type: str | None = None,
    task_class: str | None = None,
    span_id: str | None = None,
) -> GraphNode:
    """A ``chat`` span of run ``run`` (trace derived from the run name)."""
    return GraphNode(
        trace_of(run),
        span_id or new_id(),
        parent,
        ns(start),
        ns(start + duration),
        semconv.Operation.CHAT,
        None,
        0 if error else input_tokens,
        0 if error else output_tokens,
        0.0 if error else cost_usd,
        None,
        run,
        None,
        None,
        None,
        error=error,
        error_type=error_type,
        http_status=http_status,
        provider=provider,
        model=model,
        task_class=task_class,
    )


def step(
    run: str,
    span_id: str,
    operation: str,
    name: str,
    start: float,
    duration: float,
    *,
    parent: str | None = "p",
) -> GraphNode:
    """The span of a workflow, agent, node or tool step (what arrives when it ends)."""
    is_agent = operation in (semconv.Operation.INVOKE_AGENT, semconv.Operation.INVOKE_NODE)
    return GraphNode(
        trace_of(run),
        span_id,
        parent,
        ns(start),
        ns(start + duration),
        operation,
        name if is_agent else None,
        0,
        0,
        0.0,
        None,
        run,
        name if operation == semconv.Operation.INVOKE_WORKFLOW else None,
        None,
        None,
        tool_name=name if operation == semconv.Operation.EXECUTE_TOOL else None,
    )


def marker(
    run: str,
    started: str,
    start: float,
    *,
    agent: str | None = None,
    tool: str | None = None,
    workflow: str | None = None,
    task_class: str | None = None,
) -> GraphNode:
    """The start marker of step ``started`` (a zero-length child of the step span)."""
    return GraphNode(
        trace_of(run),
        new_id(),
        started,
        ns(start),
        ns(start),
        None,
        agent,
        0,
        0,
        0.0,
        None,
        run,
        workflow,
        None,
        None,
        tool_name=tool,
        task_class=task_class,
        started=started,
    )


def cycle(nodes: Sequence[GraphNode], now: float | None = None) -> CycleView:
    """A pipeline cycle bringing ``nodes`` at test time ``now`` (default: the last end)."""
    now_ns = max((node.end_ns for node in nodes), default=ns(0)) if now is None else ns(now)
    return CycleView(list(nodes), {}, now_ns)
