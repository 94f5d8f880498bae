"""Export a store's runs to files (Parquet, CSV or JSON lines) through DuckDB.

Reads through the :class:`~agentmesh.collector.store.base.SpanStore` interface, so it works on
every backend (DuckDB, Postgres, memory), and writes one file per table: ``runs``, ``agents``,
``handoffs``, ``spans`` and ``detections``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from agentmesh.collector.model import SpanRecord
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.codec import attributes_to_json, details_to_json, events_to_json
from agentmesh.core import StoreError

__all__ = ["EXPORT_FORMATS", "export_store"]

EXPORT_FORMATS: Final[tuple[str, ...]] = ("parquet", "csv", "json")
"""File formats :func:`export_store` writes (``json`` is one object per line)."""

_TABLES: Final[dict[str, str]] = {
    "runs": "trace_id VARCHAR, run_id VARCHAR, workflow_name VARCHAR, service_name VARCHAR, "
    "start_ns BIGINT, end_ns BIGINT, agents VARCHAR[], handoffs INTEGER, span_count INTEGER, "
    "llm_calls INTEGER, input_tokens BIGINT, output_tokens BIGINT, cost_usd DOUBLE, "
    "complete BOOLEAN, detections INTEGER",
    "agents": "trace_id VARCHAR, name VARCHAR, invocations INTEGER, llm_calls INTEGER, "
    "input_tokens BIGINT, output_tokens BIGINT, cost_usd DOUBLE",
    "handoffs": "trace_id VARCHAR, seq INTEGER, source VARCHAR, target VARCHAR, span_id VARCHAR, "
    "start_ns BIGINT, kind VARCHAR, context_digest VARCHAR, context_size BIGINT, "
    "checkpoint_id VARCHAR",
    "spans": "trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, name VARCHAR, "
    "kind VARCHAR, start_ns BIGINT, end_ns BIGINT, status_code VARCHAR, status_message VARCHAR, "
    "service_name VARCHAR, scope_name VARCHAR, attributes JSON, events JSON, resource JSON",
    "detections": "id VARCHAR, type VARCHAR, severity VARCHAR, trace_id VARCHAR, run_id VARCHAR, "
    "agent VARCHAR, span_ids VARCHAR[], explanation VARCHAR, detected_at_ns BIGINT, details JSON",
}

_Row = tuple[object, ...]
_SPANS_CHUNK_RUNS: Final = 256
"""Runs whose spans are read in one query."""


async def _collect(store: SpanStore) -> dict[str, list[_Row]]:
    rows: dict[str, list[_Row]] = {table: [] for table in _TABLES}
    runs = await store.runs()
    spans_of: dict[str, list[SpanRecord]] = {}
    for index, run in enumerate(runs):
        if index % _SPANS_CHUNK_RUNS == 0:  # one query per chunk of runs, not one per run
            spans_of = await store.spans_of(
                [r.trace_id for r in runs[index : index + _SPANS_CHUNK_RUNS]]
            )
        rows["runs"].append(
            (
                run.trace_id,
                run.run_id,
                run.workflow_name,
                run.service_name,
                run.start_ns,
                run.end_ns,
                list(run.agents),
                run.handoffs,
                run.span_count,
                run.llm_calls,
                run.input_tokens,
                run.output_tokens,
                run.cost_usd,
                run.complete,
                run.detections,
            )
        )
        graph = await store.graph(run.trace_id)
        if graph is not None:
            rows["agents"].extend(
                (
                    run.trace_id,
                    a.name,
                    a.invocations,
                    a.llm_calls,
                    a.input_tokens,
                    a.output_tokens,
                    a.cost_usd,
                )
                for a in graph.agents
            )
            rows["handoffs"].extend(
                (
                    run.trace_id,
                    h.seq,
                    h.source,
                    h.target,
                    h.span_id,
                    h.start_ns,
                    h.kind,
                    h.context_digest,
                    h.context_size,
                    h.checkpoint_id,
                )
                for h in graph.handoffs
            )
        rows["spans"].extend(
            (
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.name,
                s.kind,
                s.start_ns,
                s.end_ns,
                s.status_code,
                s.status_message,
                s.service_name,
                s.scope_name,
                attributes_to_json(s.attributes),
                events_to_json(s.events),
                attributes_to_json(s.resource_attributes),
            )
            for s in spans_of.get(run.trace_id, [])
        )
    rows["detections"] = [
        (
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
        for d in await store.detections()
    ]
    return rows


def _write(rows: dict[str, list[_Row]], out_dir: Path, fmt: str) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER", "json": "FORMAT json"}
    counts: dict[str, int] = {}
    import duckdb  # here, not at import: the CLI reads EXPORT_FORMATS to build its parser

    with duckdb.connect(":memory:") as con:
        for table, schema in _TABLES.items():
            con.execute(f"CREATE TABLE {table} ({schema})")
            if rows[table]:
                marks = ", ".join("?" for _ in rows[table][0])
                insert = f"INSERT INTO {table} VALUES ({marks})"  # noqa: S608 - constant names
                con.executemany(insert, rows[table])
            target = str(out_dir / f"{table}.{fmt}").replace("'", "''")
            con.execute(f"COPY {table} TO '{target}' ({options[fmt]})")
            counts[table] = len(rows[table])
    return counts


async def export_store(store: SpanStore, out_dir: Path, fmt: str = "parquet") -> dict[str, int]:
    """Write every run of ``store`` to one file per table in ``out_dir``.

    Args:
        store: An open store.
        out_dir: Directory to write into (created if missing; files are replaced).
        fmt: ``parquet``, ``csv`` or ``json`` (JSON lines).

    Returns:
        Rows written per table.

    Raises:
        StoreError: The format is unknown or a file cannot be written.
    """
    if fmt not in EXPORT_FORMATS:
        raise StoreError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    import duckdb

    rows = await _collect(store)
    try:
        return await asyncio.to_thread(_write, rows, out_dir, fmt)
    except (duckdb.Error, OSError) as exc:
        raise StoreError(f"cannot export to {out_dir}: {exc}") from exc
