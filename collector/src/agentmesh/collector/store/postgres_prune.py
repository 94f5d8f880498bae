"""Retention on the Postgres store: delete the runs that ended before a time, whole.

One call deletes at most ``limit`` runs (the earliest started first) in one transaction: their
spans, detections, agents, handoffs and run rows, each found through its trace key. The runs
are found through the index on their start (a run that ended before the cut-off started
before it too) and locked (``FOR UPDATE SKIP LOCKED``): a graph write racing the deletion
waits for it, and collectors sharing the database prune different runs at once. The call that
deletes fewer runs than its limit also deletes the leftovers of traces with no run at all:
spans that ended and detections made before the cut-off (this reads the whole spans table,
once per pass). Freed space is reused by later rows after autovacuum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from agentmesh.collector.store.base import Pruned

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["prune_ended", "row_count"]

_ENDED: Final = (
    "SELECT trace_id FROM runs WHERE start_ns < $1 AND end_ns < $1 "
    "ORDER BY start_ns LIMIT $2 FOR UPDATE SKIP LOCKED"
)
"""The traces of up to ``$2`` runs that ended before ``$1``, earliest start first, locked."""

_DELETE_RUNS: Final = tuple(
    (table, f"DELETE FROM {table} WHERE trace_id = ANY($1::text[])")  # noqa: S608 - constants
    for table in ("spans", "detections", "agents", "handoffs", "runs")
)
"""(table, statement) deleting the rows of the traces ``$1`` (runs last)."""

_NO_RUN: Final = "NOT EXISTS (SELECT 1 FROM runs r WHERE r.trace_id = t.trace_id)"
_DELETE_LEFTOVERS: Final = (
    ("spans", f"DELETE FROM spans t WHERE end_ns < $1 AND {_NO_RUN}"),  # noqa: S608
    ("detections", f"DELETE FROM detections t WHERE detected_at_ns < $1 AND {_NO_RUN}"),  # noqa: S608
)
"""(table, statement) deleting what traces without a run left before ``$1``."""


async def prune_ended(
    con: PoolConnectionProxy[asyncpg.Record], before_ns: int, limit: int
) -> Pruned:
    """Delete up to ``limit`` runs that ended before ``before_ns`` (see the module).

    Args:
        con: A connection of the store's pool (its search path is the store's schema).
        before_ns: The cut-off (Unix nanoseconds).
        limit: Most runs deleted.

    Returns:
        What was deleted.
    """
    deleted: dict[str, int] = {"spans": 0, "detections": 0}
    async with con.transaction():
        traces = [str(row[0]) for row in await con.fetch(_ENDED, before_ns, limit)]
        if traces:
            for table, statement in _DELETE_RUNS:
                n = row_count(await con.execute(statement, traces))
                if table in deleted:
                    deleted[table] += n
        if len(traces) < limit:
            for table, statement in _DELETE_LEFTOVERS:
                deleted[table] += row_count(await con.execute(statement, before_ns))
    return Pruned(runs=len(traces), spans=deleted["spans"], detections=deleted["detections"])


def row_count(status: str) -> int:
    """The row count of a command status such as ``INSERT 0 12`` or ``DELETE 12``.

    Args:
        status: The status asyncpg's ``execute`` returns.

    Returns:
        The count (0 for a status without one).
    """
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
