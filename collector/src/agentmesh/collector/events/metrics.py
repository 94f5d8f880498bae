"""Prometheus metrics of a collector, on a registry of its own.

Three kinds of numbers:

- ``agentmesh_detections_total{type,severity}``: counted here, one per detection recorded
  (:meth:`CollectorMetrics.record`, called by the detection fan-out).
- Everything the collector already counts (spans received, stored and rejected, queue depth,
  live traces, ingest-to-graph latency, forwarders, detection export and webhooks): read from
  the owners' ``stats`` at scrape time by a custom Prometheus collector, so nothing is counted
  twice and a scrape always shows the owners' current values.
- The process's own figures, from ``prometheus_client``'s process collector:
  ``process_resident_memory_bytes``, ``process_cpu_seconds_total``, open files… (on Linux; the
  decode worker processes are separate: ``agentmesh_decode_workers*``, read from ``/proc``).

Each :class:`CollectorMetrics` has its own ``CollectorRegistry`` (never the process-wide one),
so several collectors in one process do not clash.

Example:
    >>> from agentmesh.collector.detection import Detection
    >>> from agentmesh.collector.pipeline import PipelineStats
    >>> metrics = CollectorMetrics(stats=lambda: PipelineStats(spans_received=7))
    >>> metrics.record(Detection("det-1", "ping_pong", "warning", "t", "r", None, (), "x", 1))
    >>> text = metrics.render().decode()
    >>> 'agentmesh_detections_total{severity="warning",type="ping_pong"} 1.0' in text
    True
    >>> "agentmesh_spans_received_total 7.0" in text
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final, cast

from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from agentmesh.collector.detection import Detection
from agentmesh.collector.events.otlp_export import DetectionExporter
from agentmesh.collector.events.webhooks import WebhookNotifier
from agentmesh.collector.forward.stats import ForwarderStats
from agentmesh.collector.graph.builder import MAX_WORKFLOW_LABELS, NO_WORKFLOW, OTHER_WORKFLOWS
from agentmesh.collector.receiver.process_usage import PoolUsage
from agentmesh.core.log import get_logger

__all__ = ["METRICS_CONTENT_TYPE", "METRICS_PATH", "CollectorMetrics", "LatencySource"]

log = get_logger(__name__)

METRICS_PATH: Final = "/metrics"
"""Where the exposition is served."""

METRICS_CONTENT_TYPE: Final[str] = CONTENT_TYPE_LATEST
"""Content type of :meth:`CollectorMetrics.render` (Prometheus text format 0.0.4)."""

LatencySource = Callable[..., list[float | None]]
"""``Pipeline.ingest_to_graph_quantiles_ms``: quantiles in, milliseconds out."""

LATENCY_QUANTILES: Final = (0.5, 0.9, 0.99)
"""Quantiles of the ingest-to-graph latency exposed."""

_COUNTERS: Final[tuple[tuple[str, str, str], ...]] = (
    ("requests", "agentmesh_otlp_requests", "OTLP export requests answered (gRPC and HTTP)."),
    (
        "requests_refused",
        "agentmesh_otlp_requests_refused",
        "OTLP requests refused: busy, malformed, too large or unauthenticated.",
    ),
    (
        "requests_unauthenticated",
        "agentmesh_otlp_requests_unauthenticated",
        "OTLP requests refused for missing or wrong credentials.",
    ),
    ("spans_received", "agentmesh_spans_received", "Spans accepted into the pipeline."),
    ("spans_stored", "agentmesh_spans_stored", "Spans newly stored."),
    ("spans_rejected", "agentmesh_spans_rejected", "Spans rejected for invalid ids."),
    (
        "batches_rejected",
        "agentmesh_batches_rejected",
        "Span batches refused because the pipeline queue was full.",
    ),
    ("batches_failed", "agentmesh_batches_failed", "Span batches with a step that failed."),
    ("traces_evicted", "agentmesh_traces_evicted", "Run graphs evicted to bound memory."),
    ("traces_retired", "agentmesh_traces_retired", "Complete run graphs that left memory."),
    ("traces_expired", "agentmesh_traces_expired", "Idle incomplete run graphs that left memory."),
    ("late_spans", "agentmesh_late_spans", "Spans that arrived after their run left memory."),
    (
        "late_graphs_rebuilt",
        "agentmesh_late_graphs_rebuilt",
        "Run graphs rebuilt from the store for spans that arrived after the run left memory.",
    ),
    (
        "late_graphs_dropped",
        "agentmesh_late_graphs_dropped",
        "Runs with late spans whose graph was not rebuilt (too many waiting, or it failed).",
    ),
    (
        "runs_merged",
        "agentmesh_runs_merged",
        "Runs met part-way: their spans stored before (a restart, another collector) were merged "
        "into the graph here.",
    ),
    ("attributes_dropped", "agentmesh_attributes_dropped", "Span attributes dropped by limits."),
    ("events_dropped", "agentmesh_span_events_dropped", "Span events dropped by limits."),
    ("values_truncated", "agentmesh_values_truncated", "Attribute values truncated by limits."),
    ("runs_pruned", "agentmesh_runs_pruned", "Runs deleted by retention, with their graphs."),
    ("spans_pruned", "agentmesh_spans_pruned", "Spans deleted by retention."),
    ("detections_pruned", "agentmesh_detections_pruned", "Detections deleted by retention."),
    ("prune_failures", "agentmesh_prune_failures", "Retention passes that failed."),
    (
        "store_write_retries",
        "agentmesh_store_write_retries",
        "Store writes tried again because the store was unavailable.",
    ),
    (
        "decode_pool_restarts",
        "agentmesh_decode_pool_restarts",
        "Times the decode pool was rebuilt after a worker process died.",
    ),
    (
        "store_reopens",
        "agentmesh_store_reopens",
        "Times the store opened its database again after the engine gave up on it.",
    ),
    (
        "feedback_joined_late",
        "agentmesh_feedback_joined_late",
        "Feedback scores that arrived before their routing decision and were applied when it "
        "arrived within the grace period.",
    ),
    (
        "feedback_orphans_expired",
        "agentmesh_feedback_orphans_expired",
        "Feedback scores dropped because their routing decision did not arrive within the grace "
        "period.",
    ),
    (
        "feedback_orphans_evicted",
        "agentmesh_feedback_orphans_evicted",
        "Feedback scores waiting for their routing decision dropped, oldest first, to bound "
        "memory.",
    ),
)
"""(stats field, metric name without ``_total``, help) of the counters read from stats."""

_GAUGES: Final[tuple[tuple[str, str, str], ...]] = (
    ("queued_batches", "agentmesh_queue_batches", "Span batches waiting in the pipeline."),
    ("queued_spans", "agentmesh_queue_spans", "Spans waiting in the pipeline."),
    ("live_traces", "agentmesh_live_traces", "Run graphs held in memory."),
    (
        "store_unavailable",
        "agentmesh_store_unavailable",
        "1 while the store cannot be reached (writes held and retried, or, with no write going "
        "on, the store check unanswered), else 0.",
    ),
    (
        "store_memory_bytes",
        "agentmesh_store_memory_bytes",
        "Memory the embedded store (DuckDB) holds in the collector's process, in bytes.",
    ),
    (
        "feedback_held",
        "agentmesh_feedback_held",
        "Feedback scores held waiting for their routing decision.",
    ),
)
"""(stats field, metric name, help) of the gauges read from stats."""


def _runs(stats: object) -> Iterator[Metric]:
    """``agentmesh_runs_finished_total`` and ``agentmesh_runs_failed_total`` by workflow."""
    by_workflow = getattr(stats, "runs_by_workflow", None)
    if not isinstance(by_workflow, Mapping):
        return
    finished = CounterMetricFamily(
        "agentmesh_runs_finished",
        "Runs whose root span arrived, by the workflow their spans named by then "
        f"({NO_WORKFLOW!r} for none; {OTHER_WORKFLOWS!r} past {MAX_WORKFLOW_LABELS} names).",
        labels=("workflow",),
    )
    failed = CounterMetricFamily(
        "agentmesh_runs_failed",
        "Runs whose root span ended in error, by workflow (as agentmesh_runs_finished_total).",
        labels=("workflow",),
    )
    counts = cast("Mapping[str, tuple[int, int]]", by_workflow)
    for workflow, (done, broken) in sorted(counts.items()):
        finished.add_metric((workflow,), done)
        failed.add_metric((workflow,), broken)
    yield finished
    yield failed


class CollectorMetrics:
    """The Prometheus metrics of one collector.

    Every source is optional and read at scrape time; a source that fails is logged and its
    metrics are left out of that scrape.

    Args:
        stats: Returns the collector's counters (``Collector.stats``, or ``Pipeline.stats``):
            every field named in the table of counters and gauges that it has is exposed.
        ingest_latency_ms: ``Pipeline.ingest_to_graph_quantiles_ms``, for
            ``agentmesh_ingest_to_graph_seconds{quantile}``.
        forward_stats: Returns each forwarder's counters by name (``Collector.forward_stats``).
        exporter: The detection OTLP exporter, if any.
        webhooks: The detection webhook notifier, if any.
        decode_workers: Returns what the decode worker processes use (``DecodePool.usage``),
            for ``agentmesh_decode_workers`` and its memory and CPU.
    """

    def __init__(
        self,
        *,
        stats: Callable[[], object] | None = None,
        ingest_latency_ms: LatencySource | None = None,
        forward_stats: Callable[[], Mapping[str, ForwarderStats]] | None = None,
        exporter: DetectionExporter | None = None,
        webhooks: WebhookNotifier | None = None,
        decode_workers: Callable[[], PoolUsage] | None = None,
    ) -> None:
        self._stats = stats
        self._latency = ingest_latency_ms
        self._forward = forward_stats
        self._exporter = exporter
        self._webhooks = webhooks
        self._workers = decode_workers
        self.registry = CollectorRegistry(auto_describe=False)
        """The registry holding these metrics (and only these)."""
        self._detections = Counter(
            "agentmesh_detections",
            "Detections, by type and severity.",
            ("type", "severity"),
            registry=self.registry,
        )
        self.registry.register(self)
        ProcessCollector(registry=self.registry)  # process_* memory, CPU, files (Linux)

    def record(self, detection: Detection) -> None:
        """Count a detection in ``agentmesh_detections_total``.

        Args:
            detection: The detection.
        """
        self._detections.labels(type=detection.type, severity=detection.severity).inc()

    def detections(self, type_: str, severity: str) -> float:
        """The current value of ``agentmesh_detections_total`` for one label pair.

        Args:
            type_: The detection type.
            severity: The severity.

        Returns:
            The count (0 when none was recorded).
        """
        value = self.registry.get_sample_value(
            "agentmesh_detections_total", {"type": type_, "severity": severity}
        )
        return 0.0 if value is None else value

    def render(self) -> bytes:
        """Render every metric in the Prometheus text format (:data:`METRICS_CONTENT_TYPE`).

        Returns:
            The exposition.
        """
        return generate_latest(self.registry)

    def aiohttp_handler(self) -> Handler:
        """An aiohttp request handler serving :meth:`render` (content negotiation included).

        Returns:
            The handler, for ``app.router.add_get(METRICS_PATH, handler)``.
        """
        return make_aiohttp_handler(self.registry)

    # --- the custom Prometheus collector ----------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        """Read the sources (the Prometheus client calls this on each scrape).

        Returns:
            The metric families.
        """
        families: list[Metric] = []
        for label, source in (
            ("stats", self._from_stats),
            ("latency", self._from_latency),
            ("forwarders", self._from_forwarders),
            ("detection export", self._from_exporter),
            ("webhooks", self._from_webhooks),
            ("decode workers", self._from_workers),
        ):
            try:
                families.extend(source())
            except Exception:
                log.exception("metrics source failed", source=label)
        return families

    def _from_stats(self) -> Iterator[Metric]:
        if self._stats is None:
            return
        stats = self._stats()
        for field, name, help_ in _COUNTERS:
            value = getattr(stats, field, None)
            if isinstance(value, int):
                yield CounterMetricFamily(name, help_, value=value)
        for field, name, help_ in _GAUGES:
            value = getattr(stats, field, None)
            if isinstance(value, int):
                yield GaugeMetricFamily(name, help_, value=value)
        yield from _runs(stats)

    def _from_workers(self) -> Iterator[Metric]:
        if self._workers is None:
            return
        usage = self._workers()
        yield GaugeMetricFamily(
            "agentmesh_decode_workers", "Decode worker processes running.", value=usage.workers
        )
        yield GaugeMetricFamily(
            "agentmesh_decode_workers_resident_memory_bytes",
            "Resident memory of the decode worker processes, together.",
            value=usage.resident_bytes,
        )
        yield CounterMetricFamily(
            "agentmesh_decode_workers_cpu_seconds",
            "CPU time of the decode worker processes, together, workers that have exited "
            "included (up to their last reading).",
            value=usage.cpu_seconds,
        )

    def _from_latency(self) -> Iterator[Metric]:
        if self._latency is None:
            return
        family = GaugeMetricFamily(
            "agentmesh_ingest_to_graph_seconds",
            "Time from a span batch's acceptance to its run graphs being updated and rules run, "
            "over the most recent batches.",
            labels=("quantile",),
        )
        values = self._latency(*LATENCY_QUANTILES)
        for quantile, value in zip(LATENCY_QUANTILES, values, strict=True):
            if value is not None:
                family.add_metric((str(quantile),), value / 1000.0)
        yield family

    def _from_forwarders(self) -> Iterator[Metric]:
        if self._forward is None:
            return
        by_name = self._forward()
        requests = CounterMetricFamily(
            "agentmesh_forward_requests",
            "OTLP requests forwarded, by forwarder and outcome (sent, failed, dropped).",
            labels=("forwarder", "outcome"),
        )
        spans = CounterMetricFamily(
            "agentmesh_forward_spans",
            "Spans in forwarded requests, by forwarder and outcome.",
            labels=("forwarder", "outcome"),
        )
        retries = CounterMetricFamily(
            "agentmesh_forward_retries", "Forwarding retries.", labels=("forwarder",)
        )
        queued = GaugeMetricFamily(
            "agentmesh_forward_queue_requests",
            "Requests waiting in a forwarder's queue.",
            labels=("forwarder",),
        )
        for name, s in sorted(by_name.items()):
            for outcome, count, span_count in (
                ("sent", s.sent_requests, s.sent_spans),
                ("failed", s.failed_requests, s.failed_spans),
                ("dropped", s.dropped_requests, s.dropped_spans),
            ):
                requests.add_metric((name, outcome), count)
                spans.add_metric((name, outcome), span_count)
            retries.add_metric((name,), s.retried)
            queued.add_metric((name,), s.queued)
        yield from (requests, spans, retries, queued)

    def _from_exporter(self) -> Iterator[Metric]:
        if self._exporter is None:
            return
        s = self._exporter.stats
        spans = CounterMetricFamily(
            "agentmesh_detection_spans",
            "Detections exported as OTLP spans, by outcome (exported, skipped, dropped).",
            labels=("outcome",),
        )
        for outcome, count in (
            ("exported", s.exported),
            ("skipped", s.skipped),
            ("dropped", s.dropped),
        ):
            spans.add_metric((outcome,), count)
        yield spans

    def _from_webhooks(self) -> Iterator[Metric]:
        if self._webhooks is None:
            return
        s = self._webhooks.stats
        deliveries = CounterMetricFamily(
            "agentmesh_webhook_deliveries",
            "Detection webhook deliveries, by outcome (delivered, failed, dropped).",
            labels=("outcome",),
        )
        for outcome, count in (
            ("delivered", s.delivered),
            ("failed", s.failed),
            ("dropped", s.dropped),
        ):
            deliveries.add_metric((outcome,), count)
        yield deliveries
        yield CounterMetricFamily(
            "agentmesh_webhook_retries", "Detection webhook retries.", value=s.retried
        )
        yield GaugeMetricFamily(
            "agentmesh_webhook_queue", "Webhook deliveries waiting.", value=s.queued
        )
