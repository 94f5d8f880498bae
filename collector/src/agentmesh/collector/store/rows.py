"""Rows read back from the SQL stores (DuckDB and Postgres share the column order)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar, cast

from agentmesh.collector.detection import Detection, Severity
from agentmesh.collector.graph.run_graph import AgentNode, HandoffEdge
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.store.base import RunSummary, StoredGraph
from agentmesh.collector.store.codec import details_from_json, details_to_json

__all__ = [
    "agent_from_row",
    "detection_from_row",
    "detection_to_row",
    "handoff_from_row",
    "handoff_to_row",
    "run_summary_from_row",
    "spans_by_trace",
    "stored_graphs",
]

_R = TypeVar("_R")


class Row(Protocol):
    """A row of a SQL driver: a DuckDB tuple or an asyncpg record, indexed by position."""

    def __getitem__(self, index: int, /) -> Any: ...


def run_summary_from_row(row: Row) -> RunSummary:
    """Build a run summary from a row of the runs query.

    Columns: trace_id, run_id, workflow_name, service_name, start_ns, end_ns, agents,
    handoffs, span_count, llm_calls, input_tokens, output_tokens, cost_usd, complete,
    detections, paused, resumed_from, conversation_id, resumed, resumptions, error,
    interrupted.

    Args:
        row: The row.

    Returns:
        The summary.
    """
    return RunSummary(
        trace_id=row[0],
        run_id=row[1],
        workflow_name=row[2],
        service_name=row[3],
        start_ns=row[4],
        end_ns=row[5],
        agents=tuple(row[6]),
        handoffs=int(row[7]),
        span_count=row[8],
        llm_calls=row[9],
        input_tokens=row[10],
        output_tokens=row[11],
        cost_usd=row[12],
        complete=bool(row[13]),
        detections=int(row[14]),
        paused=bool(row[15]),
        resumed_from=row[16],
        conversation_id=row[17],
        resumed=bool(row[18]),
        resumptions=int(row[19]),
        error=row[20],
        interrupted=row[21],
    )


def detection_from_row(row: Row) -> Detection:
    """Build a detection from a row of the detections table.

    Columns: id, type, severity, trace_id, run_id, agent, span_ids, explanation,
    detected_at_ns, details.

    Args:
        row: The row.

    Returns:
        The detection.
    """
    return Detection(
        id=row[0],
        type=row[1],
        severity=cast(Severity, row[2]),
        trace_id=row[3],
        run_id=row[4],
        agent=row[5],
        span_ids=tuple(row[6]),
        explanation=row[7],
        detected_at_ns=row[8],
        details=details_from_json(row[9]),
    )


def spans_by_trace(
    rows: Iterable[_R], span_of: Callable[[_R], SpanRecord]
) -> dict[str, list[SpanRecord]]:
    """Group the rows of a many-traces span query by trace, keeping their order.

    Args:
        rows: The rows, ordered by trace then by start time.
        span_of: The store's row decoder.

    Returns:
        Each trace's spans.
    """
    found: dict[str, list[SpanRecord]] = {}
    for row in rows:
        span = span_of(row)
        found.setdefault(span.trace_id, []).append(span)
    return found


def detection_to_row(detection: Detection) -> tuple[object, ...]:
    """The columns of a detection, in the order :func:`detection_from_row` reads.

    Args:
        detection: The detection.

    Returns:
        The row, ``details`` as JSON text.
    """
    d = detection
    return (
        d.id,
        d.type,
        d.severity,
        d.trace_id,
        d.run_id,
        d.agent,
        list(d.span_ids),
        d.explanation,
        d.detected_at_ns,
        details_to_json(d.details),
    )


def agent_from_row(row: Row) -> AgentNode:
    """Build an agent node from a row of the agents table.

    Columns: name, invocations, span_ids, llm_calls, input_tokens, output_tokens, cost_usd
    (more may follow).

    Args:
        row: The row.

    Returns:
        The node.
    """
    return AgentNode(
        name=row[0],
        invocations=row[1],
        span_ids=tuple(row[2]),
        llm_calls=row[3],
        input_tokens=row[4],
        output_tokens=row[5],
        cost_usd=row[6],
    )


def handoff_from_row(row: Row) -> HandoffEdge:
    """Build a handoff edge from a row of the handoffs table.

    Columns: seq, source, target, span_id, start_ns, kind, context_digest, context_size,
    checkpoint_id (more may follow).

    Args:
        row: The row.

    Returns:
        The edge.
    """
    return HandoffEdge(
        seq=row[0],
        source=row[1],
        target=row[2],
        span_id=row[3],
        start_ns=row[4],
        kind=row[5],
        context_digest=row[6],
        context_size=row[7],
        checkpoint_id=row[8],
    )


def handoff_to_row(trace_id: str, edge: HandoffEdge) -> tuple[object, ...]:
    """The columns of a handoff: ``trace_id``, then those :func:`handoff_from_row` reads.

    Args:
        trace_id: The run's trace.
        edge: The handoff.

    Returns:
        The row.
    """
    return (
        trace_id,
        edge.seq,
        edge.source,
        edge.target,
        edge.span_id,
        edge.start_ns,
        edge.kind,
        edge.context_digest,
        edge.context_size,
        edge.checkpoint_id,
    )


def stored_graphs(
    runs: Iterable[Row], agents: Iterable[Row], handoffs: Iterable[Row]
) -> dict[str, StoredGraph]:
    """Assemble graphs from the rows of the runs, agents and handoffs queries of some traces.

    Args:
        runs: Rows of the run summary query (see :func:`run_summary_from_row`).
        agents: Rows read by :func:`agent_from_row` followed by ``trace_id`` (column 7), each
            trace's in name order.
        handoffs: Rows read by :func:`handoff_from_row` followed by ``trace_id`` (column 9),
            each trace's in sequence order.

    Returns:
        Each run's graph, by trace.
    """
    by_agent: dict[str, list[AgentNode]] = {}
    for row in agents:
        by_agent.setdefault(row[7], []).append(agent_from_row(row))
    by_edge: dict[str, list[HandoffEdge]] = {}
    for row in handoffs:
        by_edge.setdefault(row[9], []).append(handoff_from_row(row))
    found: dict[str, StoredGraph] = {}
    for row in runs:
        run = run_summary_from_row(row)
        found[run.trace_id] = StoredGraph(
            run, by_agent.get(run.trace_id, []), by_edge.get(run.trace_id, [])
        )
    return found
