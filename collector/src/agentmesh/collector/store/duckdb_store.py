"""The embedded default store: one DuckDB file, owned by one collector process.

Writes run in one dedicated worker thread (a single-thread executor), in the order they were
made; reads run in a reader thread on a second connection to the same database, so a dashboard
or API read never waits for queued writes and never holds them up. Each connection is only ever
used from its own thread, and the event loop never blocks on the database. A read sees every
write its caller awaited (each is committed when it returns), not one still running. DuckDB
releases the GIL while it works. DuckDB errors surface as
:class:`~agentmesh.core.errors.StoreError`.

Spans go in as Arrow tables (:mod:`~agentmesh.collector.store.span_table`), appended to a
``spans`` table without a primary key: an index on it would cost more per span as the table
grows and would live in memory. Instead the store remembers the keys of the spans it stored
recently (a window of whole traces, oldest evicted first, ``dedupe_spans`` keys at most,
filled from the last spans of the file when it is opened) and drops re-deliveries inside it. A
duplicate from further back may be stored twice, so every read keeps the first stored copy of
each (trace, span) and answers as if each were stored once. Detections and graph rows keep
their keys (they are few).

A full disk is an outage, not bad data: a commit the disk refused (no space, file size limit,
quota) raises :class:`~agentmesh.core.errors.StoreUnavailableError`, so the pipeline holds the
batch and retries it while the receivers push back, and nothing is lost. When DuckDB could not
write a checkpoint it invalidates the database for the rest of the process; the store then
closes both connections and opens the file again on its next call (DuckDB replays the
write-ahead log), so the collector recovers once there is room, without a restart. A write
retried after such a failure may be stored twice; reads show it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self, TypeVar, cast

import duckdb
import pyarrow.compute  # pyright: ignore[reportMissingTypeStubs]

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.model import SpanKind, SpanRecord, StatusCode
from agentmesh.collector.store.base import (
    MARKER_NAME,
    CostGroup,
    CostRow,
    Pruned,
    RunStateName,
    RunSummary,
    StoredGraph,
)
from agentmesh.collector.store.codec import (
    attributes_from_json,
    events_from_json,
)
from agentmesh.collector.store.duckdb_graph_reads import (
    AGENTS_OF,
    COSTS_BY_AGENT,
    HANDOFFS_OF,
    LATEST_RUNS,
    MATCHING,
    MATCHING_ORDER,
    PREVIOUS_RUN,
    RESUMPTIONS,
    RUN_ORDER,
    RUNS_OF,
    WINDOW,
    run_filter,
    run_list,
)
from agentmesh.collector.store.duckdb_graphs import GraphVersions
from agentmesh.collector.store.duckdb_newest import newest_page
from agentmesh.collector.store.duckdb_prune import prune_ended
from agentmesh.collector.store.duckdb_schema import (
    LEGACY_GRAPH_TABLES,
    SCHEMA,
    SCHEMA_VERSION,
    UPGRADES,
    VERSIONED_GRAPHS,
    VIEWS,
)
from agentmesh.collector.store.rows import (
    detection_from_row,
    detection_to_row,
    run_summary_from_row,
    spans_by_trace,
    stored_graphs,
)
from agentmesh.collector.store.span_table import SPAN_SCHEMA, span_table
from agentmesh.collector.store.usage import (
    check_group_by,
    check_limit,
    check_state,
    sort_cost_rows,
)
from agentmesh.core import semconv
from agentmesh.core.disk_errors import disk_refused
from agentmesh.core.errors import StoreError, StoreUnavailableError
from agentmesh.core.log import get_logger

__all__ = [
    "CHECKPOINT_THRESHOLD",
    "DEDUPE_SPANS",
    "MEMORY_LIMIT",
    "PREVIOUS_SPANS",
    "PREVIOUS_TRACES",
    "DuckDBStore",
]

log = get_logger(__name__)

DEDUPE_SPANS: Final = 500_000
"""Default number of recently stored span keys the store checks re-deliveries against."""

MEMORY_LIMIT: Final = "256MB"
"""Default DuckDB ``memory_limit`` (its buffer pool: cached blocks, sorts, joins)."""

CHECKPOINT_THRESHOLD: Final = "256MB"
"""Default DuckDB ``checkpoint_threshold``: write-ahead log written between two checkpoints.

Each checkpoint rewrites the last, partly filled row group: at DuckDB's default of 16 MB that
happens every ~16,000 spans and costs more than the appends themselves. Until a checkpoint the
spans appended since the last one stay in DuckDB's memory as well, so the threshold also sets
how far the collector's memory rises between checkpoints (within ``memory_limit``).
"""

_T = TypeVar("_T")
_pc: Any = pyarrow.compute  # pyarrow ships without complete type information
_Con = duckdb.DuckDBPyConnection
_Row = tuple[Any, ...]  # DuckDB rows are untyped tuples
_MEMORY: Final = ":memory:"

_SELECT_SPANS: Final = """
    SELECT trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code,
        status_message, operation, run_id, service_name, scope_name, attributes, events, resource
    FROM spans WHERE trace_id = ?
    QUALIFY row_number() OVER (PARTITION BY span_id ORDER BY rowid) = 1
    ORDER BY start_ns, span_id
"""
_SELECT_SPANS_OF: Final = """
    SELECT trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code,
        status_message, operation, run_id, service_name, scope_name, attributes, events, resource
    FROM spans WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))
    QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY rowid) = 1
    ORDER BY trace_id, start_ns, span_id
"""
_BATCH: Final = "agentmesh_span_batch"
_INSERT_BATCH: Final = f"INSERT INTO spans ({', '.join(SPAN_SCHEMA.names)}) SELECT * FROM {_BATCH}"  # noqa: S608
_LATEST_KEYS: Final = """
    SELECT trace_id, span_id FROM spans
    WHERE rowid >= (SELECT coalesce(max(rowid), 0) FROM spans) - ?
    ORDER BY rowid
"""
_PREVIOUS_TRACES: Final = """
    SELECT trace_id FROM spans
    WHERE rowid >= (SELECT coalesce(max(rowid), 0) FROM spans) - ? AND name <> ?
    GROUP BY trace_id ORDER BY max(rowid) DESC LIMIT ?
"""
PREVIOUS_SPANS: Final = 1_000_000
"""Last rows of the file whose traces the store remembers when first asked which traces it
holds (see :meth:`DuckDBStore.traces_with_spans`)."""
PREVIOUS_TRACES: Final = 100_000
"""Most traces remembered that way (the newest), and most of those stored since."""
_MEMORY_BYTES: Final = "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
_MEMORY_SAMPLE_SECONDS: Final = 1.0
_COUNT_SPANS: Final = "SELECT count(*) FROM (SELECT DISTINCT trace_id, span_id FROM spans)"
_FIRST_COPY: Final = "QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY rowid) = 1"
"""Keeps the first stored row of each span: re-deliveries past the window are stored again."""
_COSTS_BY_MODEL: Final = f"""
    SELECT s.model, count(*), sum(s.input_tokens), sum(s.output_tokens), sum(s.cost_usd)
    FROM (SELECT model, input_tokens, output_tokens, cost_usd, trace_id FROM spans
          WHERE operation = '{semconv.Operation.CHAT}' {_FIRST_COPY}) s
    JOIN {LATEST_RUNS} r ON r.trace_id = s.trace_id
    WHERE {WINDOW}
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
        dedupe_spans: How many recently stored span keys re-deliveries are checked against
            (0: none; reads stay exact either way).
        memory_limit: DuckDB's ``memory_limit`` (``"1GB"``, ``"512MiB"``…); DuckDB's own
            default (80% of the machine's memory) when ``None``.
        threads: Threads DuckDB may use; 0 or ``None`` for one per CPU (DuckDB's default).
        checkpoint_threshold: DuckDB's ``checkpoint_threshold`` (``"256MB"``…): write-ahead log
            written between two checkpoints (see :data:`CHECKPOINT_THRESHOLD`).

    Example:
        >>> import asyncio
        >>> async def count() -> int:
        ...     async with DuckDBStore(":memory:") as store:
        ...         return await store.count_spans()
        >>> asyncio.run(count())
        0
    """

    in_process: ClassVar[bool] = True
    """The data lives in the collector's process: the collector never probes the store (a
    refused write, say on a full disk, is found by the write itself)."""

    def __init__(
        self,
        path: str | Path = "agentmesh.duckdb",
        *,
        dedupe_spans: int = DEDUPE_SPANS,
        memory_limit: str | None = MEMORY_LIMIT,
        threads: int | None = 1,
        checkpoint_threshold: str = CHECKPOINT_THRESHOLD,
    ) -> None:
        if dedupe_spans < 0:
            raise StoreError(f"dedupe_spans must be at least 0, got {dedupe_spans}")
        self._path = str(path)
        self._memory_limit = memory_limit
        self._threads = threads or None
        self._checkpoint_threshold = checkpoint_threshold
        self._recent = _RecentSpans(dedupe_spans)  # used only in the worker thread
        # Traces with spans other than start markers, for ``traces_with_spans`` (read from
        # the event loop: single dict and set look-ups, atomic under the GIL). Those of the
        # file's last rows when first asked (read once; not at open: CLI reads need not)...
        self._previous: frozenset[str] | None = None
        # ... and the last ones first stored since, changed only in the worker thread.
        self._stored_since: OrderedDict[str, None] = OrderedDict()
        self._graphs = GraphVersions()  # used only in the worker thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentmesh-duckdb")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentmesh-duckdb-read")
        self._con: _Con | None = None  # used only in the worker thread
        self._rcon: _Con | None = None  # made by the worker, then used only in the reader thread
        self._closed = False
        self._invalidated = False  # DuckDB gave up on the database: reopen it on the next call
        self.reopens = 0
        """Times the store closed a database DuckDB had invalidated, to open it again."""
        self.memory_sampled: int | None = None
        """DuckDB's memory in bytes (see :meth:`memory_bytes`) as sampled after the store's last
        calls, at most once a second; ``None`` before the first call."""
        self._memory_at = -_MEMORY_SAMPLE_SECONDS

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
        loop = asyncio.get_running_loop()
        try:
            # the reader's connection first: the database stays open while any connection is
            await loop.run_in_executor(self._reader, self._disconnect_reader)
            await loop.run_in_executor(self._executor, self._disconnect)
        finally:
            self._reader.shutdown(wait=False)
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
        return await self._call(lambda con: self._append(con, span_table(batch)))

    async def write_span_table(self, table: Any) -> int:
        """Store spans given as an Arrow table; spans already stored recently are skipped.

        A span whose key (trace and span id) appears earlier in the table, or was stored
        within the last ``dedupe_spans`` keys, is dropped; one re-delivered from further back
        may be stored again, which no read shows.

        Args:
            table: A ``pyarrow.Table`` with the columns of
                :data:`~agentmesh.collector.store.span_table.SPAN_SCHEMA`, as
                :func:`~agentmesh.collector.store.span_table.span_table` builds it.

        Returns:
            How many rows were stored.

        Raises:
            StoreError: The table's columns are not those of ``SPAN_SCHEMA``.
        """
        _check_span_table(table)
        if table.num_rows == 0:
            self._check()
            return 0
        return await self._call(lambda con: self._append(con, table))

    async def write_graph(self, graph: RunGraph) -> None:
        """Store a run's graph, replacing what was stored for that trace.

        Args:
            graph: The graph.
        """
        await self._call(lambda con: self._graphs.write(con, [graph]))

    async def write_graphs(self, graphs: Sequence[RunGraph]) -> None:
        """Store many runs' graphs in one transaction, each replacing its trace's rows.

        Args:
            graphs: The graphs (when a trace appears twice, the last graph wins).
        """
        latest = list({graph.trace_id: graph for graph in graphs}.values())
        if not latest:
            self._check()
            return
        await self._call(lambda con: self._graphs.write(con, latest))

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
        return await self._read(lambda con: _scalar_int(con, _COUNT_SPANS))

    async def memory_bytes(self) -> int:
        """Bytes DuckDB's buffer manager holds now (its ``duckdb_memory()``), cheap to ask.

        Row groups appended since the last checkpoint, cached blocks, sorts and joins: the part
        of the collector's memory that DuckDB owns (its ``memory_limit`` bounds it).

        Returns:
            The bytes.
        """
        return await self._read(lambda con: _scalar_int(con, _MEMORY_BYTES))

    async def spans(self, trace_id: str, *, limit: int | None = None) -> list[SpanRecord]:
        """Read a trace's spans.

        Args:
            trace_id: The trace.
            limit: Only the first ``limit`` of them; all when ``None``.

        Returns:
            Its spans by start time (then span id); empty when unknown.
        """
        if limit is None:
            query, params = _SELECT_SPANS, [trace_id]
        else:
            query, params = _SELECT_SPANS + " LIMIT ?", [trace_id, limit]
        rows = await self._read(lambda con: _fetch(con, query, params))
        return [_span(row) for row in rows]

    async def spans_of(self, trace_ids: Sequence[str]) -> dict[str, list[SpanRecord]]:
        """Read several traces' spans in one scan of the spans table.

        Args:
            trace_ids: The traces.

        Returns:
            Each trace's spans by start time (then span id); a trace with no span is absent.
        """
        wanted = list(dict.fromkeys(trace_ids))
        if not wanted:
            self._check()
            return {}
        rows = await self._read(lambda con: _fetch(con, _SELECT_SPANS_OF, [wanted]))
        return spans_by_trace(rows, _span)

    async def traces_with_spans(self, trace_ids: Sequence[str]) -> set[str]:
        """Say which of these traces have spans stored, start markers aside; from memory.

        The file has one writing process, so the traces another process stored are those
        the file held when this store was first asked (the pipeline asks before it stores
        anything): the traces of its last :data:`PREVIOUS_SPANS` rows (the newest
        :data:`PREVIOUS_TRACES`), read once then. With the last :data:`PREVIOUS_TRACES` traces
        it began to store since, they are the answer, found without reading the file again; a
        trace whose spans are all older than both is not reported (finding it would mean
        reading every trace id of the file at every call).

        Args:
            trace_ids: The traces.

        Returns:
            Those known to have at least one stored span that is not a start marker.
        """
        previous = self._previous
        if previous is None:  # the first question: before the pipeline stores anything
            previous = self._previous = await self._call(_previous_traces)
        else:
            self._check()
        since = self._stored_since
        return {t for t in trace_ids if t in previous or t in since}

    async def runs(
        self,
        limit: int | None = None,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        state: RunStateName | None = None,
        conversation_id: str | None = None,
        after: tuple[int, str] | None = None,
        workflow_name: str | None = None,
    ) -> list[RunSummary]:
        """List runs, latest start first (then by trace id).

        Args:
            limit: Most runs returned; all when ``None``.
            since_ns: Only runs that started at or after this time.
            until_ns: Only runs that started before this time.
            state: Only runs in this state.
            conversation_id: Only the runs of this conversation (exactly).
            after: Only the runs listed after this ``(start_ns, trace_id)``.
            workflow_name: Only the runs of this workflow (exactly).

        Returns:
            The run summaries.

        Raises:
            StoreError: ``limit`` is below 1, or ``state`` is not a run state.
        """
        check_limit(limit)
        check_state(state)
        params = {
            "since": since_ns,
            "until": until_ns,
            "conversation": conversation_id,
            "workflow": workflow_name,
        }
        wanted: dict[str, object] = {k: v for k, v in params.items() if v is not None}
        if after is not None:
            wanted |= {"after_ns": after[0], "after_trace": after[1]}
        where = run_filter(
            since=since_ns is not None,
            until=until_ns is not None,
            state=state,
            conversation=conversation_id is not None,
            after=after is not None,
            workflow=workflow_name is not None,
        )
        if limit is not None:  # a page: only the rows it needs (duckdb_newest)
            return await self._page(where, RUN_ORDER, wanted, limit)
        query = run_list(where)
        return await self._summaries(query, wanted)

    async def find_runs(self, prefix: str, *, limit: int) -> list[RunSummary]:
        """Find runs by the start of their run id (any case) or trace id, in one query.

        Args:
            prefix: What the run id (compared in lower case) or the trace id starts with, in
                lower case.
            limit: Most runs returned; exact matches first, then the latest started.

        Returns:
            The matching runs' summaries, latest start first.

        Raises:
            StoreError: ``limit`` is below 1.
        """
        check_limit(limit)
        return await self._page(MATCHING, MATCHING_ORDER, {"prefix": prefix}, limit)

    async def resumptions(self, run_id: str, *, limit: int) -> list[RunSummary]:
        """Find the runs that continue a run (their newest rows), in one query.

        Args:
            run_id: The run they continue (exactly).
            limit: Most runs returned; the latest started first.

        Returns:
            Their summaries, latest start first.

        Raises:
            StoreError: ``limit`` is below 1.
        """
        check_limit(limit)
        return await self._summaries(RESUMPTIONS, {"run": run_id, "limit": limit})

    async def _page(
        self, where: str, order: str, params: Mapping[str, object], limit: int
    ) -> list[RunSummary]:
        """The summaries of a page of runs (:func:`~.duckdb_newest.newest_page`), off the writer."""
        rows = await self._read(lambda con: newest_page(con, where, order, params, limit))
        return [run_summary_from_row(row) for row in rows]

    async def _summaries(self, query: str, params: Mapping[str, object]) -> list[RunSummary]:
        """The run summaries a query of ``duckdb_graph_reads`` returns, read off the writer."""
        rows = await self._read(lambda con: con.execute(query, params).fetchall())
        return [run_summary_from_row(row) for row in rows]

    async def previous_run(self, conversation_id: str, *, before_ns: int) -> RunSummary | None:
        """Find the run of a conversation that started last before a time, in one query.

        Args:
            conversation_id: The conversation, exactly.
            before_ns: Only runs that started strictly before this (Unix ns).

        Returns:
            Its summary (its newest row), or ``None``.
        """
        found = await self._summaries(
            PREVIOUS_RUN, {"conversation": conversation_id, "before": before_ns}
        )
        return found[0] if found else None

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
        query = COSTS_BY_AGENT if check_group_by(group_by) == "agent" else _COSTS_BY_MODEL
        params = {"since": since_ns, "until": until_ns}
        rows = await self._read(lambda con: con.execute(query, params).fetchall())
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
        return (await self._read(lambda con: _read_graphs(con, [trace_id]))).get(trace_id)

    async def graphs_of(self, trace_ids: Sequence[str]) -> dict[str, StoredGraph]:
        """Read several runs' graphs in three queries.

        Args:
            trace_ids: The traces.

        Returns:
            Each trace's graph; a trace without one is absent.
        """
        wanted = list(dict.fromkeys(trace_ids))
        if not wanted:
            self._check()
            return {}
        return await self._read(lambda con: _read_graphs(con, wanted))

    async def detections(
        self,
        trace_id: str | None = None,
        *,
        since_ns: int | None = None,
        detection_type: str | None = None,
        limit: int | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[Detection]:
        """Read detections, oldest first (then by id).

        Args:
            trace_id: Only this trace's; every trace's when ``None``.
            since_ns: Only those detected at or after this time (Unix nanoseconds).
            detection_type: Only those of this type (``handoff_loop``...).
            limit: Only the newest ``limit`` of them (still returned oldest first).
            before: Only those ordered before this ``(detected_at_ns, id)``: the oldest of a
                page, for the page before it (``(ns, "")``: every detection before ``ns``).

        Returns:
            The detections.
        """
        where: list[str] = []
        params: list[object] = []
        if trace_id is not None:
            where.append("trace_id = ?")
            params.append(trace_id)
        if since_ns is not None:
            where.append("detected_at_ns >= ?")
            params.append(since_ns)
        if detection_type is not None:
            where.append("type = ?")
            params.append(detection_type)
        if before is not None:
            where.append("(detected_at_ns < ? OR (detected_at_ns = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        query = _SELECT_DETECTIONS + (" WHERE " + " AND ".join(where) if where else "")
        query += " ORDER BY detected_at_ns DESC, id DESC"  # newest first, for the limit
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        rows = await self._read(lambda con: _fetch(con, query, params))
        return [detection_from_row(row) for row in reversed(rows)]

    async def prune(self, before_ns: int, *, limit: int) -> Pruned:
        """Delete what ended before a time: whole runs, and the leftovers of traces with no run.

        Runs in the writing thread, one transaction per call
        (:mod:`~agentmesh.collector.store.duckdb_prune`).

        Args:
            before_ns: The cut-off (Unix nanoseconds).
            limit: Most runs deleted by this call, the earliest started first; the leftovers
                of traces with no run go in the call that deletes fewer runs than this.

        Returns:
            What was deleted.
        """
        check_limit(limit)
        return await self._call(lambda con: self._prune(con, before_ns, limit))

    def _prune(self, con: _Con, before_ns: int, limit: int) -> Pruned:
        pruned = prune_ended(con, before_ns, limit)
        if pruned.runs:
            self._graphs.recount(con)
        return pruned

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
            if self._invalidated:
                self._drop_connections()
            if self._con is None:
                con = _connect(
                    self._path, self._memory_limit, self._threads, self._checkpoint_threshold
                )
                try:
                    self._recent.load(con)
                    self._graphs.load(con)
                    self._rcon = con.cursor()  # same database, its own transactions
                except BaseException:
                    con.close()
                    raise
                self._con = con
            result = work(self._con)
        except duckdb.Error as exc:
            raise self._error(exc) from exc
        self._sample_memory(self._con)
        return result

    def _sample_memory(self, con: _Con) -> None:
        """Refresh :attr:`memory_sampled` after a call, at most once a second (worker thread)."""
        now = time.monotonic()
        if now - self._memory_at < _MEMORY_SAMPLE_SECONDS:
            return
        self._memory_at = now
        with contextlib.suppress(duckdb.Error):  # a figure for the metrics, never a failure
            self.memory_sampled = _scalar_int(con, _MEMORY_BYTES)

    def _error(self, exc: duckdb.Error) -> StoreError:
        """The store's error for a DuckDB error (in either thread)."""
        holder = _LOCK_HOLDER.search(str(exc))
        if holder is not None:  # opening a file another process has open (a collector)
            return StoreError(
                f"DuckDB store {self._path} is open in another process (PID {holder.group(1)}; "
                "a running collector?), and DuckDB lets only one process open a file: stop "
                "that process, or read through its HTTP API (`--collector URL` on the CLI)"
            )
        message = f"DuckDB store {self._path}: {_plain(exc)}"
        if isinstance(exc, duckdb.FatalException):
            self._invalidated = True
            return StoreUnavailableError(f"{message} (the database is opened again next call)")
        if disk_refused(exc):
            return StoreUnavailableError(message)
        return StoreError(message)

    def _drop_connections(self) -> None:
        """Close both connections to an invalidated database (in the worker thread).

        DuckDB drops a database when its last connection closes; the next call opens the file
        again, replaying its write-ahead log.
        """
        self._invalidated = False
        self._reader.submit(self._quiet_close_reader).result()
        con, self._con = self._con, None
        _quiet_close(con)
        self.reopens += 1
        log.warning("duckdb store reopening after a fatal error", path=self._path)

    def _quiet_close_reader(self) -> None:
        con, self._rcon = self._rcon, None
        _quiet_close(con)

    async def _read(self, work: Callable[[_Con], _T]) -> _T:
        """Run a read on the reader's connection: it need not wait for queued writes.

        Every write the caller awaited is committed, so the read sees it; writes still
        running are not seen, as with any concurrent reader.
        """
        self._check()
        if self._rcon is None or self._invalidated:
            await self._call(lambda con: None)  # opens the file (again) and makes the reader
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._in_reader, work)

    def _in_reader(self, work: Callable[[_Con], _T]) -> _T:
        con = self._rcon
        if con is None:
            if self._closed:
                raise StoreError(f"the DuckDB store {self._path} is closed")
            raise StoreUnavailableError(f"the DuckDB store {self._path} is being opened again")
        try:
            return work(con)
        except duckdb.Error as exc:
            raise self._error(exc) from exc

    def _append(self, con: _Con, table: Any) -> int:
        """Append the rows of ``table`` not stored recently (in the worker thread)."""
        trace_ids = cast(list[str], table.column("trace_id").to_pylist())
        span_ids = cast(list[str], table.column("span_id").to_pylist())
        keep, new = self._recent.unseen(trace_ids, span_ids)
        if not keep:
            self._recent.add(new)  # a re-delivered trace is still in use
            return 0
        if len(keep) < len(trace_ids):
            table = table.take(keep)
        con.register(_BATCH, table)
        try:
            con.execute(_INSERT_BATCH)
        finally:
            con.unregister(_BATCH)
        self._recent.add(new)  # only once stored: a failed write can be retried
        self._note_traces(table, new.keys())
        return len(keep)

    def _note_traces(self, table: Any, traces: Iterable[str]) -> None:
        """Remember the traces of stored rows that are not start markers (worker thread).

        Args:
            table: The rows stored.
            traces: The traces of the batch (known already); used as they are when the
                rows hold no start marker, the common case, which costs one pass over the
                names.
        """
        names = table.column("name")
        if _pc.any(_pc.equal(names, MARKER_NAME)).as_py():
            steps = table.column("trace_id").filter(_pc.not_equal(names, MARKER_NAME))
            traces = cast(list[str], _pc.unique(steps).to_pylist())
        since = self._stored_since
        for trace_id in traces:  # a trace keeps the place it was first stored at
            if trace_id not in since:
                since[trace_id] = None
        while len(since) > PREVIOUS_TRACES:
            since.popitem(last=False)

    def _disconnect_reader(self) -> None:
        con, self._rcon = self._rcon, None
        self._close_connection(con)

    def _disconnect(self) -> None:
        con, self._con = self._con, None
        self._close_connection(con)

    def _close_connection(self, con: _Con | None) -> None:
        if self._invalidated:  # DuckDB gave the database up already: nothing left to save
            _quiet_close(con)
        elif con is not None:
            try:
                con.close()
            except duckdb.Error as exc:
                raise StoreError(f"DuckDB store {self._path}: {_plain(exc)}") from exc


def _check_span_table(table: Any) -> None:
    """Refuse anything but an Arrow table with the ``spans`` columns.

    Args:
        table: What was given as a table of spans.

    Raises:
        StoreError: It is not a ``pyarrow.Table``, or its columns differ from
            :data:`~agentmesh.collector.store.span_table.SPAN_SCHEMA` (the message names the
            first difference).
    """
    schema = getattr(table, "schema", None)
    if schema is None or not hasattr(table, "num_rows"):
        raise StoreError(f"expected a pyarrow.Table of spans, got {type(table).__name__}")
    if schema.equals(SPAN_SCHEMA):
        return
    got = [f"{field.name}: {field.type}" for field in schema]
    want = [f"{field.name}: {field.type}" for field in SPAN_SCHEMA]
    for index, (have, expected) in enumerate(zip(got, want, strict=False)):
        if have != expected:
            raise StoreError(
                f"span table column {index} is '{have}', expected '{expected}' (SPAN_SCHEMA)"
            )
    if len(got) < len(want):
        raise StoreError(f"span table lacks column(s) {', '.join(want[len(got) :])}")
    if len(got) > len(want):
        raise StoreError(f"span table has extra column(s) {', '.join(got[len(want) :])}")
    raise StoreError("span table columns differ from SPAN_SCHEMA in nullability or metadata")


class _RecentSpans:
    """The keys of recently stored spans, by trace, oldest trace evicted first.

    Not thread-safe: the store uses it from its worker thread only.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._traces: OrderedDict[str, set[str]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def load(self, con: _Con) -> None:
        """Remember the keys of the spans stored last in the file (up to the limit)."""
        self._traces.clear()
        self._size = 0
        if self._limit == 0:
            return
        rows = con.sql(_LATEST_KEYS, params=[self._limit]).to_arrow_table()
        traces = self._traces
        trace_ids = cast(list[str], rows.column(0).to_pylist())
        span_ids = cast(list[str], rows.column(1).to_pylist())
        for trace_id, span_id in zip(trace_ids, span_ids, strict=True):
            known = traces.get(trace_id)
            if known is None:
                known = traces[trace_id] = set()
            else:
                traces.move_to_end(trace_id)
            known.add(span_id)
        self._size = sum(len(known) for known in traces.values())
        while self._size > self._limit:
            _, evicted = traces.popitem(last=False)
            self._size -= len(evicted)

    def unseen(
        self, trace_ids: list[str], span_ids: list[str]
    ) -> tuple[list[int], dict[str, set[str]]]:
        """Find the rows whose key is neither remembered nor earlier in the batch.

        Returns:
            Their indices, and their keys by trace (for :meth:`add` once they are stored).
        """
        traces = self._traces
        new: dict[str, set[str]] = {}
        keep: list[int] = []
        for index, (trace_id, span_id) in enumerate(zip(trace_ids, span_ids, strict=True)):
            pending = new.get(trace_id)
            if pending is None:
                pending = new[trace_id] = set()
            elif span_id in pending:
                continue
            known = traces.get(trace_id)
            if known is not None and span_id in known:
                continue
            pending.add(span_id)
            keep.append(index)
        return keep, new

    def add(self, new: dict[str, set[str]]) -> None:
        """Remember stored keys, then evict the oldest traces beyond the limit.

        Every trace in ``new`` becomes the newest, even one with no new key (a re-delivery).
        """
        if self._limit == 0:
            return
        traces = self._traces
        for trace_id, span_ids in new.items():
            known = traces.get(trace_id)
            if known is None:
                if span_ids:
                    traces[trace_id] = span_ids
                    self._size += len(span_ids)
            else:
                before = len(known)
                known |= span_ids
                self._size += len(known) - before
                traces.move_to_end(trace_id)
        while self._size > self._limit:
            _, evicted = traces.popitem(last=False)
            self._size -= len(evicted)


def _previous_traces(con: _Con) -> frozenset[str]:
    """The traces of the file's last rows, start markers aside (see ``traces_with_spans``)."""
    params = [PREVIOUS_SPANS, MARKER_NAME, PREVIOUS_TRACES]
    rows = con.sql(_PREVIOUS_TRACES, params=params).to_arrow_table()
    return frozenset(cast(list[str], rows.column(0).to_pylist()))


def _quiet_close(con: _Con | None) -> None:
    """Close a connection to a database that is being dropped, whatever DuckDB says."""
    if con is not None:
        try:
            con.close()
        except duckdb.Error as exc:
            log.debug("duckdb connection close failed", error=_plain(exc))


_LOCK_HOLDER: Final = re.compile(
    r"Could not set lock on file .*Conflicting lock is held in .*\(PID (\d+)\)"
)
"""DuckDB's error when another process has the file open (it names that process)."""


def _plain(exc: duckdb.Error) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _connect(
    path: str, memory_limit: str | None, threads: int | None, checkpoint_threshold: str
) -> _Con:
    if path != _MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "preserve_insertion_order": False,  # appends need not keep a scan's order
        "checkpoint_threshold": checkpoint_threshold,
    }
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = threads
    con = duckdb.connect(path, config=config)
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
        for statement in VIEWS:
            con.execute(statement)
        con.execute("COMMIT")
    except BaseException:
        con.close()
        raise
    return con


def _upgrade(con: _Con, version: int) -> None:
    """Bring a file at ``version`` to :data:`SCHEMA_VERSION`, inside the caller's transaction."""
    if version < VERSIONED_GRAPHS:
        for statement in LEGACY_GRAPH_TABLES:  # the steps up to it expect them
            con.execute(statement)
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


def _insert_detection(con: _Con, d: Detection) -> bool:
    params = list(detection_to_row(d))
    return _scalar_int(con, _INSERT_DETECTION, params) > 0


def _read_graphs(con: _Con, trace_ids: list[str]) -> dict[str, StoredGraph]:
    wanted = {"traces": trace_ids}
    runs = con.execute(RUNS_OF, wanted).fetchall()
    if not runs:
        return {}
    agents = con.execute(AGENTS_OF, wanted).fetchall()
    edges = con.execute(HANDOFFS_OF, wanted).fetchall()
    return stored_graphs(runs, agents, edges)


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
