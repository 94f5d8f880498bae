"""The ingest pipeline: a bounded queue of span batches and the worker that processes them.

The receiver offers each batch (:meth:`Pipeline.offer`); a full queue refuses it at once (the
receiver answers ``UNAVAILABLE`` and the exporter retries), so memory stays bounded under any
load. The bound counts batches and spans waiting (queued, or graphed and waiting for the store),
not the cycle the store is writing.

One worker works in cycles. Each cycle takes everything queued (up to ``max_cycle_spans``),
adds it to the run graphs batch by batch, runs the detection rules once on each graph the
cycle changed, and hands the cycle to the store as one write: the spans in one call, each
changed graph once, then the detections. The store write runs while the worker graphs the next
cycles: at most one write is under way, and the cycles graphed meanwhile are merged into the
next write, so a slow store (a DuckDB checkpoint) delays storage, not graphs and detections
(what waits still counts against the queue bound). A failure in one step is logged and the
worker carries on; a failed combined span write is retried batch by batch, so one bad batch
does not cost the others. A store that cannot be reached is waited for instead
(:class:`~agentmesh.collector.store.availability.StoreAvailability`): the write is tried again
until it succeeds while the queue fills behind it and the receivers push back, so an outage
loses nothing while the pipeline runs; detections found meanwhile are still delivered at once
and stored once the store is back. Stopping gives the store ``drain_timeout_seconds``: what
it has not taken by then (the batches queued, graphed, and the one being retried) is lost,
and logged with its count of batches and spans.

Runs met part-way. A run whose first spans were stored before this pipeline met it (by the
collector before a restart, or by another collector sharing the store, when a load balancer's
backends change) would otherwise be graphed from the spans this pipeline receives alone, and
that fragment would replace the stored graph. So each store write first asks the store, in one
call (:meth:`~agentmesh.collector.store.base.SpanStore.traces_with_spans`), about the traces
graphed for the first time in the cycles it writes, before their spans are stored. The stored
spans of those the store knows are read (100 runs a read) and merged into the live graphs by
the next cycle (:meth:`~agentmesh.collector.graph.builder.GraphBuilder.merge_stored`); until
then their partial graphs are neither stored nor published, and the rules run on the whole
graph once merged. The runs then go on live, as if this pipeline had seen them from the start.
Nothing is asked per span, and nothing at all while no new run arrives.

Graph writes are coalesced under load: while more batches wait, the graph of a run still in
progress is written at most once every ``graph_write_seconds``, a run that completes is written
at once, and everything deferred is written by the first cycle that empties the queue (so when
:meth:`Pipeline.drain` returns, every graph is stored). Rewriting a live run's agents and
handoffs at every cycle was the largest cost of the store at line rate; the rules, the
detectors and the live state (``hot_state``) still see every change at every cycle.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from agentmesh.collector.batch import ArrowTable, SpanBatch, batch_of
from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import CycleView, Detector, Rule
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.graph.node import GraphNode, graph_node
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.hot_state.base import HotState, RunState
from agentmesh.collector.late_graphs import DEFAULT_DELAY_SECONDS, LateGraphs
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.resume.links import ResumeLinks
from agentmesh.collector.store.availability import StoreAvailability
from agentmesh.collector.store.base import SpanStore
from agentmesh.core.errors import CollectorError, StoreUnavailableError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait

__all__ = [
    "ColumnarSpanWriter",
    "DetectionListener",
    "GraphBatchWriter",
    "Pipeline",
    "PipelineStats",
]

log = get_logger(__name__)

DetectionListener = Callable[[Detection], Awaitable[None] | None]
"""Called with each new detection (after it is stored), for alerts or recovery."""

_LATENCY_SAMPLES = 65_536
_Waiting = Callable[[], Awaitable[None]]
"""Called once when a store write starts waiting for an unavailable store."""
_RECHECK_SECONDS = 2.0
"""Quiet time after which a pipeline whose store was away checks on it without traffic."""
_MAX_HELD_DETECTIONS = 10_000
"""Detections held for the store while it is unavailable, at most (later ones are logged)."""
_MERGE_CHUNK = 100
"""Runs met part-way whose stored spans are read in one store call."""


@runtime_checkable
class GraphBatchWriter(Protocol):
    """A store that can write many graphs in one call (the DuckDB store can)."""

    async def write_graphs(self, graphs: Sequence[RunGraph]) -> None:
        """Store graphs, each replacing what was stored for its trace.

        Args:
            graphs: The graphs (one per trace).
        """
        ...


@runtime_checkable
class ColumnarSpanWriter(Protocol):
    """A store that appends spans as Arrow columns (the DuckDB store does)."""

    async def write_span_table(self, table: ArrowTable) -> int:
        """Store the rows of a ``span_table``, each span once.

        Args:
            table: Rows with the store's span schema.

        Returns:
            How many spans were newly stored.
        """
        ...


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """Counters of a pipeline since it started.

    Attributes:
        batches_received: Batches accepted into the queue.
        batches_rejected: Batches refused because the queue was full (or the pipeline stopped).
        batches_failed: Batches with a step that failed (logged).
        spans_received: Spans in the accepted batches.
        spans_stored: Spans newly stored (re-delivered spans are not counted).
        detections: New detections.
        queued_batches: Batches waiting now (queued, or graphed and waiting for the store).
        queued_spans: Spans in those batches.
        cycles: Worker cycles run (each writes what it took in one store call).
        store_unavailable: 1 while the store cannot be reached (writes are held and retried),
            else 0.
        store_write_retries: Store writes tried again because the store was unavailable.
        late_graphs_rebuilt: Graphs rebuilt from the store because spans arrived after their
            run left memory.
        late_graphs_dropped: Runs with late spans whose graph was not rebuilt (too many
            waiting, or the rebuild failed; logged).
        runs_merged: Runs met part-way: spans of theirs were stored before this pipeline
            graphed them (a restart, another collector), and were merged into their graphs.
        batches_dropped: Accepted batches given up when the pipeline stopped: not stored
            within the drain timeout (logged).
        spans_dropped: The spans in those batches.
    """

    batches_received: int = 0
    batches_rejected: int = 0
    batches_failed: int = 0
    spans_received: int = 0
    spans_stored: int = 0
    detections: int = 0
    queued_batches: int = 0
    queued_spans: int = 0
    cycles: int = 0
    store_unavailable: int = 0
    store_write_retries: int = 0
    late_graphs_rebuilt: int = 0
    late_graphs_dropped: int = 0
    runs_merged: int = 0
    batches_dropped: int = 0
    spans_dropped: int = 0


@dataclass(slots=True)
class _Batch:
    spans: SpanBatch
    offered_ns: int
    traces: set[str] = field(default_factory=lambda: set[str]())
    failed: bool = False


@dataclass(slots=True)
class _Cycle:
    batches: list[_Batch]
    graphs: list[RunGraph]  # changed this cycle (the live state is told of each)
    detections: list[Detection]
    stored: list[RunGraph] = field(default_factory=lambda: list[RunGraph]())  # to the store
    late: set[str] = field(default_factory=lambda: set[str]())  # traces with late spans
    new: set[str] = field(default_factory=lambda: set[str]())  # traces graphed for the first time
    merges: int = 0  # merges of stored spans applied (each counted in ``_unfinished``)

    def merged(self, later: _Cycle) -> _Cycle:
        """This cycle and a later one, written as one (a trace's later graph wins)."""
        return _Cycle(
            self.batches + later.batches,
            _latest(self.graphs, later.graphs),
            self.detections + later.detections,
            _latest(self.stored, later.stored),
            self.late | later.late,
            self.new | later.new,
            self.merges + later.merges,
        )


@dataclass(slots=True)
class _Merge:
    """Stored spans of runs met part-way, for the worker to merge into their live graphs."""

    traces: list[str]
    nodes: list[GraphNode]


def _latest(earlier: list[RunGraph], later: list[RunGraph]) -> list[RunGraph]:
    if not earlier:
        return later
    graphs = {graph.trace_id: graph for graph in earlier}
    graphs.update((graph.trace_id, graph) for graph in later)
    return list(graphs.values())


def _markers_first(nodes: Sequence[GraphNode]) -> Sequence[GraphNode]:
    """The cycle's spans with the start markers first, each group in arrival order.

    A step's marker tells the detectors which agent the calls made in it belong to; OTLP
    groups a request's spans by instrumentation scope, so a request can carry a step's calls
    before its marker (apps exporting through their own exporter, or an OpenTelemetry
    Collector). Most cycles have no marker after another span: the list is then kept as it is.
    """
    seen_other = False
    for node in nodes:
        if node.started is None:
            seen_other = True
        elif seen_other:
            markers = [n for n in nodes if n.started is not None]
            return markers + [n for n in nodes if n.started is None]
    return nodes


class Pipeline:
    """Processes span batches in the background, in arrival order.

    Use it as an async context manager: entering starts the worker; leaving stops accepting,
    processes what is queued (for at most ``drain_timeout_seconds``) and stops the worker.

    Args:
        store: Where spans, graphs and detections go.
        builder: Keeps the live run graphs; a new one by default.
        rules: Detection rules run on each changed graph.
        detectors: Streaming detectors fed each cycle (after the rules) and ticked every
            ``tick_seconds``.
        max_batches: Queue bound in batches; :meth:`offer` refuses batches beyond it.
        max_spans: Queue bound in spans; a batch that would take the waiting spans past it is
            refused (a single batch larger than the bound is still taken when nothing waits).
        max_cycle_spans: Most spans one worker cycle takes (and writes in one store call).
        drain_timeout_seconds: How long leaving waits for queued batches.
        on_detection: Called with each new detection.
        hot_state: Shared live state (Redis) updated with each changed run and told of each
            new detection; wrap it in ``FailOpenHotState`` so a dead Redis never stops the
            worker.
        tick_seconds: How often the detectors are ticked (findings that are the absence of a
            span, such as a step overdue, are reported within this delay).
        graph_write_seconds: While batches wait, how long the stored graph of a run in progress
            may lag behind its live graph (0: every changed graph is written every cycle).
        late_graph_delay_seconds: How long a run that received spans after leaving memory
            waits for more of them before its graph is rebuilt from the store (see
            :class:`~agentmesh.collector.late_graphs.LateGraphs`).

    Raises:
        CollectorError: A bound is below 1, or ``graph_write_seconds`` is negative.
    """

    def __init__(
        self,
        store: SpanStore,
        *,
        builder: GraphBuilder | None = None,
        rules: Sequence[Rule] = (),
        detectors: Sequence[Detector] = (),
        max_batches: int = 1024,
        max_spans: int = 100_000,
        max_cycle_spans: int = 10_000,
        drain_timeout_seconds: float = 30.0,
        on_detection: DetectionListener | None = None,
        hot_state: HotState | None = None,
        tick_seconds: float = 0.05,
        graph_write_seconds: float = 1.0,
        late_graph_delay_seconds: float = DEFAULT_DELAY_SECONDS,
    ) -> None:
        if graph_write_seconds < 0:
            raise CollectorError(
                f"graph_write_seconds must be 0 or more, got {graph_write_seconds}"
            )
        for label, bound in (
            ("max_batches", max_batches),
            ("max_spans", max_spans),
            ("max_cycle_spans", max_cycle_spans),
        ):
            if bound < 1:
                raise CollectorError(f"{label} must be at least 1, got {bound}")
        self._store = store
        # Runtime-checked protocols are slow to test: decide once, not every cycle.
        self._columnar = store if isinstance(store, ColumnarSpanWriter) else None
        self._graph_writer = store if isinstance(store, GraphBatchWriter) else None
        # A store of another make may lack it: such a pipeline graphs new runs as before.
        self._knows_traces = callable(getattr(store, "traces_with_spans", None))
        self._builder = builder if builder is not None else GraphBuilder()
        self._rules = tuple(rules)
        self._detectors = tuple(detectors)
        self._tick_seconds = tick_seconds
        self._ticker: asyncio.Task[None] | None = None
        self._max_batches = max_batches
        self._max_spans = max_spans
        self._max_cycle_spans = max_cycle_spans
        self._queue: deque[_Batch] = deque()
        self._waiting_batches = 0  # queued + graphed, waiting for the store
        self._waiting_spans = 0
        self._unfinished = 0  # accepted (or merges queued), not yet written
        self._unstored_batches = 0  # accepted, their spans neither stored nor failed yet
        self._unstored_spans = 0
        self._batches_dropped = 0
        self._spans_dropped = 0
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._drain_timeout = drain_timeout_seconds
        self._on_detection = on_detection
        self._hot = hot_state
        self._worker: asyncio.Task[None] | None = None
        self._accepting = False
        self._batches_received = 0
        self._batches_rejected = 0
        self._batches_failed = 0
        self._spans_received = 0
        self._spans_stored = 0
        self._detections = 0
        self._cycles = 0
        self._latencies_ns: deque[int] = deque(maxlen=_LATENCY_SAMPLES)
        self._graph_write_ns = int(graph_write_seconds * 1e9)
        # Live graphs not yet stored, oldest deferral first: trace -> (latest graph, since ns).
        self._deferred: dict[str, tuple[RunGraph, int]] = {}
        self._links = ResumeLinks(store)
        self._availability = StoreAvailability()
        self._held_detections: deque[Detection] = deque()  # found while the store was away
        self._write_lock = asyncio.Lock()  # a cycle's writes and late graphs' take turns
        self._merges: deque[_Merge] = deque()  # stored spans to merge, for the worker
        self._merging: set[str] = set()  # runs met part-way: graphs held back until merged
        self._runs_merged = 0
        self._late = LateGraphs(
            lambda trace_ids: store.spans_of(trace_ids),
            self._write_late,
            delay_seconds=late_graph_delay_seconds,
        )

    @property
    def detectors(self) -> tuple[Detector, ...]:
        """The streaming detectors, in the order they are fed."""
        return self._detectors

    @property
    def builder(self) -> GraphBuilder:
        """The graph builder holding the live runs."""
        return self._builder

    @property
    def stats(self) -> PipelineStats:
        """A snapshot of the counters."""
        return PipelineStats(
            batches_received=self._batches_received,
            batches_rejected=self._batches_rejected,
            batches_failed=self._batches_failed,
            spans_received=self._spans_received,
            spans_stored=self._spans_stored,
            detections=self._detections,
            queued_batches=self._waiting_batches,
            queued_spans=self._waiting_spans,
            cycles=self._cycles,
            store_unavailable=0 if self._availability.available else 1,
            store_write_retries=self._availability.retries,
            late_graphs_rebuilt=self._late.rebuilt,
            late_graphs_dropped=self._late.dropped + self._late.failed,
            runs_merged=self._runs_merged,
            batches_dropped=self._batches_dropped,
            spans_dropped=self._spans_dropped,
        )

    @property
    def store_available(self) -> bool:
        """Whether the store answered the last write (``False`` while writes are retried)."""
        return self._availability.available

    @property
    def accepting(self) -> bool:
        """Whether the pipeline runs and takes batches (not before start, nor once stopping)."""
        return self._accepting

    @property
    def full(self) -> bool:
        """Whether the queue is at its bound now (new batches would be refused)."""
        return self._waiting_batches >= self._max_batches or self._waiting_spans >= self._max_spans

    def ingest_to_graph_ms(self, quantile: float = 0.99) -> float | None:
        """Latency from a batch's acceptance to its graph changes being applied (rules run).

        Computed over the most recent 65,536 batches.

        Args:
            quantile: Between 0 and 1 (``0.99`` for the p99).

        Returns:
            The latency in milliseconds, or ``None`` before the first batch was graphed.

        Raises:
            CollectorError: ``quantile`` is out of range.
        """
        return self.ingest_to_graph_quantiles_ms(quantile)[0]

    def ingest_to_graph_quantiles_ms(self, *quantiles: float) -> list[float | None]:
        """Several quantiles of :meth:`ingest_to_graph_ms` for the price of one sort.

        Args:
            *quantiles: Each between 0 and 1.

        Returns:
            The latencies in milliseconds, in the order asked (``None`` before the first
            batch was graphed).

        Raises:
            CollectorError: A quantile is out of range.
        """
        for quantile in quantiles:
            if not 0.0 <= quantile <= 1.0:
                raise CollectorError(f"quantile must be between 0 and 1, got {quantile}")
        if not self._latencies_ns:
            return [None for _ in quantiles]
        ordered = sorted(self._latencies_ns)
        last = len(ordered) - 1
        return [ordered[min(last, round(q * last))] / 1e6 for q in quantiles]

    def has_room(self) -> bool:
        """Whether :meth:`offer` would take a batch now (of any size up to the span bound).

        Receivers ask before decoding a request, so a full queue costs no decoding; a
        ``False`` answer counts as a rejected batch (the receiver refuses the request).

        Returns:
            ``False`` when the queue is full or the pipeline is not running.
        """
        room = self._accepting and not self.full
        if not room:
            self._batches_rejected += 1
        return room

    def offer(self, batch: list[SpanRecord] | SpanBatch) -> bool:
        """Queue a batch for processing without waiting.

        Args:
            batch: The spans of one request: decoded records, or a batch from a decode pool.

        Returns:
            ``True`` when queued; ``False`` when the queue is full or the pipeline is not
            running (the caller should ask the sender to retry later).
        """
        if not self._accepting:
            self._batches_rejected += 1
            return False
        size = len(batch)
        if self._waiting_batches >= self._max_batches or (
            self._waiting_spans > 0 and self._waiting_spans + size > self._max_spans
        ):
            self._batches_rejected += 1
            return False
        self._queue.append(_Batch(batch_of(batch), time.perf_counter_ns()))
        self._waiting_batches += 1
        self._waiting_spans += size
        self._unfinished += 1
        self._unstored_batches += 1
        self._unstored_spans += size
        self._idle.clear()
        self._arrived.set()
        self._batches_received += 1
        self._spans_received += size
        return True

    def __call__(self, batch: list[SpanRecord] | SpanBatch, /) -> bool:
        """Same as :meth:`offer`: a pipeline is a span sink for the receivers.

        Args:
            batch: The spans of one request.

        Returns:
            Whether the batch was queued.
        """
        return self.offer(batch)

    async def drain(self) -> None:
        """Wait until every batch offered so far has been processed.

        Raises:
            CollectorError: The worker is not running.
        """
        worker = self._worker
        if worker is None or worker.done():
            if self._unfinished == 0:
                return
            raise CollectorError("the pipeline worker is not running")
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            done, _ = await asyncio.wait({idle, worker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        if idle not in done:
            raise CollectorError("the pipeline worker stopped before the queue was processed")

    async def start(self) -> None:
        """Start the worker.

        Raises:
            CollectorError: It is running already.
        """
        if self._worker is not None:
            raise CollectorError("the pipeline is already running")
        self._worker = asyncio.create_task(self._work(), name="agentmesh-pipeline")
        await self._late.start()
        if not self._knows_traces:
            log.warning(
                "the store cannot say which runs it holds (no traces_with_spans): a run whose "
                "first spans were stored before a restart or by another collector will be "
                "stored with the part this collector receives",
                store=type(self._store).__name__,
            )
        if self._detectors:
            self._ticker = asyncio.create_task(self._tick(), name="agentmesh-detector-ticks")
        self._accepting = True

    async def stop(self) -> None:
        """Stop accepting, process what is queued (within the drain timeout), stop the worker.

        What the store has not taken when the drain timeout runs out (the batches queued,
        graphed, and the one being written or retried while the store is unreachable) is
        given up: counted in :attr:`stats` (``batches_dropped``, ``spans_dropped``) and
        logged, with the reason and how to avoid it.
        """
        self._accepting = False
        worker = self._worker
        if worker is None:
            return
        failure: str | None = None
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self.drain()
        except TimeoutError:
            failure = "pipeline drain timed out"
        except CollectorError as exc:
            log.error("pipeline drain failed", reason=str(exc))
            failure = "pipeline drain failed"
        if failure is not None:
            # The worker (and the write it awaits, retrying an unreachable store) stops here,
            # so what is counted as lost is exactly what was not stored.
            await cancel_and_wait(worker)
            self._give_up(failure)
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._late.stop()  # the graphs of runs with late spans, rebuilt now
        except TimeoutError:
            log.error("late graphs not rebuilt in time", runs=self._late.pending)
        ticker, self._ticker = self._ticker, None
        await cancel_and_wait(worker, ticker)
        self._worker = None

    def _give_up(self, failure: str) -> None:
        """Count and log what the pipeline accepted and could not store before it stopped."""
        batches, spans = self._unstored_batches, self._unstored_spans
        self._unstored_batches = self._unstored_spans = 0
        self._batches_dropped += batches
        self._spans_dropped += spans
        down = self._availability.unavailable_seconds
        advice = (
            "give the store more time at shutdown: a longer drain timeout "
            f"(AGENTMESH_COLLECTOR_DRAIN_TIMEOUT_SECONDS, {self._drain_timeout:g} s now), and "
            "a shutdown grace period above it (Kubernetes: terminationGracePeriodSeconds)"
        )
        if spans == 0:
            event = f"{failure}: every accepted span was stored"
        elif down is not None:
            event = f"{failure}: accepted spans were lost, the store was unreachable at shutdown"
        else:
            event = f"{failure}: accepted spans were lost, the store did not take them in time"
        log.error(
            event,
            dropped_batches=batches,
            dropped_spans=spans,
            detections_not_stored=len(self._held_detections),
            store_unreachable_seconds=None if down is None else round(down, 1),
            drain_timeout_seconds=self._drain_timeout,
            advice=advice,
        )

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

    # --- the worker -------------------------------------------------------------------------

    async def _work(self) -> None:
        writing: asyncio.Task[None] | None = None
        pending: _Cycle | None = None  # graphed, waiting for the write under way
        try:
            while True:
                if pending is not None and (writing is None or writing.done()):
                    writing = asyncio.create_task(self._write_cycle(pending))
                    pending = None
                if not self._queue and not self._merges:
                    self._arrived.clear()
                    if pending is None or writing is None:
                        if self._availability.available and not self._held_detections:
                            await self._arrived.wait()
                        elif not await self._arrives_within(_RECHECK_SECONDS) and (
                            writing is None or writing.done()
                        ):  # no traffic: check on the store (and store what it holds) anyway
                            writing = asyncio.create_task(self._recheck_store())
                    else:  # new batches, or the write done (then write what is pending)
                        arrived = asyncio.ensure_future(self._arrived.wait())
                        try:
                            await asyncio.wait(
                                {arrived, writing}, return_when=asyncio.FIRST_COMPLETED
                            )
                        finally:
                            arrived.cancel()
                    continue
                taken = self._take()
                merges = list(self._merges)
                self._merges.clear()
                try:
                    cycle = await self._graph_cycle(taken, merges)
                except Exception:  # a bug in graphing: still store the spans
                    log.exception("graph cycle failed", batches=len(taken))
                    for batch in taken:
                        batch.failed = True
                    late = self._builder.take_late_traces()
                    for merge in merges:  # rebuilt from the store instead
                        self._merging.difference_update(merge.traces)
                        late.update(merge.traces)
                    cycle = _Cycle(
                        taken,
                        [],
                        [],
                        self._to_store(
                            [], time.perf_counter_ns(), self._builder.take_left_traces()
                        ),
                        late,
                        merges=len(merges),
                    )
                # A slow write (a DuckDB checkpoint, a busy Postgres) does not hold up graphing:
                # cycles graphed meanwhile are merged and written together when it is done.
                pending = cycle if pending is None else pending.merged(cycle)
        finally:
            await cancel_and_wait(writing)

    def _take(self) -> list[_Batch]:
        taken: list[_Batch] = []
        spans = 0
        while self._queue and (
            not taken or spans + len(self._queue[0].spans) <= self._max_cycle_spans
        ):
            batch = self._queue.popleft()
            taken.append(batch)
            spans += len(batch.spans)
        return taken

    async def _graph_cycle(self, batches: list[_Batch], merges: Sequence[_Merge] = ()) -> _Cycle:
        """Add the cycle's batches to the graphs, then run the rules once per changed graph.

        The stored spans of runs met part-way (``merges``) are merged in first; a run among
        them that left memory meanwhile is rebuilt from the store instead (as late).

        Rules see each changed graph once per cycle, after all of the cycle's spans are in
        (a cycle is what arrived while the previous one was processed, so under light load it
        is a single batch). Fewer snapshots is most of the saving under load, and a graph with
        more of its spans shows fewer transient states (spans of one run arriving out of order
        across batches). The loop is yielded between batches, so the receivers keep answering
        while a large cycle is graphed.
        """
        builder = self._builder
        builder.expire()  # finished and idle traces leave memory
        changed: set[str] = set()
        gone: set[str] = set()  # met part-way, left before their stored spans were merged
        for merge in merges:
            changed |= builder.merge_stored(merge.nodes)
            self._merging.difference_update(merge.traces)
            gone.update(trace_id for trace_id in merge.traces if trace_id not in builder)
        for batch in batches:
            try:
                batch.traces = self._builder.add_nodes(batch.spans.nodes)
            except Exception:
                batch.failed = True
                log.exception("graph not updated", spans=len(batch.spans))
                continue
            changed |= batch.traces
            await asyncio.sleep(0)
        graphs: list[RunGraph] = []
        detections: list[Detection] = []
        failed_rules: set[str] = set()
        new: set[str] = set()
        for trace_id in sorted(changed):
            graph = builder.get(trace_id)
            if graph is None:
                continue
            if graph.generation == 0:  # met for the first time: does the store know it?
                new.add(trace_id)
            graphs.append(graph)
            for rule in self._rules:
                try:
                    detections.extend(rule.evaluate(graph))
                except Exception:
                    failed_rules.add(trace_id)
                    log.exception("rule failed", rule=rule.name, trace_id=trace_id)
        if self._detectors:
            detections.extend(self._observe(batches, graphs))
        now = time.perf_counter_ns()
        for batch in batches:
            if not batch.traces.isdisjoint(failed_rules):
                batch.failed = True
            if batch.traces:
                self._latencies_ns.append(now - batch.offered_ns)
        stored = self._to_store(graphs, now, builder.take_left_traces())
        late = builder.take_late_traces()
        # a trace evicted in this very cycle left with spans its stored graph lacks
        late.update(trace_id for trace_id in changed if trace_id not in builder)
        late |= gone
        return _Cycle(batches, graphs, detections, stored, late, new, len(merges))

    def _to_store(
        self, graphs: list[RunGraph], now_ns: int, left: Sequence[str] = ()
    ) -> list[RunGraph]:
        """The graphs this cycle writes; live ones are deferred while more batches wait.

        A deferred graph of a trace that ``left`` memory is written now: its later spans are
        late, and the graph rebuilt from them must not be overwritten by this one afterwards.
        """
        deferred = self._deferred
        stored: list[RunGraph] = []
        if left and deferred:
            stored = [held[0] for trace_id in left if (held := deferred.pop(trace_id, None))]
        if not self._queue or self._graph_write_ns == 0:
            if not deferred:
                return _latest(stored, graphs)
            held = [graph for graph, _ in deferred.values()]
            deferred.clear()
            return _latest(stored + held, graphs)
        for graph in graphs:
            trace_id = graph.trace_id
            if graph.complete:
                deferred.pop(trace_id, None)
                stored.append(graph)
            elif (held := deferred.get(trace_id)) is not None:
                deferred[trace_id] = (graph, held[1])  # keeps its place: the first deferral
            else:
                deferred[trace_id] = (graph, now_ns)
        due = now_ns - self._graph_write_ns
        while deferred:
            trace_id, (graph, since) = next(iter(deferred.items()))
            if since > due:
                break
            del deferred[trace_id]
            stored.append(graph)
        return stored

    def _observe(self, batches: list[_Batch], graphs: list[RunGraph]) -> list[Detection]:
        live = [batch for batch in batches if not batch.failed]
        # One batch (light load, the common case): its node list as it is (detectors only read).
        nodes = (
            live[0].spans.nodes
            if len(live) == 1
            else [node for batch in live for node in batch.spans.nodes]
        )
        view = CycleView(_markers_first(nodes), {g.trace_id: g for g in graphs}, time.time_ns())
        found: list[Detection] = []
        for detector in self._detectors:
            try:
                found.extend(detector.observe(view))
            except Exception:
                log.exception("detector failed", detector=detector.name, spans=len(nodes))
        return found

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_seconds)
            now = time.time_ns()
            for detector in self._detectors:
                try:
                    found = detector.tick(now)
                except Exception:
                    log.exception("detector tick failed", detector=detector.name)
                    continue
                for detection in found:
                    await self._detected(detection)

    async def _arrives_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a batch; whether one arrived."""
        try:
            async with asyncio.timeout(seconds):
                await self._arrived.wait()
        except TimeoutError:
            return False
        return True

    async def _recheck_store(self) -> None:
        """With no traffic, store the held detections, or ask the store whether it is back.

        Readiness must not wait for traffic that a not-ready collector does not get.
        """
        try:
            if self._held_detections:
                await self._store_held_detections(_nothing)
            elif not self._availability.available:
                await self._availability.until_stored(partial(self._store.runs, 1))
        except Exception:
            log.exception("store check failed")

    async def _write_cycle(self, cycle: _Cycle) -> None:
        async with self._write_lock:
            await self._write_cycle_now(cycle)
        if cycle.late:  # their late spans are stored: rebuild their graphs from the store
            self._late.note(cycle.late)

    async def _write_late(self, graphs: list[RunGraph]) -> None:
        """Store graphs rebuilt for late spans, tell the live state, store what the rules find.

        Never waits for an unavailable store (the cycles' writes must announce their detections
        meanwhile): it raises ``StoreUnavailableError`` and the runs are tried again later.
        """
        if not self._availability.available:
            raise StoreUnavailableError("the store is unavailable: rebuilt graphs wait for it")
        detections: list[Detection] = []
        for graph in graphs:
            for rule in self._rules:
                try:
                    detections.extend(rule.evaluate(graph))
                except Exception:
                    log.exception("rule failed", rule=rule.name, trace_id=graph.trace_id)
        async with self._write_lock:
            failed = await self._write_graphs(graphs, graphs, _give_up)  # live state too
            if failed and not self._availability.available:
                raise StoreUnavailableError("the store became unavailable: rebuilt graphs wait")
            for detection in detections:
                await self._detected(detection)
        if failed:
            raise CollectorError(f"{len(failed)} rebuilt graph(s) not stored")

    async def _write_cycle_now(self, cycle: _Cycle) -> None:
        # The cycle being written no longer counts against the queue bound.
        self._waiting_batches -= len(cycle.batches)
        self._waiting_spans -= sum(len(b.spans) for b in cycle.batches)
        announced = False

        async def announce_now() -> None:
            # The store is away: the cycle's detections go out now (for recovery and alerts)
            # and are stored once it is back.
            nonlocal announced
            if not announced:
                announced = True
                for detection in cycle.detections:
                    self._hold(detection)
                    await self._announce(detection)

        try:
            await self._store_held_detections(announce_now)
            if cycle.new and self._knows_traces:  # before their spans are stored: not ours
                await self._meet_stored(cycle.new, announce_now)
            await self._write_spans(cycle.batches, announce_now)
            stored, changed = cycle.stored, cycle.graphs
            merging = self._merging
            if merging:  # runs met part-way: their graphs wait for their stored spans
                stored = [graph for graph in stored if graph.trace_id not in merging]
                changed = [graph for graph in changed if graph.trace_id not in merging]
            failed_traces = await self._write_graphs(stored, changed, announce_now)
            if announced:
                await self._store_held_detections(announce_now)
            else:
                for detection in cycle.detections:
                    if not await self._detected(detection):
                        failed_traces.add(detection.trace_id)
            for batch in cycle.batches:
                if batch.failed or not batch.traces.isdisjoint(failed_traces):
                    self._batches_failed += 1
        except Exception:
            self._batches_failed += len(cycle.batches)
            log.exception("span batches failed", batches=len(cycle.batches))
        finally:
            self._cycles += 1
            self._unfinished -= len(cycle.batches) + cycle.merges
            if self._unfinished == 0:
                self._idle.set()

    async def _meet_stored(self, new: set[str], waiting: _Waiting) -> None:
        """Find the runs graphed for the first time that the store holds spans of; merge those.

        Called before the cycle's spans are stored, so what the store holds of these runs
        came from elsewhere: the collector before a restart, or another collector sharing
        the store. Their stored spans are read (``_MERGE_CHUNK`` runs a read) and handed to
        the worker, which merges them into the live graphs in its next cycle; until then
        the partial graphs of those runs are neither stored nor published. A store that
        cannot be reached is waited for, like the writes; a failed read is logged and leaves
        the runs as they are.
        """
        until_stored = partial(self._availability.until_stored, waiting=waiting)
        try:
            found = await until_stored(partial(self._store.traces_with_spans, list(new)))
        except Exception:
            log.exception("could not ask the store which new runs it holds", runs=len(new))
            return
        if not found:
            return
        ordered = sorted(found)
        log.info(
            "runs met part-way: merging the spans the store holds into their graphs",
            runs=len(ordered),
            trace_ids=ordered[:10],
        )
        for start in range(0, len(ordered), _MERGE_CHUNK):
            chunk = ordered[start : start + _MERGE_CHUNK]
            try:
                spans = await until_stored(partial(self._store.spans_of, chunk))
            except Exception:
                log.exception(
                    "stored spans not read: these runs' graphs lack them", runs=len(chunk)
                )
                continue
            nodes = [graph_node(span) for trace in spans.values() for span in trace]
            self._merging.update(chunk)
            self._merges.append(_Merge(chunk, nodes))
            self._runs_merged += len(spans)
            self._unfinished += 1  # written by a later cycle: drain() waits for it
            self._idle.clear()
            self._arrived.set()
            await asyncio.sleep(0)  # many runs take a while: receivers keep answering

    async def _write_spans(self, batches: list[_Batch], waiting: _Waiting) -> None:
        store = self._store
        columnar = self._columnar
        until_stored = partial(self._availability.until_stored, waiting=waiting)
        if len(batches) > 1:
            try:
                if columnar is not None:
                    table = await asyncio.to_thread(_concat, [b.spans for b in batches])
                    self._spans_stored += await until_stored(
                        partial(columnar.write_span_table, table)
                    )
                else:
                    records = [span for batch in batches for span in batch.spans.records()]
                    self._spans_stored += await until_stored(partial(store.write_spans, records))
                self._settled(batches)
                return
            except Exception:
                log.warning("combined span write failed; writing batch by batch", exc_info=True)
        for batch in batches:
            try:
                if columnar is not None:
                    table = batch.spans.table
                    self._spans_stored += await until_stored(
                        partial(columnar.write_span_table, table)
                    )
                else:
                    records = batch.spans.records()
                    self._spans_stored += await until_stored(partial(store.write_spans, records))
            except Exception:
                batch.failed = True
                log.exception("spans not stored", spans=len(batch.spans))
            self._settled((batch,))

    def _settled(self, batches: Sequence[_Batch]) -> None:
        """Note batches whose spans were stored (or failed, logged): not lost if stopped now."""
        self._unstored_batches -= len(batches)
        self._unstored_spans -= sum(len(batch.spans) for batch in batches)

    async def _write_graphs(
        self, stored: list[RunGraph], changed: list[RunGraph], waiting: _Waiting
    ) -> set[str]:
        """Store the cycle's graphs and tell the live state of the changed ones.

        Returns the traces whose graph failed to store.
        """
        failed: set[str] = set()
        stored = await self._links.link(stored)
        until_stored = partial(self._availability.until_stored, waiting=waiting)
        writer = self._graph_writer
        if writer is not None and stored:
            try:
                await until_stored(partial(writer.write_graphs, stored))
            except Exception:
                failed.update(g.trace_id for g in stored)
                log.exception("graphs not stored", graphs=len(stored))
        else:
            for graph in stored:
                try:
                    await until_stored(partial(self._store.write_graph, graph))
                except Exception:
                    failed.add(graph.trace_id)
                    log.exception("graph not stored", trace_id=graph.trace_id)
        if self._hot is not None:
            for graph in changed:
                try:
                    await self._hot.update_run(RunState.from_graph(graph))
                except Exception:
                    log.exception("live run state not updated", trace_id=graph.trace_id)
        return failed

    async def _store_held_detections(self, waiting: _Waiting) -> None:
        """Store the detections found while the store was unavailable (waiting for it)."""
        held = self._held_detections
        while held:
            detection = held[0]
            try:
                await self._availability.until_stored(
                    partial(self._store.write_detection, detection), waiting=waiting
                )
            except Exception:
                log.exception("detection not stored", detection_id=detection.id)
            held.popleft()

    async def _detected(self, detection: Detection) -> bool:
        """Store a detection, then announce it; ``False`` when it could not be stored."""
        try:
            if not await self._store.write_detection(detection):
                return True  # stored before (re-delivered after a restart, say)
            stored = True
        except StoreUnavailableError as exc:  # announced now, stored when the store is back
            self._availability.unavailable(exc)
            stored = self._hold(detection)
        except Exception:
            stored = False
            log.exception("detection not stored", detection_id=detection.id)
        await self._announce(detection)
        return stored

    def _hold(self, detection: Detection) -> bool:
        """Keep a detection for the store while it is unavailable (bounded)."""
        if len(self._held_detections) >= _MAX_HELD_DETECTIONS:
            log.error("detection not stored: too many held", detection_id=detection.id)
            return False
        self._held_detections.append(detection)
        self._arrived.set()  # wakes an idle worker: it checks on the store and stores these
        return True

    async def _announce(self, detection: Detection) -> None:
        """Count and log a detection, publish it and tell the listener."""
        self._detections += 1
        log.warning(
            "detection",
            type=detection.type,
            severity=detection.severity,
            run_id=detection.run_id,
            trace_id=detection.trace_id,
            agent=detection.agent,
            detection_id=detection.id,
            explanation=detection.explanation,
        )
        if self._hot is not None:
            try:
                await self._hot.publish_detection(detection)
            except Exception:
                log.exception("detection not published", detection_id=detection.id)
        if self._on_detection is not None:
            try:
                outcome = self._on_detection(detection)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("detection listener failed", detection_id=detection.id)


def _concat(batches: list[SpanBatch]) -> ArrowTable:
    """One Arrow table of several batches' rows (built where missing)."""
    import pyarrow

    pa: Any = pyarrow
    return pa.concat_tables([batch.table for batch in batches])


async def _give_up() -> None:
    """A write that must not wait for the store: stop at its first unavailable answer."""
    raise StoreUnavailableError("the store is unavailable")


async def _nothing() -> None:
    """A ``waiting`` hook that does nothing."""
