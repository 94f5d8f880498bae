"""Reads of the DuckDB store's graph tables that go to the newest versions directly.

Each graph write appends a trace's rows under a new version
(:mod:`~agentmesh.collector.store.duckdb_graphs`), and the views ``runs``, ``agents`` and
``handoffs`` show each trace's newest version. The views suit ad-hoc SQL, but every read
through them settles the newest version of *every* trace first: a run summary, with its
agent names, handoff count and detection count drawn from the agents and handoffs views,
cost a join over the whole of each table, whatever the page asked.

The queries here pick the runs first (the newest version of each, then the time window, then
the order and limit), and join only those runs' rows, by trace and version, from the versioned
tables. A graph's agents and handoffs are found by their row ids first (a join on the trace
and version columns alone), then read whole: joining the tables directly read every column of
every row before the join dropped all but a few (DuckDB 2.0 does not defer those columns).
On a store of 20,000 runs (600,000 handoff rows): ``runs(200)`` about 20 ms instead of 75,
one graph about 13 ms instead of 30, the graphs of 100 runs about 38 ms instead of 85.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGENTS_OF",
    "COSTS_BY_AGENT",
    "HANDOFFS_OF",
    "LATEST_RUNS",
    "MATCHING",
    "MATCHING_ORDER",
    "PREVIOUS_RUN",
    "RESUMPTIONS",
    "RUNS_OF",
    "RUN_ORDER",
    "WINDOW",
    "run_filter",
    "run_list",
    "summaries_of",
]

_LATEST: Final = "QUALIFY version = max(version) OVER (PARTITION BY trace_id)"
"""Keeps each trace's newest row (the trace is the partition: a filter on it may come first)."""

_SUMMARY: Final = """
    WITH page AS ({page}),
    names AS (
        SELECT a.trace_id, list(a.name ORDER BY a.name) AS names
        FROM agent_versions a JOIN page p ON a.trace_id = p.trace_id AND a.version = p.version
        GROUP BY a.trace_id),
    moves AS (
        SELECT h.trace_id, count(*) AS n
        FROM handoff_versions h JOIN page p ON h.trace_id = p.trace_id AND h.version = p.version
        GROUP BY h.trace_id),
    found AS (
        SELECT trace_id, count(*) AS n FROM detections
        WHERE trace_id IN (SELECT trace_id FROM page) GROUP BY trace_id),
    resumers AS (
        SELECT resumed_from AS run_id, count(DISTINCT trace_id) AS n FROM run_versions
        WHERE resumed_from IS NOT NULL AND resumed_from IN (SELECT run_id FROM page)
        GROUP BY resumed_from)
    SELECT r.trace_id, r.run_id, r.workflow_name, r.service_name, r.start_ns, r.end_ns,
        coalesce(names.names, []::VARCHAR[]), coalesce(moves.n, 0),
        r.span_count, r.llm_calls, r.input_tokens, r.output_tokens, r.cost_usd, r.complete,
        coalesce(found.n, 0), coalesce(r.paused, false), r.resumed_from, r.conversation_id,
        coalesce(r.resumed, false), coalesce(resumers.n, 0), r.error, r.interrupted
    FROM page r
    LEFT JOIN names ON names.trace_id = r.trace_id
    LEFT JOIN moves ON moves.trace_id = r.trace_id
    LEFT JOIN found ON found.trace_id = r.trace_id
    LEFT JOIN resumers ON resumers.run_id = r.run_id
    ORDER BY r.start_ns DESC, r.trace_id
"""
"""Run summaries (the columns of ``rows.run_summary_from_row``) of the runs ``page`` selects
(newest-version rows of ``run_versions``, with their ``version``)."""

_WANTED: Final = "trace_id IN (SELECT unnest($traces::VARCHAR[]))"
_NEWEST_OF_WANTED: Final = (
    f"(SELECT trace_id, max(version) AS version FROM run_versions WHERE {_WANTED} "  # noqa: S608
    "GROUP BY trace_id)"
)


_CONTINUED: Final = (
    "run_id IN (SELECT resumed_from FROM run_versions WHERE resumed_from IS NOT NULL)"
)
"""A stored run continues the run (a run's link, once stored, stays in its later versions:
any version's ``resumed_from`` counts; the NULLs are left out, or ``NOT IN`` is never true)."""
_UNFINISHED: Final = "(coalesce(paused, false) OR error IS NOT NULL OR interrupted IS NOT NULL)"
"""A run that did not end as it should: paused, failed or interrupted."""
_STATES: Final = {
    "paused": f"coalesce(paused, false) AND NOT {_CONTINUED}",
    "resumed": f"{_UNFINISHED} AND {_CONTINUED}",
    "failed": f"error IS NOT NULL AND NOT coalesce(paused, false) AND NOT {_CONTINUED}",
    "interrupted": (
        "interrupted IS NOT NULL AND error IS NULL AND NOT coalesce(paused, false) "
        f"AND NOT {_CONTINUED}"
    ),
    "complete": f"complete AND NOT {_UNFINISHED}",
    "live": "NOT complete AND NOT coalesce(paused, false)",
}
"""What each run state (``RunStateName``) requires of a run's newest row."""


def summaries_of(page: str) -> str:
    """The summaries of the runs a query selects.

    Args:
        page: A query of newest-version rows of ``run_versions`` (every column, with their
            ``version``).

    Returns:
        The query of their summaries (the columns of ``rows.run_summary_from_row``), latest
        start first.
    """
    return _SUMMARY.format(page=page)


def run_filter(
    *,
    since: bool,
    until: bool,
    state: str | None = None,
    conversation: bool = False,
    after: bool = False,
    workflow: bool = False,
) -> str:
    """The condition a run's newest row meets to be in a time window (and state, conversation...).

    Args:
        since: Whether the condition takes ``$since`` (runs that started at or after it).
        until: Whether the condition takes ``$until`` (runs that started before it).
        state: Only the runs in this state (a key of the run states), when given.
        conversation: Whether the condition takes ``$conversation`` (the runs of one
            conversation).
        after: Whether the condition takes ``$after_ns`` and ``$after_trace`` (the runs
            listed after that run in :data:`RUN_ORDER`).
        workflow: Whether the condition takes ``$workflow`` (the runs of one workflow).

    Returns:
        The condition on a ``run_versions`` row, with the named parameters asked for.
    """
    bounds = ["true"]
    if since:
        bounds.append("start_ns >= $since")
    if until:
        bounds.append("start_ns < $until")
    if state is not None:
        bounds.append(_STATES[state])
    if conversation:
        bounds.append("conversation_id = $conversation")
    if workflow:
        bounds.append("workflow_name = $workflow")
    if after:
        bounds.append(
            "(start_ns < $after_ns OR (start_ns = $after_ns AND trace_id > $after_trace))"
        )
    return " AND ".join(bounds)


RUN_ORDER: Final = "start_ns DESC, trace_id"
"""The order of run pages: latest start first."""


def run_list(where: str) -> str:
    """The summaries of every run whose newest row meets a condition, latest start first.

    This settles every trace's newest version; a page with a limit is read by
    :func:`~agentmesh.collector.store.duckdb_newest.newest_page`, which reads less.

    Args:
        where: A condition of :func:`run_filter`.

    Returns:
        The query, with the named parameters of ``where``.
    """
    # the window applies to each run's newest row: an older version may have started later
    return summaries_of(
        f"SELECT * FROM (SELECT * FROM run_versions {_LATEST}) "  # noqa: S608 - constants only
        f"WHERE {where} ORDER BY {RUN_ORDER}"
    )


MATCHING: Final = "starts_with(lower(run_id), $prefix) OR starts_with(trace_id, $prefix)"
"""Runs whose run id (in lower case) or trace id starts with ``$prefix``."""
MATCHING_ORDER: Final = "(lower(run_id) = $prefix OR trace_id = $prefix) DESC, " + RUN_ORDER
"""Exact matches first, then the latest started."""


def _newest_where(condition: str) -> str:
    """The newest rows that meet ``condition``.

    Only the traces with a row that ever met it have their newest version settled.
    """
    return (
        "SELECT * FROM (SELECT * FROM run_versions WHERE trace_id IN "  # noqa: S608
        f"(SELECT trace_id FROM run_versions WHERE {condition}) {_LATEST}) WHERE {condition}"
    )


RESUMPTIONS: Final = _SUMMARY.format(
    page=_newest_where("resumed_from = $run") + " ORDER BY start_ns DESC, trace_id LIMIT $limit"
)
"""The summaries of the runs that continue the run ``$run`` (newest row of each), at most
``$limit``, latest start first (8-15 ms against 16-18 ms settling every trace, at 22,858
runs)."""

PREVIOUS_RUN: Final = _SUMMARY.format(
    page=_newest_where("conversation_id = $conversation")
    + " AND start_ns < $before ORDER BY start_ns DESC, trace_id DESC LIMIT 1"
)
"""The summary of the run of the conversation ``$conversation`` that started last before
``$before`` (newest row of each of the conversation's traces), if any."""

RUNS_OF: Final = _SUMMARY.format(
    page=f"SELECT * FROM run_versions WHERE {_WANTED} {_LATEST}"  # noqa: S608 - constants only
)
"""The summaries of the runs of the traces ``$traces`` (a list), latest start first."""


AGENTS_OF: Final = f"""
    SELECT name, invocations, span_ids, llm_calls, input_tokens, output_tokens, cost_usd,
        trace_id
    FROM agent_versions WHERE rowid IN (
        SELECT a.rowid FROM agent_versions a JOIN {_NEWEST_OF_WANTED} n
            ON a.trace_id = n.trace_id AND a.version = n.version)
    ORDER BY trace_id, name
"""  # noqa: S608 - built from constants only
"""The agents of the graphs of ``$traces`` (the columns of ``rows.agent_from_row``)."""

HANDOFFS_OF: Final = f"""
    SELECT seq, source, target, span_id, start_ns, kind, context_digest, context_size,
        checkpoint_id, trace_id
    FROM handoff_versions WHERE rowid IN (
        SELECT h.rowid FROM handoff_versions h JOIN {_NEWEST_OF_WANTED} n
            ON h.trace_id = n.trace_id AND h.version = n.version)
    ORDER BY trace_id, seq
"""  # noqa: S608 - built from constants only
"""The handoffs of the graphs of ``$traces`` (the columns of ``rows.handoff_from_row``)."""

WINDOW: Final = (
    "($since::BIGINT IS NULL OR r.start_ns >= $since) "
    "AND ($until::BIGINT IS NULL OR r.start_ns < $until)"
)
"""Runs ``r`` that started in ``$since``..``$until`` (either may be NULL: unbounded)."""

LATEST_RUNS: Final = f"(SELECT trace_id, version, start_ns FROM run_versions {_LATEST})"  # noqa: S608
"""Each trace's newest version and start, as a subquery."""

COSTS_BY_AGENT: Final = f"""
    SELECT a.name, sum(a.llm_calls), sum(a.input_tokens), sum(a.output_tokens), sum(a.cost_usd)
    FROM agent_versions a JOIN {LATEST_RUNS} r ON r.trace_id = a.trace_id AND r.version = a.version
    WHERE {WINDOW}
    GROUP BY a.name
    UNION ALL
    SELECT NULL, sum(r.llm_calls - coalesce(a.llm_calls, 0)),
        sum(r.input_tokens - coalesce(a.input_tokens, 0)),
        sum(r.output_tokens - coalesce(a.output_tokens, 0)),
        sum(greatest(r.cost_usd - coalesce(a.cost_usd, 0), 0))
    FROM (SELECT * FROM run_versions {_LATEST}) r
    LEFT JOIN (
        SELECT trace_id, version, sum(llm_calls) AS llm_calls, sum(input_tokens) AS input_tokens,
            sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd
        FROM agent_versions GROUP BY trace_id, version
    ) a ON a.trace_id = r.trace_id AND a.version = r.version
    WHERE {WINDOW} AND r.llm_calls > coalesce(a.llm_calls, 0)
    HAVING count(*) > 0
"""  # noqa: S608 - built from constants only
"""LLM calls, tokens and cost by agent over the runs that started in ``$since``..``$until``,
and those of the calls made outside any agent (a ``NULL`` name)."""
