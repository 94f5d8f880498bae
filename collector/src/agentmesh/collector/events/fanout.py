"""One detection listener feeding every enabled sink: metrics, OTLP export, webhooks, others.

:class:`DetectionFanout` is what the pipeline is given as ``on_detection``. Its
:meth:`~DetectionFanout.on_detection` returns at once and never raises: it counts the detection
(Prometheus), queues it for OTLP export and for the webhooks (bounded queues, drop-oldest), and
starts each extra asynchronous listener as a task of its own (at most ``max_listener_tasks``
at a time; beyond, the call is dropped and counted). A sink that fails is logged and the others
still get the detection.

Enter it before the pipeline (so it outlives the pipeline's final drain) and after the
forwarders the exporter feeds (so its final flush still reaches them).

Example:
    >>> import asyncio
    >>> from agentmesh.collector.detection import Detection
    >>> from agentmesh.collector.events.metrics import CollectorMetrics
    >>> async def main() -> float:
    ...     metrics = CollectorMetrics()
    ...     async with DetectionFanout(metrics=metrics) as fanout:
    ...         fanout.on_detection(Detection("d", "stuck", "error", "t", "r", None, (), "x", 1))
    ...     return metrics.detections("stuck", "error")
    >>> asyncio.run(main())
    1.0
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Self

from agentmesh.collector.detection import Detection
from agentmesh.collector.events.metrics import CollectorMetrics
from agentmesh.collector.events.otlp_export import DetectionExporter
from agentmesh.collector.events.webhooks import WebhookNotifier
from agentmesh.collector.pipeline import DetectionListener
from agentmesh.core.errors import CollectorError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import finish_within

__all__ = ["DetectionFanout", "DetectionFanoutStats"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DetectionFanoutStats:
    """Counters of a fan-out.

    Attributes:
        detections: Detections received.
        sink_failures: Times a sink raised (logged; the other sinks still ran).
        listener_tasks: Extra-listener tasks running now.
        listener_calls_dropped: Extra-listener calls dropped because too many were running,
            or cancelled unfinished at shutdown.
    """

    detections: int = 0
    sink_failures: int = 0
    listener_tasks: int = 0
    listener_calls_dropped: int = 0


class DetectionFanout:
    """Hands each detection to every enabled sink without blocking the caller.

    An async context manager: entering starts the exporter and the webhook notifier (it owns
    them); leaving waits up to ``listener_timeout_seconds`` for running listener tasks, then
    flushes the exporter and the webhooks.

    Args:
        metrics: Counts detections in ``agentmesh_detections_total``.
        exporter: Exports detections as OTLP spans.
        webhooks: POSTs detections to webhook URLs.
        listeners: Other listeners (sync or async), for example recovery.
        max_listener_tasks: Asynchronous listener calls running at once at most.
        listener_timeout_seconds: Time leaving gives running listener tasks.
    """

    def __init__(
        self,
        *,
        metrics: CollectorMetrics | None = None,
        exporter: DetectionExporter | None = None,
        webhooks: WebhookNotifier | None = None,
        listeners: Sequence[DetectionListener] = (),
        max_listener_tasks: int = 1000,
        listener_timeout_seconds: float = 5.0,
    ) -> None:
        self._metrics = metrics
        self._exporter = exporter
        self._webhooks = webhooks
        self._listeners = tuple(listeners)
        self._max_tasks = max_listener_tasks
        self._listener_timeout = listener_timeout_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self._stack: AsyncExitStack | None = None
        self._detections = 0
        self._sink_failures = 0
        self._listener_dropped = 0

    @property
    def metrics(self) -> CollectorMetrics | None:
        """The metrics, when enabled."""
        return self._metrics

    @property
    def exporter(self) -> DetectionExporter | None:
        """The OTLP exporter, when enabled."""
        return self._exporter

    @property
    def webhooks(self) -> WebhookNotifier | None:
        """The webhook notifier, when enabled."""
        return self._webhooks

    @property
    def stats(self) -> DetectionFanoutStats:
        """A snapshot of the counters."""
        return DetectionFanoutStats(
            detections=self._detections,
            sink_failures=self._sink_failures,
            listener_tasks=len(self._tasks),
            listener_calls_dropped=self._listener_dropped,
        )

    def on_detection(self, detection: Detection) -> None:
        """Hand a detection to every sink (returns at once, never raises).

        Args:
            detection: The new detection.
        """
        self._detections += 1
        if self._metrics is not None:
            self._guard("metrics", self._metrics.record, detection)
        if self._exporter is not None:
            self._guard("otlp export", self._exporter.offer, detection)
        if self._webhooks is not None:
            self._guard("webhooks", self._webhooks.offer, detection)
        for listener in self._listeners:
            self._call(listener, detection)

    def __call__(self, detection: Detection, /) -> None:
        """Same as :meth:`on_detection`.

        Args:
            detection: The new detection.
        """
        self.on_detection(detection)

    async def start(self) -> None:
        """Start the exporter and the webhook notifier.

        Raises:
            CollectorError: Already started.
        """
        if self._stack is not None:
            raise CollectorError("the detection fan-out is already running")
        stack = AsyncExitStack()
        try:
            if self._exporter is not None:
                await stack.enter_async_context(self._exporter)
            if self._webhooks is not None:
                await stack.enter_async_context(self._webhooks)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def stop(self) -> None:
        """Let listener tasks finish (bounded), then flush and stop the sinks."""
        tasks = set(self._tasks)
        self._listener_dropped += await finish_within(tasks, self._listener_timeout)
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _guard(self, sink: str, offer: DetectionListener, detection: Detection) -> None:
        try:
            offer(detection)
        except Exception:
            self._sink_failures += 1
            log.exception("detection sink failed", sink=sink, detection_id=detection.id)

    def _call(self, listener: DetectionListener, detection: Detection) -> None:
        try:
            outcome = listener(detection)
        except Exception:
            self._sink_failures += 1
            log.exception("detection listener failed", detection_id=detection.id)
            return
        if not inspect.isawaitable(outcome):
            return
        if len(self._tasks) >= self._max_tasks:
            self._listener_dropped += 1
            if inspect.iscoroutine(outcome):
                outcome.close()
            log.warning("too many detection listener calls running, one dropped")
            return
        task = asyncio.ensure_future(self._await(outcome, detection.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(self, outcome: object, detection_id: str) -> None:
        try:
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            self._sink_failures += 1
            log.exception("detection listener failed", detection_id=detection_id)
