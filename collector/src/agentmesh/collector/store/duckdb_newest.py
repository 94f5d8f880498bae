"""A page of runs from the DuckDB store without settling every trace's newest version.

``run_versions`` holds every version of each run (older ones until compaction drops them). A
page must show each run's *newest* row, filtered and ordered on that row. The plain way (a
window keeping each trace's newest row, then the filter, the order and the limit) settles the
newest version of every trace in the file on each call: about 50 ms at 200,000 runs on one
thread, for a page of 20.

:func:`newest_page` reads only what the page needs:

1. the first ``m`` rows of *any* version that pass the filter, in the page's order (a top-N
   scan of two columns);
2. which of those are not their trace's newest version: a row of the same trace with a higher
   version exists. Versions grow with each write, so the scan reads only the row groups
   written since the oldest candidate's version (their min/max statistics skip the rest);
3. the newest candidates, in order, cut to the limit.

Every newest row that passes the filter is among all rows that pass it, in the same order, so
when step 3 finds ``limit`` of them they are the page; when fewer and the candidates ran out,
that is the whole answer; otherwise ``m`` grows fourfold and the steps run again. The page's
summaries then come from its exact ``(trace, version)`` rows. A page of 20 at 200,000 runs:
about 16 ms instead of 52 (one DuckDB thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import duckdb

from agentmesh.collector.store.duckdb_graph_reads import summaries_of

__all__ = ["newest_page"]

_FIRST_CANDIDATES: Final = 32
"""Fewest candidate rows read in the first round."""

_PAIRS: Final = (
    "(SELECT unnest($traces::VARCHAR[]) AS trace_id, unnest($versions::BIGINT[]) AS version)"
)
_STALE: Final = f"""
    SELECT DISTINCT c.trace_id, c.version
    FROM run_versions r JOIN {_PAIRS} c ON r.trace_id = c.trace_id AND r.version > c.version
    WHERE r.version > $oldest
"""  # noqa: S608 - built from constants only
"""The candidates ``(trace, version)`` that a newer version of their trace supersedes."""

_PAGE_SUMMARIES: Final = summaries_of(
    f"SELECT r.* FROM run_versions r SEMI JOIN {_PAIRS} w "  # noqa: S608 - constants only
    "ON r.trace_id = w.trace_id AND r.version = w.version"
)
"""The summaries of the rows ``(trace, version)`` given, latest start first."""


def newest_page(
    con: duckdb.DuckDBPyConnection,
    where: str,
    order: str,
    params: Mapping[str, Any],
    limit: int,
) -> list[tuple[Any, ...]]:
    """Summarise the first ``limit`` newest run rows that pass ``where``, in ``order``.

    Args:
        con: A connection to the store's database.
        where: A condition on a ``run_versions`` row (constants and named parameters only).
        order: The page's order (``ORDER BY`` terms on ``run_versions`` columns), with
            ``trace_id`` last so that it is total.
        params: The named parameters ``where`` and ``order`` use.
        limit: Most runs in the page (at least 1).

    Returns:
        Summary rows (the columns of ``rows.run_summary_from_row``), latest start first.
    """
    candidates_query = (
        f"SELECT trace_id, version FROM run_versions WHERE {where} "  # noqa: S608 - see args
        f"ORDER BY {order} LIMIT $m"
    )
    wanted = max(2 * limit, _FIRST_CANDIDATES)
    while True:
        candidates = con.execute(candidates_query, {**params, "m": wanted}).fetchall()
        if not candidates:
            return []
        stale = set(
            con.execute(
                _STALE,
                {
                    "traces": [row[0] for row in candidates],
                    "versions": [row[1] for row in candidates],
                    "oldest": min(row[1] for row in candidates),
                },
            ).fetchall()
        )
        page = [row for row in candidates if (row[0], row[1]) not in stale][:limit]
        if len(page) == limit or len(candidates) < wanted:
            break
        wanted *= 4
    if not page:
        return []
    pairs = {"traces": [row[0] for row in page], "versions": [row[1] for row in page]}
    return con.execute(_PAGE_SUMMARIES, pairs).fetchall()
