"""The DuckDB schema of the collector (version 4), and the in-place upgrades to it.

Tables: ``spans`` (one row per span; attributes, events and resource attributes as JSON text;
model, tokens and cost of LLM calls as columns since version 2), ``runs`` (one row per trace's
graph), ``agents`` and ``handoffs`` (the graph's rows, replaced as a whole on each graph write),
``detections`` (one row per detection id) and ``schema_version``.

``spans`` has no primary key since version 3 (appends stay cheap and memory flat as it grows):
the store drops recent re-deliveries itself and its reads ignore older duplicates. The other
tables' primary keys make their writes idempotent.

A file written by an older version is upgraded when it is opened: :data:`UPGRADES` maps each
version to the statements that bring it to the next one, run in one transaction (version 2
added nullable columns filled from the data already stored; version 3 rebuilds ``spans``
without its key, since DuckDB cannot drop a constraint; version 4 adds the checkpoint of each
handoff).
"""

from __future__ import annotations

from typing import Final

from agentmesh.core import semconv

__all__ = ["SCHEMA", "SCHEMA_VERSION", "UPGRADES"]

SCHEMA_VERSION: Final = 4
"""Version written to ``schema_version`` by this code."""

SCHEMA: Final[tuple[str, ...]] = (
    """
    CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER NOT NULL
    )
    """,
    """
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
        attributes VARCHAR NOT NULL,
        events VARCHAR NOT NULL,
        resource VARCHAR NOT NULL,
        model VARCHAR,
        input_tokens BIGINT,
        output_tokens BIGINT,
        cost_usd DOUBLE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS runs (
        trace_id VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        workflow_name VARCHAR,
        service_name VARCHAR,
        framework VARCHAR,
        start_ns BIGINT NOT NULL,
        end_ns BIGINT NOT NULL,
        span_count INTEGER NOT NULL,
        llm_calls INTEGER NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cost_usd DOUBLE NOT NULL,
        complete BOOLEAN NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS agents (
        trace_id VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        invocations INTEGER NOT NULL,
        span_ids VARCHAR[] NOT NULL,
        llm_calls INTEGER NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cost_usd DOUBLE NOT NULL,
        PRIMARY KEY (trace_id, name)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS handoffs (
        trace_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        source VARCHAR NOT NULL,
        target VARCHAR NOT NULL,
        span_id VARCHAR NOT NULL,
        start_ns BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        context_digest VARCHAR,
        context_size BIGINT,
        checkpoint_id VARCHAR,
        PRIMARY KEY (trace_id, seq)
    )
    """,
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
}
"""Statements upgrading a file from a version (the key) to the next one."""
