"""The ingest pipeline: a bounded queue of span batches and the worker that processes them.

The receiver offers each batch (:meth:`Pipeline.offer`); a full queue refuses it at once (the
receiver answers ``UNAVAILABLE`` and the exporter retries), so memory stays bounded under any
load. One worker task takes batches in order and, for each: stores the spans, updates the
run graphs, stores the graphs that changed, runs the detection rules on them, and stores and
logs what they find. A failure in one step is logged and the worker carries on.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import Rule
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.hot_state.base import HotState, RunState
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.store.base import SpanStore
from agentmesh.core.errors import CollectorError
from agentmesh.core.log import get_logger

__all__ = ["DetectionListener", "Pipeline", "PipelineStats"]

log = get_logger(__name__)

DetectionListener = Callable[[Detection], Awaitable[None] | None]
"""Called with each new detection (after it is stored), for alerts or recovery."""


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
        queued_batches: Batches waiting now.
    """

    batches_received: int = 0
    batches_rejected: int = 0
    batches_failed: int = 0
    spans_received: int = 0
    spans_stored: int = 0
    detections: int = 0
    queued_batches: int = 0


class Pipeline:
    """Processes span batches in the background, in arrival order.

    Use it as an async context manager: entering starts the worker; leaving stops accepting,
    processes what is queued (for at most ``drain_timeout_seconds``) and stops the worker.

    Args:
        store: Where spans, graphs and detections go.
        builder: Keeps the live run graphs; a new one by default.
        rules: Detection rules run on each changed graph.
        max_batches: Queue bound; :meth:`offer` refuses batches beyond it.
        drain_timeout_seconds: How long leaving waits for queued batches.
        on_detection: Called with each new detection.
        hot_state: Shared live state (Redis) updated with each changed run and told of each
            new detection; wrap it in ``FailOpenHotState`` so a dead Redis never stops the
            worker.

    Raises:
        CollectorError: ``max_batches`` is below 1.
    """

    def __init__(
        self,
        store: SpanStore,
        *,
        builder: GraphBuilder | None = None,
        rules: Sequence[Rule] = (),
        max_batches: int = 1024,
        drain_timeout_seconds: float = 30.0,
        on_detection: DetectionListener | None = None,
        hot_state: HotState | None = None,
    ) -> None:
        if max_batches < 1:
            raise CollectorError(f"max_batches must be at least 1, got {max_batches}")
        self._store = store
        self._builder = builder if builder is not None else GraphBuilder()
        self._rules = tuple(rules)
        self._queue: asyncio.Queue[list[SpanRecord]] = asyncio.Queue(maxsize=max_batches)
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
            queued_batches=self._queue.qsize(),
        )

    def offer(self, batch: list[SpanRecord]) -> bool:
        """Queue a batch for processing without waiting.

        Args:
            batch: The spans of one request.

        Returns:
            ``True`` when queued; ``False`` when the queue is full or the pipeline is not
            running (the caller should ask the sender to retry later).
        """
        if not self._accepting:
            self._batches_rejected += 1
            return False
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            self._batches_rejected += 1
            return False
        self._batches_received += 1
        self._spans_received += len(batch)
        return True

    async def drain(self) -> None:
        """Wait until every batch offered so far has been processed.

        Raises:
            CollectorError: The worker is not running.
        """
        worker = self._worker
        if worker is None or worker.done():
            if self._queue.empty():
                return
            raise CollectorError("the pipeline worker is not running")
        joined = asyncio.ensure_future(self._queue.join())
        try:
            done, _ = await asyncio.wait({joined, worker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            joined.cancel()
        if joined not in done:
            raise CollectorError("the pipeline worker stopped before the queue was processed")

    async def start(self) -> None:
        """Start the worker.

        Raises:
            CollectorError: It is running already.
        """
        if self._worker is not None:
            raise CollectorError("the pipeline is already running")
        self._worker = asyncio.create_task(self._work(), name="agentmesh-pipeline")
        self._accepting = True

    async def stop(self) -> None:
        """Stop accepting, process what is queued (within the drain timeout), stop the worker."""
        self._accepting = False
        worker = self._worker
        if worker is None:
            return
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self.drain()
        except TimeoutError:
            log.error("pipeline drain timed out", dropped_batches=self._queue.qsize())
        except CollectorError as exc:
            log.error("pipeline drain failed", reason=str(exc))
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        self._worker = None

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

    async def _work(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                if not await self._process(batch):
                    self._batches_failed += 1
            except Exception:
                self._batches_failed += 1
                log.exception("span batch failed", spans=len(batch))
            finally:
                self._queue.task_done()

    async def _process(self, batch: list[SpanRecord]) -> bool:
        ok = True
        try:
            self._spans_stored += await self._store.write_spans(batch)
        except Exception:
            ok = False
            log.exception("spans not stored", spans=len(batch))
        for trace_id in sorted(self._builder.add(batch)):
            graph = self._builder.get(trace_id)
            if graph is not None:
                ok = await self._graph_changed(graph) and ok
        return ok

    async def _graph_changed(self, graph: RunGraph) -> bool:
        ok = True
        try:
            await self._store.write_graph(graph)
        except Exception:
            ok = False
            log.exception("graph not stored", trace_id=graph.trace_id)
        if self._hot is not None:
            try:
                await self._hot.update_run(RunState.from_graph(graph))
            except Exception:
                log.exception("live run state not updated", trace_id=graph.trace_id)
        for rule in self._rules:
            try:
                found = rule.evaluate(graph)
            except Exception:
                ok = False
                log.exception("rule failed", rule=rule.name, trace_id=graph.trace_id)
                continue
            for detection in found:
                ok = await self._detected(detection) and ok
        return ok

    async def _detected(self, detection: Detection) -> bool:
        try:
            if not await self._store.write_detection(detection):
                return True  # stored before (re-delivered after a restart, say)
            stored = True
        except Exception:
            stored = False
            log.exception("detection not stored", detection_id=detection.id)
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
        return stored
