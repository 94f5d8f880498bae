"""Decode OTLP requests in worker processes, so the event loop only builds graphs.

Decoding protobuf spans into Python values is the costliest step of ingestion and holds the
GIL, so threads do not help. :class:`DecodePool` hands each request's raw bytes to a process
pool; a worker parses, applies the limits, normalises foreign conventions and computes what
the main process needs: the graph nodes, the store's Arrow columns and, only when a store
wants them, the full span records (pickled; unpickled on first use). The main process never
sees the protobuf objects.

The pool is bounded by the bytes in flight: past ``max_inflight_bytes`` a request is refused
as busy (the exporter retries). A worker that dies (out of memory, killed) breaks the pool; it
is rebuilt and the request that saw it is answered as busy, so nothing accepted is lost.

Each worker announces its pid when it starts, so :meth:`DecodePool.usage` can read the workers'
memory and CPU time from ``/proc``; the CPU time of workers that have exited is kept, so the
total only grows, as a Prometheus counter must.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import pickle
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.queues import SimpleQueue
from types import TracebackType
from typing import Final, Self

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.batch import ArrowTable, SpanBatch
from agentmesh.collector.graph.node import GraphNode, graph_node
from agentmesh.collector.normalize import normalize_spans
from agentmesh.collector.receiver.decode import NOT_PROTOBUF, DecodeResult, decode_request
from agentmesh.collector.receiver.decode_errors import protobuf_problem
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.receiver.process_usage import PoolUsage, ProcessUsage, process_usage
from agentmesh.core.errors import ReceiverError
from agentmesh.core.log import get_logger

__all__ = ["DecodePool", "DecodedPayload", "PoolBusyError", "decode_payload"]

log = get_logger(__name__)

DEFAULT_MAX_INFLIGHT_BYTES: Final = 64 * 1024 * 1024
_START_SECONDS: Final = 60.0
"""Longest wait at start for every worker to have imported the decoder (then it goes on)."""


class PoolBusyError(ReceiverError):
    """The pool has too many bytes in flight, or a worker died; retry later."""


@dataclass(frozen=True, slots=True)
class DecodedPayload:
    """What a worker returns for one request.

    Attributes:
        nodes: One graph node per accepted span.
        table: The store columns of the accepted spans (``None`` when there are none).
        records_blob: The pickled span records, when asked for.
        rejected: Spans rejected for invalid ids.
        error_message: The partial-success message (empty when nothing was rejected or cut).
        attributes_dropped: Attributes dropped by the limits.
        events_dropped: Events dropped by the limits.
        values_truncated: Values truncated by the limits.
        problem: Why the request as a whole could not be decoded (empty when it could).
    """

    nodes: list[GraphNode]
    table: ArrowTable | None
    records_blob: bytes | None
    rejected: int = 0
    error_message: str = ""
    attributes_dropped: int = 0
    events_dropped: int = 0
    values_truncated: int = 0
    problem: str = ""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Graph nodes travel as plain tuples: a named tuple pickles as a call of its class per
        # node, which cost the worker 0.9 µs and the main process 0.3 µs a span more.
        return _rebuild_payload, (
            _shared_rows(self.nodes),
            self.table,
            self.records_blob,
            self.rejected,
            self.error_message,
            self.attributes_dropped,
            self.events_dropped,
            self.values_truncated,
            self.problem,
        )

    def batch(self) -> SpanBatch:
        """The accepted spans as a batch."""
        return SpanBatch.of_parts(self.nodes, self.table, self.records_blob)

    def result(self) -> DecodeResult:
        """The request's decode summary (its ``spans`` list is empty: see :meth:`batch`)."""
        return DecodeResult(
            rejected=self.rejected,
            error_message=self.error_message,
            attributes_dropped=self.attributes_dropped,
            events_dropped=self.events_dropped,
            values_truncated=self.values_truncated,
        )


_SHARED_FIELDS: Final = tuple(
    GraphNode._fields.index(name)
    for name in (
        "trace_id", "span_id", "parent_id", "operation", "agent", "run_id", "workflow_name",
        "framework", "service_name", "provider", "model", "tool_name", "task_class",
        "request_model",
    )
)  # fmt: skip
"""The string fields of a graph node that repeat across the spans of a request."""


def _shared_rows(nodes: list[GraphNode]) -> list[list[object]]:
    """The nodes as plain lists, equal strings made one object.

    Pickle then sends each distinct string of the request once, and the main process holds
    one copy of a trace id, run id, agent or model name, or a parent's span id, for all the
    spans of the request that carry it: the graph builder holds 775 instead of 1,123 bytes per
    span of the benchmark's stream. Pickling costs the worker about 0.1 µs a span more and the
    main process about 0.1 µs less.
    """
    shared: dict[object, object] = {}
    same = shared.setdefault
    rows: list[list[object]] = []
    for node in nodes:
        row: list[object] = list(node)
        for i in _SHARED_FIELDS:
            value = row[i]
            if value is not None:
                row[i] = same(value, value)
        rows.append(row)
    return rows


def _rebuild_payload(
    rows: list[list[object]],
    table: ArrowTable | None,
    records_blob: bytes | None,
    *counts_and_problem: object,
) -> DecodedPayload:
    make = GraphNode._make  # pyright: ignore[reportPrivateUsage] - the named tuple's own builder
    nodes = list(map(make, rows))
    return DecodedPayload(nodes, table, records_blob, *counts_and_problem)  # pyright: ignore[reportArgumentType]


def decode_payload(payload: bytes, limits: DecodeLimits, with_records: bool) -> DecodedPayload:
    """Parse and decode one serialized ``ExportTraceServiceRequest`` (runs in a worker).

    Args:
        payload: The request's protobuf bytes.
        limits: Bounds applied while decoding.
        with_records: Also ship the full span records.

    Returns:
        The decoded views and the summary; ``problem`` is set when the request is malformed.
    """
    from agentmesh.collector.store.span_table import span_table

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
        decoded = decode_request(request, limits)
    except DecodeError as exc:
        problem = f"{NOT_PROTOBUF}: {protobuf_problem(str(exc))}"
        return DecodedPayload([], None, None, problem=problem)
    except ReceiverError as exc:
        return DecodedPayload([], None, None, problem=str(exc))
    spans = normalize_spans(decoded.spans)
    return DecodedPayload(
        nodes=[graph_node(span) for span in spans],
        table=span_table(spans) if spans else None,
        records_blob=pickle.dumps(spans, protocol=pickle.HIGHEST_PROTOCOL)
        if with_records and spans
        else None,
        rejected=decoded.rejected,
        error_message=decoded.error_message,
        attributes_dropped=decoded.attributes_dropped,
        events_dropped=decoded.events_dropped,
        values_truncated=decoded.values_truncated,
    )


def _worker_init(announce: SimpleQueue[int]) -> None:
    # The parent handles Ctrl-C and stops the pool; workers only decode.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # the imported modules: never worth scanning again
    announce.put(os.getpid())


def _ready() -> bool:
    return True


class DecodePool:
    """A pool of decode worker processes, used as an async context manager.

    Args:
        workers: Worker processes (at least 1).
        limits: Bounds applied while decoding.
        with_records: Ship the full span records too (for stores that take records rather
            than Arrow columns).
        max_inflight_bytes: Request bytes being decoded at once; more is refused as busy.

    Raises:
        ReceiverError: ``workers`` or ``max_inflight_bytes`` is below 1.
    """

    def __init__(
        self,
        workers: int,
        limits: DecodeLimits,
        *,
        with_records: bool = False,
        max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
    ) -> None:
        if workers < 1:
            raise ReceiverError(f"a decode pool needs at least 1 worker, got {workers}")
        if max_inflight_bytes < 1:
            raise ReceiverError(f"max_inflight_bytes must be at least 1, got {max_inflight_bytes}")
        self._workers = workers
        self._limits = limits
        self._with_records = with_records
        self._max_inflight = max_inflight_bytes
        self._inflight = 0
        self._executor: ProcessPoolExecutor | None = None
        self._restarts = 0
        self._announced: SimpleQueue[int] = multiprocessing.get_context("spawn").SimpleQueue()
        self._readings: dict[int, ProcessUsage | None] = {}
        self._exited_cpu = 0.0
        self._usage_lock = threading.Lock()

    @property
    def workers(self) -> int:
        """How many worker processes decode."""
        return self._workers

    @property
    def restarts(self) -> int:
        """How many times the pool was rebuilt after a worker died."""
        return self._restarts

    @property
    def inflight_bytes(self) -> int:
        """Request bytes being decoded now."""
        return self._inflight

    def usage(self) -> PoolUsage:
        """Memory and CPU time of the worker processes (zero without ``/proc``).

        A worker whose process is gone (or whose pid now names another process) counts as
        exited: its last CPU reading is kept in the total, what it used after that is not.

        Returns:
            The live workers' count and memory, and the CPU time of all workers so far.
        """
        with self._usage_lock:
            self._take_announced()
            workers = resident = 0
            live_cpu = 0.0
            for pid, last in list(self._readings.items()):
                now = process_usage(pid)
                if now is None or (last is not None and now.start_ticks != last.start_ticks):
                    del self._readings[pid]
                    self._exited_cpu += 0.0 if last is None else last.cpu_seconds
                    continue
                self._readings[pid] = now
                workers += 1
                resident += now.resident_bytes
                live_cpu += now.cpu_seconds
            return PoolUsage(workers, resident, self._exited_cpu + live_cpu)

    def _take_announced(self) -> int:
        """Record the pids the workers started since the last call announced; count them."""
        announced = self._announced
        taken = 0
        while not announced.empty():
            self._readings.setdefault(announced.get(), None)
            taken += 1
        return taken

    async def start(self) -> None:
        """Start the workers and wait until each has imported the decoder.

        Raises:
            ReceiverError: It is running already.
        """
        if self._executor is not None:
            raise ReceiverError("the decode pool is already running")
        self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        executor = self._executor
        await asyncio.gather(
            *(loop.run_in_executor(executor, _ready) for _ in range(self._workers))
        )
        # one worker may have run every _ready call: wait for the others to have started too
        started = 0
        deadline = loop.time() + _START_SECONDS
        while started < self._workers and loop.time() < deadline:
            with self._usage_lock:
                started += self._take_announced()
            if started < self._workers:
                await asyncio.sleep(0.01)
        log.info("decode pool started", workers=self._workers, started=started)

    async def stop(self) -> None:
        """Stop the workers (decodes under way finish first)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
            log.info("decode pool stopped", workers=self._workers)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def decode(self, payload: bytes) -> DecodedPayload:
        """Decode one serialized request in a worker.

        Args:
            payload: The request's protobuf bytes.

        Returns:
            The decoded views and summary.

        Raises:
            PoolBusyError: Too many bytes in flight, the pool is not running, or a worker died.
            ReceiverError: The request is malformed.
        """
        executor = self._executor
        if executor is None:
            raise PoolBusyError("the decode pool is not running")
        size = len(payload)
        if self._inflight > 0 and self._inflight + size > self._max_inflight:
            raise PoolBusyError("the AgentMesh collector is busy decoding; retry later")
        self._inflight += size
        try:
            loop = asyncio.get_running_loop()
            decoded = await loop.run_in_executor(
                executor, decode_payload, payload, self._limits, self._with_records
            )
        except BrokenProcessPool as exc:
            self._rebuild(executor)
            raise PoolBusyError("a decode worker died; retry later") from exc
        finally:
            self._inflight -= size
        if decoded.problem:
            raise ReceiverError(decoded.problem)
        return decoded

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self._announced,),
        )

    def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is not broken:
            return  # another request rebuilt it already
        log.error("a decode worker died; restarting the pool", workers=self._workers)
        broken.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()
        self._restarts += 1
