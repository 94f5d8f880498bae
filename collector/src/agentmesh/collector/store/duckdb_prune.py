"""Retention on the DuckDB store: delete the runs that ended before a time, whole.

One call deletes at most ``limit`` runs (the earliest started first) in one transaction: their
spans, detections and every version of their graph rows. The runs are picked by each trace's
newest graph version, settled only for the traces that have some version ending before the
cut-off (the newest row of an expired run is such a row). The call that deletes fewer runs
than its limit also deletes the leftovers of traces with no graph at all: spans that ended and
detections made before the cut-off.

DuckDB does not give the file's space back to the system: the freed blocks are reused by
later writes, so the file stops growing once retention deletes as much as arrives.
"""

from __future__ import annotations

from typing import Final

import duckdb

from agentmesh.collector.store.base import Pruned
from agentmesh.collector.store.duckdb_graphs import transaction

__all__ = ["prune_ended"]

_ENDED: Final = """
    SELECT trace_id FROM (
        SELECT trace_id, start_ns, end_ns FROM run_versions
        WHERE trace_id IN (SELECT trace_id FROM run_versions WHERE end_ns < $before)
        QUALIFY version = max(version) OVER (PARTITION BY trace_id))
    WHERE end_ns < $before
    ORDER BY start_ns, trace_id
    LIMIT $limit
"""
"""The traces of the runs whose newest graph ended before ``$before``, earliest start first."""

_OF_TRACES: Final = "trace_id IN (SELECT unnest($traces::VARCHAR[]))"
_DELETE_RUNS: Final = tuple(
    (table, f"DELETE FROM {table} WHERE {_OF_TRACES}")  # noqa: S608 - constants only
    for table in ("spans", "detections", "agent_versions", "handoff_versions", "run_versions")
)
"""(table, statement) deleting the rows of the traces ``$traces`` (run_versions last)."""

_NO_RUN: Final = "NOT EXISTS (SELECT 1 FROM run_versions r WHERE r.trace_id = t.trace_id)"
_DELETE_LEFTOVERS: Final = (
    ("spans", f"DELETE FROM spans t WHERE end_ns < $before AND {_NO_RUN}"),  # noqa: S608
    ("detections", f"DELETE FROM detections t WHERE detected_at_ns < $before AND {_NO_RUN}"),  # noqa: S608
)
"""(table, statement) deleting what traces without a graph left before ``$before``."""


def prune_ended(con: duckdb.DuckDBPyConnection, before_ns: int, limit: int) -> Pruned:
    """Delete up to ``limit`` runs that ended before ``before_ns`` (see the module).

    Args:
        con: The store's writing connection.
        before_ns: The cut-off (Unix nanoseconds).
        limit: Most runs deleted.

    Returns:
        What was deleted.

    Raises:
        duckdb.Error: The deletion failed (nothing of it is applied).
    """
    deleted: dict[str, int] = {"spans": 0, "detections": 0}
    with transaction(con):
        rows = con.execute(_ENDED, {"before": before_ns, "limit": limit}).fetchall()
        traces = [str(row[0]) for row in rows]
        if traces:
            for table, statement in _DELETE_RUNS:
                n = _count(con.execute(statement, {"traces": traces}))
                if table in deleted:
                    deleted[table] += n
        if len(traces) < limit:
            for table, statement in _DELETE_LEFTOVERS:
                deleted[table] += _count(con.execute(statement, {"before": before_ns}))
    return Pruned(runs=len(traces), spans=deleted["spans"], detections=deleted["detections"])


def _count(result: duckdb.DuckDBPyConnection) -> int:
    row = result.fetchone()
    return int(row[0]) if row is not None else 0
