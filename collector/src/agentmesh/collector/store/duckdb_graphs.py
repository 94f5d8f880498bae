"""Graph writes to DuckDB as appends, with superseded versions deleted now and then.

A live run's graph is written many times (at most once a second while it runs, and when it
completes). Each write appends the graph's ``runs``, ``agents`` and ``handoffs`` rows under a
new version number, one per write; the views of the same names show each trace's newest
version (:data:`~agentmesh.collector.store.duckdb_schema.VIEWS`). Replacing rows in place
instead (delete the trace's rows, insert the new ones, keys on every table) scanned the tables
on each write and updated their indexes, a cost that grew with the file:
``bench/duckdb_graph_writes.py`` measures 17.5 ms of CPU per write of 79 graphs on a new file
and 32.5 ms at 320k rows, against 9.0 and 10.8 ms appended (passes included).

Superseded rows are deleted in one pass once the rows written since the last pass reach the
rows kept after it (at least :data:`COMPACT_MIN_ROWS`), so the tables hold at most about twice
the live rows and each row written costs a bounded share of a pass.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import Final

import duckdb

from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.store.graph_tables import (
    AGENT_SCHEMA,
    HANDOFF_SCHEMA,
    RUN_SCHEMA,
    graph_tables,
)
from agentmesh.core.log import get_logger

__all__ = ["COMPACT_MIN_ROWS", "GraphVersions", "transaction"]

log = get_logger(__name__)

COMPACT_MIN_ROWS: Final = 100_000
"""Rows written between two deletions of superseded versions, at the least."""

_GRAPH_RUNS: Final = "agentmesh_graph_runs"
_GRAPH_AGENTS: Final = "agentmesh_graph_agents"
_GRAPH_HANDOFFS: Final = "agentmesh_graph_handoffs"
_APPENDS: Final = tuple(
    (
        name,
        f"INSERT INTO {target} ({', '.join(columns)}, version) "  # noqa: S608 - constants only
        f"SELECT *, $version FROM {name}",
    )
    for name, target, columns in (
        (_GRAPH_RUNS, "run_versions", RUN_SCHEMA.names),
        (_GRAPH_AGENTS, "agent_versions", AGENT_SCHEMA.names),
        (_GRAPH_HANDOFFS, "handoff_versions", HANDOFF_SCHEMA.names),
    )
)
"""Each batch table's name and the statement appending it under the version given."""
_NEWEST: Final = "(SELECT trace_id, max(version) AS newest FROM run_versions GROUP BY trace_id)"
_COMPACT: Final = tuple(
    f"DELETE FROM {table} t USING {_NEWEST} n "  # noqa: S608 - constants only
    "WHERE t.trace_id = n.trace_id AND t.version < n.newest"
    # run_versions last: the other two are measured against its newest versions
    for table in ("agent_versions", "handoff_versions", "run_versions")
)
_COUNT: Final = (
    "SELECT (SELECT count(*) FROM run_versions) + (SELECT count(*) FROM agent_versions) "
    "+ (SELECT count(*) FROM handoff_versions), (SELECT max(version) FROM run_versions)"
)


class GraphVersions:
    """Writes graphs to one DuckDB connection as new versions (used by the store's thread).

    Args:
        compact_min_rows: Rows written between two deletions of superseded versions, at the
            least.
    """

    def __init__(self, compact_min_rows: int = COMPACT_MIN_ROWS) -> None:
        self._compact_min = compact_min_rows
        self._version = 0
        self._kept = 0  # rows in the tables after the last pass (or at load)
        self._written = 0  # rows appended since
        self._compactions = 0

    @property
    def compactions(self) -> int:
        """How many times superseded versions were deleted."""
        return self._compactions

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        """Take the newest version and the row count from a freshly opened file."""
        rows, newest = _counts(con)
        self._kept, self._written = rows, 0
        self._version = newest

    def write(self, con: duckdb.DuckDBPyConnection, graphs: Sequence[RunGraph]) -> None:
        """Append ``graphs`` (one per trace) as the next version, in one transaction.

        Raises:
            duckdb.Error: The write failed (nothing of it is stored).
        """
        tables = graph_tables(graphs)
        version = self._version + 1
        parts = (tables.runs, tables.agents, tables.handoffs)
        for (name, _), table in zip(_APPENDS, parts, strict=True):
            con.register(name, table)
        try:
            with transaction(con):
                for _, append in _APPENDS:
                    con.execute(append, {"version": version})
        finally:
            for name, _ in _APPENDS:
                con.unregister(name)
        self._version = version
        self._written += sum(part.num_rows for part in parts)
        if self._written >= max(self._compact_min, self._kept):
            try:
                self.compact(con)
            except duckdb.Error as exc:  # the write is stored; try again a pass later
                self._written = 0
                log.warning("superseded graph versions not deleted", error=str(exc))

    def compact(self, con: duckdb.DuckDBPyConnection) -> None:
        """Delete every superseded version now, in one transaction.

        Raises:
            duckdb.Error: The deletion failed (the tables are as they were).
        """
        with transaction(con):
            for statement in _COMPACT:
                con.execute(statement)
        self._kept, self._written = _counts(con)[0], 0
        self._compactions += 1

    def recount(self, con: duckdb.DuckDBPyConnection) -> None:
        """Take the row count again after rows were deleted (pruning): passes stay paced."""
        self._kept = _counts(con)[0]
        self._written = 0


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Generator[None]:
    """Run the block in one transaction: committed if it ends, rolled back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    rows, newest = con.execute(_COUNT).fetchall()[0]  # an aggregate: always one row
    return int(rows), int(newest or 0)
