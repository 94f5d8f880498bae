"""Export a store's runs to files (Parquet, CSV or JSON lines) through DuckDB.

Reads through the :class:`~agentmesh.collector.store.base.SpanStore` interface, so it works on
every backend (DuckDB, Postgres, memory), and writes one file per table: ``runs`` (the fields of
the query API's run listing), ``agents``, ``handoffs``, ``spans`` and ``detections``.

Every file loads in any reader. The JSON columns (attributes, events, resources, details) are
strict JSON in every format: a NaN or infinite double is written as the query API writes it,
the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``. In CSV the list columns (``agents``,
``span_ids``) are JSON arrays, as in the decisions export; Parquet and JSON lines keep them
as lists.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from agentmesh.collector.detection import Detection
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.store.base import RunSummary, SpanStore, StoredGraph
from agentmesh.collector.store.rows import detection_to_row, handoff_to_row
from agentmesh.collector.store.run_pages import run_pages
from agentmesh.core import StoreError

__all__ = ["EXPORT_FORMATS", "export_store"]

EXPORT_FORMATS: Final[tuple[str, ...]] = ("parquet", "csv", "json")
"""File formats :func:`export_store` writes (``json`` is one object per line)."""

_TABLES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "runs": (
        ("trace_id", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("workflow_name", "VARCHAR"),
        ("service_name", "VARCHAR"),
        ("start_ns", "BIGINT"),
        ("end_ns", "BIGINT"),
        ("agents", "VARCHAR[]"),
        ("handoffs", "INTEGER"),
        ("span_count", "INTEGER"),
        ("llm_calls", "INTEGER"),
        ("input_tokens", "BIGINT"),
        ("output_tokens", "BIGINT"),
        ("cost_usd", "DOUBLE"),
        ("complete", "BOOLEAN"),
        ("detections", "INTEGER"),
        ("paused", "BOOLEAN"),
        ("resumed_from", "VARCHAR"),
        ("conversation_id", "VARCHAR"),
        ("resumed", "BOOLEAN"),
        ("resumptions", "INTEGER"),
        ("state", "VARCHAR"),
        ("error", "VARCHAR"),
        ("interrupted", "VARCHAR"),
    ),
    "agents": (
        ("trace_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("invocations", "INTEGER"),
        ("llm_calls", "INTEGER"),
        ("input_tokens", "BIGINT"),
        ("output_tokens", "BIGINT"),
        ("cost_usd", "DOUBLE"),
    ),
    "handoffs": (
        ("trace_id", "VARCHAR"),
        ("seq", "INTEGER"),
        ("source", "VARCHAR"),
        ("target", "VARCHAR"),
        ("span_id", "VARCHAR"),
        ("start_ns", "BIGINT"),
        ("kind", "VARCHAR"),
        ("context_digest", "VARCHAR"),
        ("context_size", "BIGINT"),
        ("checkpoint_id", "VARCHAR"),
    ),
    "spans": (
        ("trace_id", "VARCHAR"),
        ("span_id", "VARCHAR"),
        ("parent_span_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("start_ns", "BIGINT"),
        ("end_ns", "BIGINT"),
        ("status_code", "VARCHAR"),
        ("status_message", "VARCHAR"),
        ("service_name", "VARCHAR"),
        ("scope_name", "VARCHAR"),
        ("attributes", "JSON"),
        ("events", "JSON"),
        ("resource", "JSON"),
    ),
    "detections": (
        ("id", "VARCHAR"),
        ("type", "VARCHAR"),
        ("severity", "VARCHAR"),
        ("trace_id", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("agent", "VARCHAR"),
        ("span_ids", "VARCHAR[]"),
        ("explanation", "VARCHAR"),
        ("detected_at_ns", "BIGINT"),
        ("details", "JSON"),
    ),
}
"""Each exported table's columns and their DuckDB types."""

_Rows = dict[str, list[tuple[object, ...]]]
_ARROW_TYPES: Final[dict[str, str]] = {
    "VARCHAR": "string",
    "JSON": "string",
    "BIGINT": "int64",
    "INTEGER": "int32",
    "DOUBLE": "float64",
    "BOOLEAN": "bool_",
}
"""The pyarrow type (a function of the module) of each DuckDB type; ``VARCHAR[]`` is a list."""
_STAGING_MEMORY: Final = "256MB"
"""The scratch database's buffer pool (its default is most of the machine's memory)."""


def _run_rows(runs: Sequence[RunSummary], spans_of: Mapping[str, list[SpanRecord]]) -> _Rows:
    # here, not at import: the API's module loads aiohttp, and the CLI reads EXPORT_FORMATS
    from agentmesh.collector.api.params import strict_json

    rows: _Rows = {table: [] for table in ("runs", "spans")}
    for run in runs:
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
                run.paused,
                run.resumed_from,
                run.conversation_id,
                run.resumed,
                run.resumptions,
                run.state,
                run.error,
                run.interrupted,
            )
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
                strict_json(dict(s.attributes)),
                strict_json(
                    [
                        {"name": e.name, "time_ns": e.time_ns, "attributes": dict(e.attributes)}
                        for e in s.events
                    ]
                ),
                strict_json(dict(s.resource_attributes)),
            )
            for s in spans_of.get(run.trace_id, [])
        )
    return rows


def _graph_rows(graph: StoredGraph) -> _Rows:
    trace_id = graph.run.trace_id
    return {
        "agents": [
            (
                trace_id,
                a.name,
                a.invocations,
                a.llm_calls,
                a.input_tokens,
                a.output_tokens,
                a.cost_usd,
            )
            for a in graph.agents
        ],
        "handoffs": [handoff_to_row(trace_id, h) for h in graph.handoffs],
    }


def _detection_rows(detections: Sequence[Detection]) -> _Rows:
    from agentmesh.collector.api.params import strict_json

    # the row's last column, the details, as strict JSON like the spans' columns
    return {
        "detections": [
            (*detection_to_row(d)[:-1], strict_json(dict(d.details))) for d in detections
        ]
    }


def _selection(table: str, columns: Sequence[tuple[str, str]], fmt: str) -> str:
    """The query copying ``table`` to a ``fmt`` file.

    The JSON columns are staged as the strict encoder writes them (spaced, non-ASCII escaped):
    ``json()`` makes them compact with their text as is (COPY to JSON lines does so itself).
    CSV has no lists: they are written as JSON arrays (DuckDB's own form of a list, ``['a, b',
    c]``, cannot be parsed back), as the decisions export writes them.
    """
    replaced = [
        f"json({name}) AS {name}" if kind == "JSON" else f"to_json({name}) AS {name}"
        for name, kind in columns
        if (kind == "JSON" and fmt != "json") or (kind == "VARCHAR[]" and fmt == "csv")
    ]
    if not replaced:
        return table
    return f"(SELECT * REPLACE ({', '.join(replaced)}) FROM {table})"  # noqa: S608 - constant names


class _Staging:
    """The export's tables in a scratch DuckDB file: appended a chunk at a time, then copied.

    A file rather than memory, so a large export spills to disk instead of holding every row.
    """

    def __init__(self, path: Path) -> None:
        import duckdb  # here, not at import: the CLI reads EXPORT_FORMATS to build its parser

        pa: Any = importlib.import_module("pyarrow")  # no complete type information
        self._pa = pa
        # a small buffer pool: past it, the staged rows spill to the scratch file's directory
        self._con = duckdb.connect(
            str(path), config={"memory_limit": _STAGING_MEMORY, "temp_directory": str(path.parent)}
        )
        self._schemas: dict[str, Any] = {
            table: pa.schema(
                [
                    (
                        name,
                        pa.list_(pa.string())
                        if kind == "VARCHAR[]"
                        else getattr(pa, _ARROW_TYPES[kind])(),
                    )
                    for name, kind in columns
                ]
            )
            for table, columns in _TABLES.items()
        }
        self.counts = dict.fromkeys(_TABLES, 0)
        for table, columns in _TABLES.items():
            schema = ", ".join(f"{name} {kind}" for name, kind in columns)
            self._con.execute(f"CREATE TABLE {table} ({schema})")

    def append(self, rows: _Rows) -> None:
        """Append rows (tuples in column order) to the tables they are keyed by."""
        for table, values in rows.items():
            if not values:
                continue
            schema = self._schemas[table]
            columns = list(zip(*values, strict=True))
            arrays = [
                self._pa.array(column, type=field.type)
                for column, field in zip(columns, schema, strict=True)
            ]
            chunk = self._pa.Table.from_arrays(arrays, schema=schema)
            self._con.register("export_chunk", chunk)
            try:
                self._con.execute(f"INSERT INTO {table} SELECT * FROM export_chunk")  # noqa: S608 - constant names
            finally:
                self._con.unregister("export_chunk")
            self.counts[table] += len(values)

    def copy_out(self, out_dir: Path, fmt: str) -> dict[str, int]:
        """Write each table to ``out_dir/<table>.<fmt>``, runs newest first as read."""
        out_dir.mkdir(parents=True, exist_ok=True)
        options = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER", "json": "FORMAT json"}
        for table, columns in _TABLES.items():
            target = str(out_dir / f"{table}.{fmt}").replace("'", "''")
            source = _selection(table, columns, fmt)
            self._con.execute(f"COPY {source} TO '{target}' ({options[fmt]})")
        return dict(self.counts)

    def close(self) -> None:
        """Close the scratch database."""
        self._con.close()


async def export_store(store: SpanStore, out_dir: Path, fmt: str = "parquet") -> dict[str, int]:
    """Write every run of ``store`` to one file per table in ``out_dir``.

    The runs are read a page at a time (newest first; their spans and graphs in one read each
    per page) and appended to a scratch DuckDB file, so memory holds one page of rows whatever
    the store's size; the scratch file is deleted when the files are written.

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

    try:
        # the scratch folder is made and removed off the event loop (it can hold gigabytes)
        scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="agentmesh-export-"))
        try:
            staging = await asyncio.to_thread(_Staging, scratch / "export.duckdb")
            try:
                async for page in run_pages(store):
                    spans_of = await store.spans_of([run.trace_id for run in page])
                    graphs = await store.graphs_of([run.trace_id for run in page])
                    rows = _run_rows(page, spans_of)
                    for run in page:
                        if (graph := graphs.get(run.trace_id)) is not None:
                            for table, values in _graph_rows(graph).items():
                                rows.setdefault(table, []).extend(values)
                    await asyncio.to_thread(staging.append, rows)
                await asyncio.to_thread(staging.append, _detection_rows(await store.detections()))
                return await asyncio.to_thread(staging.copy_out, out_dir, fmt)
            finally:
                await asyncio.to_thread(staging.close)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
    except (duckdb.Error, OSError) as exc:
        raise StoreError(f"cannot export to {out_dir}: {exc}") from exc
