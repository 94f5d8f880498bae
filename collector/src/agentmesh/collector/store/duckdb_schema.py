"""The DuckDB schema of the collector (version 8), and the in-place upgrades to it.

Tables: ``spans`` (one row per span; attributes, events and resource attributes as JSON text;
model, tokens and cost of LLM calls as columns since version 2); ``run_versions``,
``agent_versions`` and ``handoff_versions`` (each graph write appends the graph's rows under a
new ``version``); ``detections`` (one row per detection id) and ``schema_version``. Readers use
the views ``runs``, ``agents`` and ``handoffs``: each trace's newest version, one row per run,
agent and handoff as before.

No table but ``detections`` has a key, so writes are appends: ``spans`` since version 3 (the
store drops recent re-deliveries itself and its reads ignore older duplicates), the graph
tables since version 5 (replacing a live run's rows in place cost a scan of the table per
write and an index update per row, and grew with the file). The store deletes superseded
versions now and then (:mod:`~agentmesh.collector.store.duckdb_graphs`).

A file written by an older version is upgraded when it is opened: :data:`UPGRADES` maps each
version to the statements that bring it to the next one, run in one transaction (version 2
added nullable columns filled from the data already stored; version 3 rebuilds ``spans``
without its key, since DuckDB cannot drop a constraint; version 4 adds the checkpoint of each
handoff; version 5 moves the graph tables' rows to the versioned tables, as version 0; version
6 adds ``paused`` and ``resumed_from`` to ``run_versions``, after ``version``: not paused, not
resumed, for the runs stored before; version 7 appends ``conversation_id`` and ``resumed``, no
conversation and not resumed for the runs stored before; version 8 appends ``error``, why a run
failed, and ``interrupted``, what stopped it without failing it: neither for the runs stored
before, which list as they did).
"""

from __future__ import annotations

from typing import Final

import duckdb

from agentmesh.core import semconv

__all__ = [
    "JSON_COMPRESSION",
    "LEGACY_GRAPH_TABLES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "UPGRADES",
    "VERSIONED_GRAPHS",
    "VIEWS",
]


def _zstd_strings(version: str) -> bool:
    """Whether a DuckDB release stores a text column declared zstd as zstd.

    DuckDB 1.2 to 1.4 accept the declaration and keep such a column uncompressed (their
    default storage version predates zstd strings); 1.1 refuses it.
    """
    return int(version.split(".", 1)[0]) >= 2


JSON_COMPRESSION: Final = " USING COMPRESSION zstd" if _zstd_strings(duckdb.__version__) else ""
"""How the ``spans`` table's JSON columns are compressed. DuckDB otherwise analyses each
column for dictionary and FSST encodings at every checkpoint; for about 750 bytes of
attribute JSON a span that took 7 to 9 µs of the collector's CPU per span, against 4 with zstd,
and the file is half the size (34 MB against 64 MB for 200,000 spans of the benchmark's stream).
Reading a column back costs more (a run's spans: about 12 ms against 10 ms at 200,000 spans).
Files created before keep DuckDB's own choice; the declaration applies to new files."""

SCHEMA_VERSION: Final = 8
"""Version written to ``schema_version`` by this code."""

VERSIONED_GRAPHS: Final = 5
"""The version whose graph tables are the versioned ones (older files have keyed tables)."""

_GRAPH_TABLES: Final = {
    "runs": (
        "trace_id VARCHAR NOT NULL, run_id VARCHAR NOT NULL, workflow_name VARCHAR, "
        "service_name VARCHAR, framework VARCHAR, start_ns BIGINT NOT NULL, "
        "end_ns BIGINT NOT NULL, span_count INTEGER NOT NULL, llm_calls INTEGER NOT NULL, "
        "input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, cost_usd DOUBLE NOT NULL, "
        "complete BOOLEAN NOT NULL",
        "trace_id",
    ),
    "agents": (
        "trace_id VARCHAR NOT NULL, name VARCHAR NOT NULL, invocations INTEGER NOT NULL, "
        "span_ids VARCHAR[] NOT NULL, llm_calls INTEGER NOT NULL, input_tokens BIGINT NOT NULL, "
        "output_tokens BIGINT NOT NULL, cost_usd DOUBLE NOT NULL",
        "trace_id, name",
    ),
    "handoffs": (
        "trace_id VARCHAR NOT NULL, seq INTEGER NOT NULL, source VARCHAR NOT NULL, "
        "target VARCHAR NOT NULL, span_id VARCHAR NOT NULL, start_ns BIGINT NOT NULL, "
        "kind VARCHAR NOT NULL, context_digest VARCHAR, context_size BIGINT, "
        "checkpoint_id VARCHAR",
        "trace_id, seq",
    ),
}
"""Each graph table's columns and the key it had until version 4 (the versioned tables, since
version 5, have the same columns plus ``version`` and no key)."""
_SINGULAR: Final = {"runs": "run", "agents": "agent", "handoffs": "handoff"}
_RUN_V6: Final = ("paused BOOLEAN DEFAULT false", "resumed_from VARCHAR")
"""The columns version 6 appends to ``run_versions``, after ``version`` (DuckDB cannot add a
NOT NULL column to a table, so readers take a NULL ``paused`` as false)."""
_RUN_V7: Final = ("conversation_id VARCHAR", "resumed BOOLEAN DEFAULT false")
"""The columns version 7 appends to ``run_versions`` (a NULL ``resumed`` reads as false)."""
_RUN_V8: Final = ("error VARCHAR", "interrupted VARCHAR")
"""The columns version 8 appends to ``run_versions``: why the run failed, what interrupted it
(NULL: it did not fail, it was not interrupted)."""
_VERSION_EXTRA: Final = {
    "runs": "".join(f", {column}" for column in (*_RUN_V6, *_RUN_V7, *_RUN_V8)),
    "agents": "",
    "handoffs": "",
}

SCHEMA: Final[tuple[str, ...]] = (
    """
    CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS spans (
        trace_id VARCHAR NOT NULL,
        span_id VARCHAR NOT NULL,
        parent_span_id VARCHAR,
        name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        start_ns BIGINT NOT NULL,
        end_ns BIGINT NOT NULL,
        status_code VARCHAR NOT NULL,
        status_message VARCHAR NOT NULL,
        operation VARCHAR,
        run_id VARCHAR,
        service_name VARCHAR,
        scope_name VARCHAR NOT NULL,
        attributes VARCHAR NOT NULL{JSON_COMPRESSION},
        events VARCHAR NOT NULL{JSON_COMPRESSION},
        resource VARCHAR NOT NULL{JSON_COMPRESSION},
        model VARCHAR,
        input_tokens BIGINT,
        output_tokens BIGINT,
        cost_usd DOUBLE
    )
    """,
    *(
        f"CREATE TABLE IF NOT EXISTS {_SINGULAR[table]}_versions ({columns}, "
        f"version BIGINT NOT NULL{_VERSION_EXTRA[table]})"
        for table, (columns, _) in _GRAPH_TABLES.items()
    ),
    """
    CREATE TABLE IF NOT EXISTS detections (
        id VARCHAR PRIMARY KEY,
        type VARCHAR NOT NULL,
        severity VARCHAR NOT NULL,
        trace_id VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        agent VARCHAR,
        span_ids VARCHAR[] NOT NULL,
        explanation VARCHAR NOT NULL,
        detected_at_ns BIGINT NOT NULL,
        details VARCHAR NOT NULL
    )
    """,
)
"""Statements creating the schema (each safe to run again)."""


VIEWS: Final[tuple[str, ...]] = (
    """
    CREATE OR REPLACE VIEW runs AS
    SELECT * EXCLUDE (version) FROM run_versions
    QUALIFY version = max(version) OVER (PARTITION BY trace_id)
    """,
    """
    CREATE OR REPLACE VIEW agents AS
    SELECT a.* EXCLUDE (version) FROM agent_versions a
    JOIN (SELECT trace_id, max(version) AS version FROM run_versions GROUP BY trace_id) r
        ON a.trace_id = r.trace_id AND a.version = r.version
    """,
    """
    CREATE OR REPLACE VIEW handoffs AS
    SELECT h.* EXCLUDE (version) FROM handoff_versions h
    JOIN (SELECT trace_id, max(version) AS version FROM run_versions GROUP BY trace_id) r
        ON h.trace_id = r.trace_id AND h.version = r.version
    """,
)
"""The graph tables as readers know them: each trace's newest version (made after upgrades)."""

LEGACY_GRAPH_TABLES: Final = tuple(
    f"CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ({key}))"
    for table, (columns, key) in _GRAPH_TABLES.items()
)
"""The graph tables of versions 1 to 4 (one row per key, replaced in place): made, when
missing, before upgrading such a file, so every upgrade step finds them."""

_GRAPH_COLUMNS: Final = {
    table: ", ".join(line.split()[0] for line in columns.split(","))
    for table, (columns, _) in _GRAPH_TABLES.items()
}


def _json_path(name: str) -> str:
    return f"'$.\"{name}\"'"


_BACKFILL_USAGE: Final = f"""
    UPDATE spans SET
        model = coalesce(
            json_extract_string(attributes, {_json_path(semconv.GEN_AI_RESPONSE_MODEL)}),
            json_extract_string(attributes, {_json_path(semconv.GEN_AI_REQUEST_MODEL)})),
        input_tokens = coalesce(TRY_CAST(json_extract(attributes,
            {_json_path(semconv.GEN_AI_USAGE_INPUT_TOKENS)}) AS BIGINT), 0),
        output_tokens = coalesce(TRY_CAST(json_extract(attributes,
            {_json_path(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)}) AS BIGINT), 0),
        cost_usd = coalesce(TRY_CAST(json_extract(attributes,
            {_json_path(semconv.AGENTMESH_COST_USD)}) AS DOUBLE), 0.0)
    WHERE operation = '{semconv.Operation.CHAT}'
"""  # noqa: S608 - built from constants only

_SPAN_COLUMNS: Final = (
    "trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, "
    "status_message, operation, run_id, service_name, scope_name, attributes, events, "
    "resource, model, input_tokens, output_tokens, cost_usd"
)
_SPANS_V3: Final = SCHEMA[1].replace("IF NOT EXISTS spans", "spans_v3")

UPGRADES: Final[dict[int, tuple[str, ...]]] = {
    1: (
        "ALTER TABLE spans ADD COLUMN IF NOT EXISTS model VARCHAR",
        "ALTER TABLE spans ADD COLUMN IF NOT EXISTS input_tokens BIGINT",
        "ALTER TABLE spans ADD COLUMN IF NOT EXISTS output_tokens BIGINT",
        "ALTER TABLE spans ADD COLUMN IF NOT EXISTS cost_usd DOUBLE",
        _BACKFILL_USAGE,
    ),
    2: (
        _SPANS_V3,
        f"INSERT INTO spans_v3 ({_SPAN_COLUMNS}) SELECT {_SPAN_COLUMNS} FROM spans "  # noqa: S608
        "ORDER BY rowid",
        "DROP TABLE spans",
        "ALTER TABLE spans_v3 RENAME TO spans",
    ),
    3: ("ALTER TABLE handoffs ADD COLUMN IF NOT EXISTS checkpoint_id VARCHAR",),
    4: tuple(
        statement
        for table, columns in _GRAPH_COLUMNS.items()
        for statement in (
            f"INSERT INTO {_SINGULAR[table]}_versions ({columns}, version) "  # noqa: S608
            f"SELECT {columns}, 0 FROM {table}",
            f"DROP TABLE {table}",
        )
    ),
    5: tuple(f"ALTER TABLE run_versions ADD COLUMN IF NOT EXISTS {column}" for column in _RUN_V6),
    6: tuple(f"ALTER TABLE run_versions ADD COLUMN IF NOT EXISTS {column}" for column in _RUN_V7),
    7: tuple(f"ALTER TABLE run_versions ADD COLUMN IF NOT EXISTS {column}" for column in _RUN_V8),
}
"""Statements upgrading a file from a version (the key) to the next one."""
