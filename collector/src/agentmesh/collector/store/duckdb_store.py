"""The embedded default store: one DuckDB file, owned by one collector process.

Every DuckDB call runs in one dedicated worker thread (a single-thread executor), so the event
loop never blocks on the database and the connection is only ever used from that thread; calls
run in the order they were made. Batches go in as one ``INSERT … SELECT unnest(…)`` statement
with ``ON CONFLICT DO NOTHING``, so re-delivered spans and detections are stored once. DuckDB
errors surface as :class:`~agentmesh.core.errors.StoreError`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar, cast

import duckdb

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.run_graph import AgentNode, HandoffEdge, RunGraph
from agentmesh.collector.model import SpanKind, SpanRecord, StatusCode
from agentmesh.collector.store.base import CostGroup, CostRow, RunSummary, StoredGraph
from agentmesh.collector.store.codec import (
    attributes_from_json,
    details_to_json,
    events_from_json,
    events_to_json,
)
from agentmesh.collector.store.duckdb_schema import SCHEMA, SCHEMA_VERSION, UPGRADES
from agentmesh.collector.store.rows import detection_from_row, run_summary_from_row
from agentmesh.collector.store.usage import (
    ChatUsage,
    chat_usage,
    check_group_by,
    check_limit,
    sort_cost_rows,
)
from agentmesh.core import semconv
from agentmesh.core.errors import StoreError

__all__ = ["DuckDBStore"]

try:  # Arrow appends are about twice as fast as ``unnest`` lists; optional.
    import pyarrow as _pa  # pyright: ignore[reportMissingTypeStubs]
except ImportError:  # pragma: no cover - depends on the environment
    _pa = None

_T = TypeVar("_T")
_Con = duckdb.DuckDBPyConnection
_Row = tuple[Any, ...]  # DuckDB rows are untyped tuples
_MEMORY: Final = ":memory:"

_INSERT_SPANS: Final = """
    INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns,
        status_code, status_message, operation, run_id, service_name, scope_name, attributes,
        events, resource, model, input_tokens, output_tokens, cost_usd)
    SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]),
           unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[]),
           unnest(?::BIGINT[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]),
           unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]),
           unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]),
           unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[]),
           unnest(?::BIGINT[]), unnest(?::DOUBLE[])
    ON CONFLICT DO NOTHING
"""
_SELECT_SPANS: Final = """
    SELECT trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code,
        status_message, operation, run_id, service_name, scope_name, attributes, events, resource
    FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id
"""
_UPSERT_RUN: Final = """
    INSERT OR REPLACE INTO runs (trace_id, run_id, workflow_name, service_name, framework,
        start_ns, end_ns, span_count, llm_calls, input_tokens, output_tokens, cost_usd, complete)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_AGENTS: Final = """
    INSERT INTO agents (trace_id, name, invocations, span_ids, llm_calls, input_tokens,
        output_tokens, cost_usd)
    SELECT ?, unnest(?::VARCHAR[]), unnest(?::INTEGER[]), unnest(?::VARCHAR[][]),
           unnest(?::INTEGER[]), unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::DOUBLE[])
"""
_UPSERT_RUNS: Final = """
    INSERT OR REPLACE INTO runs (trace_id, run_id, workflow_name, service_name, framework,
        start_ns, end_ns, span_count, llm_calls, input_tokens, output_tokens, cost_usd, complete)
    SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]),
           unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[]),
           unnest(?::BIGINT[]), unnest(?::INTEGER[]), unnest(?::INTEGER[]),
           unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::DOUBLE[]), unnest(?::BOOLEAN[])
"""
_INSERT_AGENTS_MANY: Final = """
    INSERT INTO agents (trace_id, name, invocations, span_ids, llm_calls, input_tokens,
        output_tokens, cost_usd)
    SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::INTEGER[]),
           unnest(?::VARCHAR[][]), unnest(?::INTEGER[]), unnest(?::BIGINT[]),
           unnest(?::BIGINT[]), unnest(?::DOUBLE[])
"""
_INSERT_HANDOFFS_MANY: Final = """
    INSERT INTO handoffs (trace_id, seq, source, target, span_id, start_ns, kind,
        context_digest, context_size)
    SELECT unnest(?::VARCHAR[]), unnest(?::INTEGER[]), unnest(?::VARCHAR[]),
           unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[]),
           unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[])
"""
_SPAN_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status_code",
    "status_message",
    "operation",
    "run_id",
    "service_name",
    "scope_name",
    "attributes",
    "events",
    "resource",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)
_INT_COLUMNS: Final = frozenset({"start_ns", "end_ns", "input_tokens", "output_tokens"})
_COLUMN_LIST: Final = ", ".join(_SPAN_COLUMNS)
_INSERT_ARROW: Final = f"""
    INSERT INTO spans ({_COLUMN_LIST})
    SELECT {_COLUMN_LIST} FROM agentmesh_span_batch ON CONFLICT DO NOTHING
"""  # noqa: S608 - built from constants only
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""Same text as :func:`~agentmesh.collector.store.codec.attributes_to_json`, without its
per-call encoder."""
_INSERT_HANDOFFS: Final = """
    INSERT INTO handoffs (trace_id, seq, source, target, span_id, start_ns, kind,
        context_digest, context_size)
    SELECT ?, unnest(?::INTEGER[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]),
           unnest(?::VARCHAR[]), unnest(?::BIGINT[]), unnest(?::VARCHAR[]),
           unnest(?::VARCHAR[]), unnest(?::BIGINT[])
"""
_RUN_SUMMARY: Final = """
    SELECT r.trace_id, r.run_id, r.workflow_name, r.service_name, r.start_ns, r.end_ns,
        coalesce((SELECT list(a.name ORDER BY a.name) FROM agents a
                  WHERE a.trace_id = r.trace_id), []::VARCHAR[]),
        (SELECT count(*) FROM handoffs h WHERE h.trace_id = r.trace_id),
        r.span_count, r.llm_calls, r.input_tokens, r.output_tokens, r.cost_usd, r.complete,
        (SELECT count(*) FROM detections d WHERE d.trace_id = r.trace_id)
    FROM runs r
"""
_COSTS_BY_AGENT: Final = """
    SELECT a.name, sum(a.llm_calls), sum(a.input_tokens), sum(a.output_tokens), sum(a.cost_usd)
    FROM agents a JOIN runs r ON r.trace_id = a.trace_id
    WHERE ($since::BIGINT IS NULL OR r.start_ns >= $since)
      AND ($until::BIGINT IS NULL OR r.start_ns < $until)
    GROUP BY a.name
"""
_COSTS_BY_MODEL: Final = f"""
    SELECT s.model, count(*), sum(s.input_tokens), sum(s.output_tokens), sum(s.cost_usd)
    FROM spans s JOIN runs r ON r.trace_id = s.trace_id
    WHERE s.operation = '{semconv.Operation.CHAT}'
      AND ($since::BIGINT IS NULL OR r.start_ns >= $since)
      AND ($until::BIGINT IS NULL OR r.start_ns < $until)
    GROUP BY s.model
"""  # noqa: S608 - built from constants only
_SELECT_DETECTIONS: Final = """
    SELECT id, type, severity, trace_id, run_id, agent, span_ids, explanation, detected_at_ns,
        details
    FROM detections
"""
_INSERT_DETECTION: Final = """
    INSERT INTO detections (id, type, severity, trace_id, run_id, agent, span_ids, explanation,
        detected_at_ns, details)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING
"""


class DuckDBStore:
    """A :class:`~agentmesh.collector.store.base.SpanStore` on a DuckDB file.

    The file (and its folder) is created on first use, with the schema of
    :mod:`~agentmesh.collector.store.duckdb_schema`. Use the store as an async context manager,
    or call :meth:`open` (optional: the first call opens it) and :meth:`close`.

    Args:
        path: The database file, or ``":memory:"``.

    Example:
        >>> import asyncio
        >>> async def count() -> int:
        ...     async with DuckDBStore(":memory:") as store:
        ...         return await store.count_spans()
        >>> asyncio.run(count())
        0
    """

    def __init__(self, path: str | Path = "agentmesh.duckdb") -> None:
        self._path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentmesh-duckdb")
        self._con: _Con | None = None  # used only in the worker thread
        self._closed = False

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._path

    async def open(self) -> Self:
        """Open the file and create the schema now rather than on first use.

        Returns:
            The store.

        Raises:
            StoreError: The file cannot be opened (locked by another process, not a DuckDB
                file, written by a newer schema…).
        """
        await self._call(lambda con: None)
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Finish queued calls, close the connection and stop the worker thread.

        Later calls raise ``StoreError``; closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        finally:
            self._executor.shutdown(wait=False)

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        """Store spans; spans already stored (same trace and span id) are skipped.

        Args:
            spans: The spans.

        Returns:
            How many were new.
        """
        if not spans:
            self._check()
            return 0
        batch = list(spans)
        return await self._call(lambda con: _insert_spans(con, batch))

    async def write_graph(self, graph: RunGraph) -> None:
        """Store a run's graph, replacing what was stored for that trace.

        Args:
            graph: The graph.
        """
        await self._call(lambda con: _replace_graph(con, graph))

    async def write_graphs(self, graphs: Sequence[RunGraph]) -> None:
        """Store many runs' graphs in one transaction, each replacing its trace's rows.

        Args:
            graphs: The graphs (when a trace appears twice, the last graph wins).
        """
        latest = list({graph.trace_id: graph for graph in graphs}.values())
        if not latest:
            self._check()
            return
        await self._call(lambda con: _replace_graphs(con, latest))

    async def write_detection(self, detection: Detection) -> bool:
        """Store a detection unless one with its id is stored already.

        Args:
            detection: The detection.

        Returns:
            Whether it was new.
        """
        return await self._call(lambda con: _insert_detection(con, detection))

    async def count_spans(self) -> int:
        """Count every stored span.

        Returns:
            The count.
        """
        return await self._call(lambda con: _scalar_int(con, "SELECT count(*) FROM spans"))

    async def spans(self, trace_id: str) -> list[SpanRecord]:
        """Read a trace's spans.

        Args:
            trace_id: The trace.

        Returns:
            Its spans by start time (then span id); empty when unknown.
        """
        rows = await self._call(lambda con: _fetch(con, _SELECT_SPANS, [trace_id]))
        return [_span(row) for row in rows]

    async def runs(
        self,
        limit: int | None = None,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[RunSummary]:
        """List runs, latest start first.

        Args:
            limit: Most runs returned; all when ``None``.
            since_ns: Only runs that started at or after this time.
            until_ns: Only runs that started before this time.

        Returns:
            The run summaries.

        Raises:
            StoreError: ``limit`` is below 1.
        """
        check_limit(limit)
        query = _RUN_SUMMARY + " WHERE true"
        params: list[object] = []
        if since_ns is not None:
            query += " AND r.start_ns >= ?"
            params.append(since_ns)
        if until_ns is not None:
            query += " AND r.start_ns < ?"
            params.append(until_ns)
        query += " ORDER BY r.start_ns DESC, r.trace_id"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        rows = await self._call(lambda con: _fetch(con, query, params))
        return [run_summary_from_row(row) for row in rows]

    async def costs(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        group_by: CostGroup = "agent",
    ) -> list[CostRow]:
        """Sum the LLM calls of the runs that started in a time window, by agent or by model.

        Args:
            since_ns: Only runs that started at or after this time.
            until_ns: Only runs that started before this time.
            group_by: ``agent`` (from the stored graphs) or ``model`` (from the chat spans).

        Returns:
            One row per agent or model, highest cost first.

        Raises:
            StoreError: ``group_by`` is neither ``agent`` nor ``model``.
        """
        query = _COSTS_BY_AGENT if check_group_by(group_by) == "agent" else _COSTS_BY_MODEL
        params = {"since": since_ns, "until": until_ns}
        rows = await self._call(lambda con: con.execute(query, params).fetchall())
        return sort_cost_rows(
            CostRow(
                key=row[0],
                llm_calls=int(row[1]),
                input_tokens=int(row[2] or 0),
                output_tokens=int(row[3] or 0),
                cost_usd=float(row[4] or 0.0),
            )
            for row in rows
        )

    async def graph(self, trace_id: str) -> StoredGraph | None:
        """Read a run's graph.

        Args:
            trace_id: The trace.

        Returns:
            The stored graph, or ``None`` when none was written.
        """
        return await self._call(lambda con: _read_graph(con, trace_id))

    async def detections(self, trace_id: str | None = None) -> list[Detection]:
        """Read detections, oldest first (then by id).

        Args:
            trace_id: Only this trace's; every trace's when ``None``.

        Returns:
            The detections.
        """
        query = _SELECT_DETECTIONS
        params: list[object] = []
        if trace_id is not None:
            query += " WHERE trace_id = ?"
            params.append(trace_id)
        query += " ORDER BY detected_at_ns, id"
        rows = await self._call(lambda con: _fetch(con, query, params))
        return [detection_from_row(row) for row in rows]

    # --- the worker thread ------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise StoreError(f"the DuckDB store {self._path} is closed")

    async def _call(self, work: Callable[[_Con], _T]) -> _T:
        self._check()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_worker, work)

    def _in_worker(self, work: Callable[[_Con], _T]) -> _T:
        try:
            if self._con is None:
                self._con = _connect(self._path)
            return work(self._con)
        except duckdb.Error as exc:
            raise StoreError(f"DuckDB store {self._path}: {_plain(exc)}") from exc

    def _disconnect(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()
            except duckdb.Error as exc:
                raise StoreError(f"DuckDB store {self._path}: {_plain(exc)}") from exc


def _plain(exc: duckdb.Error) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _connect(path: str) -> _Con:
    if path != _MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(path)
    try:
        con.execute("BEGIN TRANSACTION")
        for statement in SCHEMA:
            con.execute(statement)
        version = _fetch(con, "SELECT max(version) FROM schema_version", [])[0][0]
        if version is None:
            con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])
        elif int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"DuckDB store {path} has schema version {version}, newer than this "
                f"collector's {SCHEMA_VERSION}: upgrade AgentMesh"
            )
        else:
            _upgrade(con, int(version))
        con.execute("COMMIT")
    except BaseException:
        con.close()
        raise
    return con


def _upgrade(con: _Con, version: int) -> None:
    """Bring a file at ``version`` to :data:`SCHEMA_VERSION`, inside the caller's transaction."""
    for step in range(version, SCHEMA_VERSION):
        for statement in UPGRADES[step]:
            con.execute(statement)
    if version < SCHEMA_VERSION:
        con.execute("DELETE FROM schema_version")
        con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])


def _fetch(con: _Con, query: str, params: Sequence[object]) -> list[_Row]:
    return con.execute(query, params).fetchall()


def _scalar_int(con: _Con, query: str, params: Sequence[object] = ()) -> int:
    rows = _fetch(con, query, params)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def _insert_spans(con: _Con, spans: list[SpanRecord]) -> int:
    unique: dict[tuple[str, str], SpanRecord] = {}
    for span in spans:
        unique.setdefault((span.trace_id, span.span_id), span)
    columns = _span_columns(list(unique.values()))
    if _pa is not None:
        return _insert_arrow(con, columns)
    return _scalar_int(con, _INSERT_SPANS, columns)


def _span_columns(rows: list[SpanRecord]) -> list[list[object]]:
    usages = [chat_usage(s) for s in rows]
    none = ChatUsage(None, 0, 0, 0.0)
    return [
        [s.trace_id for s in rows],
        [s.span_id for s in rows],
        [s.parent_span_id for s in rows],
        [s.name for s in rows],
        [s.kind for s in rows],
        [s.start_ns for s in rows],
        [s.end_ns for s in rows],
        [s.status_code for s in rows],
        [s.status_message for s in rows],
        [s.operation for s in rows],
        [s.str_attr(semconv.AGENTMESH_RUN_ID) for s in rows],
        [s.service_name for s in rows],
        [s.scope_name for s in rows],
        [_JSON(dict(s.attributes)) for s in rows],
        ["[]" if not s.events else events_to_json(s.events) for s in rows],
        [_JSON(dict(s.resource_attributes)) for s in rows],
        [(u or none).model for u in usages],
        [None if u is None else u.input_tokens for u in usages],
        [None if u is None else u.output_tokens for u in usages],
        [None if u is None else u.cost_usd for u in usages],
    ]


def _insert_arrow(con: _Con, columns: list[list[object]]) -> int:
    """Append through an Arrow table (DuckDB scans it without copying into Python lists)."""
    pa: Any = _pa
    arrays = [
        pa.array(
            values,
            type=pa.int64()
            if name in _INT_COLUMNS
            else pa.float64()
            if name == "cost_usd"
            else pa.string(),
        )
        for name, values in zip(_SPAN_COLUMNS, columns, strict=True)
    ]
    table = pa.table(arrays, names=list(_SPAN_COLUMNS))
    con.register("agentmesh_span_batch", table)
    try:
        return _scalar_int(con, _INSERT_ARROW)
    finally:
        con.unregister("agentmesh_span_batch")


def _replace_graphs(con: _Con, graphs: list[RunGraph]) -> None:
    trace_ids = [g.trace_id for g in graphs]
    agents = [(g.trace_id, a) for g in graphs for a in g.agents.values()]
    edges = [(g.trace_id, e) for g in graphs for e in g.handoffs]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "DELETE FROM agents WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))", [trace_ids]
        )
        con.execute(
            "DELETE FROM handoffs WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))", [trace_ids]
        )
        con.execute(
            _UPSERT_RUNS,
            [
                trace_ids,
                [g.run_id for g in graphs],
                [g.workflow_name for g in graphs],
                [g.service_name for g in graphs],
                [g.framework for g in graphs],
                [g.start_ns for g in graphs],
                [g.end_ns for g in graphs],
                [g.span_count for g in graphs],
                [g.llm_calls for g in graphs],
                [g.input_tokens for g in graphs],
                [g.output_tokens for g in graphs],
                [g.cost_usd for g in graphs],
                [g.complete for g in graphs],
            ],
        )
        if agents:
            con.execute(
                _INSERT_AGENTS_MANY,
                [
                    [t for t, _ in agents],
                    [a.name for _, a in agents],
                    [a.invocations for _, a in agents],
                    [list(a.span_ids) for _, a in agents],
                    [a.llm_calls for _, a in agents],
                    [a.input_tokens for _, a in agents],
                    [a.output_tokens for _, a in agents],
                    [a.cost_usd for _, a in agents],
                ],
            )
        if edges:
            con.execute(
                _INSERT_HANDOFFS_MANY,
                [
                    [t for t, _ in edges],
                    [e.seq for _, e in edges],
                    [e.source for _, e in edges],
                    [e.target for _, e in edges],
                    [e.span_id for _, e in edges],
                    [e.start_ns for _, e in edges],
                    [e.kind for _, e in edges],
                    [e.context_digest for _, e in edges],
                    [e.context_size for _, e in edges],
                ],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _replace_graph(con: _Con, graph: RunGraph) -> None:
    agents = list(graph.agents.values())
    edges = graph.handoffs
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            _UPSERT_RUN,
            [
                graph.trace_id,
                graph.run_id,
                graph.workflow_name,
                graph.service_name,
                graph.framework,
                graph.start_ns,
                graph.end_ns,
                graph.span_count,
                graph.llm_calls,
                graph.input_tokens,
                graph.output_tokens,
                graph.cost_usd,
                graph.complete,
            ],
        )
        con.execute("DELETE FROM agents WHERE trace_id = ?", [graph.trace_id])
        con.execute("DELETE FROM handoffs WHERE trace_id = ?", [graph.trace_id])
        if agents:
            con.execute(
                _INSERT_AGENTS,
                [
                    graph.trace_id,
                    [a.name for a in agents],
                    [a.invocations for a in agents],
                    [list(a.span_ids) for a in agents],
                    [a.llm_calls for a in agents],
                    [a.input_tokens for a in agents],
                    [a.output_tokens for a in agents],
                    [a.cost_usd for a in agents],
                ],
            )
        if edges:
            con.execute(
                _INSERT_HANDOFFS,
                [
                    graph.trace_id,
                    [e.seq for e in edges],
                    [e.source for e in edges],
                    [e.target for e in edges],
                    [e.span_id for e in edges],
                    [e.start_ns for e in edges],
                    [e.kind for e in edges],
                    [e.context_digest for e in edges],
                    [e.context_size for e in edges],
                ],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _insert_detection(con: _Con, d: Detection) -> bool:
    params: list[object] = [
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
    ]
    return _scalar_int(con, _INSERT_DETECTION, params) > 0


def _read_graph(con: _Con, trace_id: str) -> StoredGraph | None:
    runs = _fetch(con, _RUN_SUMMARY + " WHERE r.trace_id = ?", [trace_id])
    if not runs:
        return None
    agents = _fetch(
        con,
        "SELECT name, invocations, span_ids, llm_calls, input_tokens, output_tokens, cost_usd "
        "FROM agents WHERE trace_id = ? ORDER BY name",
        [trace_id],
    )
    edges = _fetch(
        con,
        "SELECT seq, source, target, span_id, start_ns, kind, context_digest, context_size "
        "FROM handoffs WHERE trace_id = ? ORDER BY seq",
        [trace_id],
    )
    return StoredGraph(
        run=run_summary_from_row(runs[0]),
        agents=[
            AgentNode(
                name=row[0],
                invocations=row[1],
                span_ids=tuple(row[2]),
                llm_calls=row[3],
                input_tokens=row[4],
                output_tokens=row[5],
                cost_usd=row[6],
            )
            for row in agents
        ],
        handoffs=[
            HandoffEdge(
                seq=row[0],
                source=row[1],
                target=row[2],
                span_id=row[3],
                start_ns=row[4],
                kind=row[5],
                context_digest=row[6],
                context_size=row[7],
            )
            for row in edges
        ],
    )


def _span(row: _Row) -> SpanRecord:
    return SpanRecord(
        trace_id=row[0],
        span_id=row[1],
        parent_span_id=row[2],
        name=row[3],
        kind=cast(SpanKind, row[4]),
        start_ns=row[5],
        end_ns=row[6],
        status_code=cast(StatusCode, row[7]),
        status_message=row[8],
        service_name=row[11],
        scope_name=row[12],
        attributes=attributes_from_json(row[13]),
        events=events_from_json(row[14]),
        resource_attributes=attributes_from_json(row[15]),
    )
