"""The collector service: OTLP receivers → pipeline (graphs, rules) → store, as one unit.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.store.memory_store import MemoryStore
    >>> async def main() -> tuple[str, bool]:
    ...     settings = CollectorSettings.load(grpc_port=0, http_port=0)
    ...     async with Collector(settings, MemoryStore()) as collector:
    ...         return collector.endpoint.rsplit(":", 1)[0], collector.http_port > 0
    >>> asyncio.run(main())
    ('http://127.0.0.1', True)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Final, Self

from agentmesh.collector.api import (
    decision_export_routes,
    decisions_routes,
    export_routes,
    runs_routes,
)
from agentmesh.collector.api.health import Readiness, health_routes
from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import Detector, Rule
from agentmesh.collector.detectors.registry import build_detectors, build_rules, state_backend
from agentmesh.collector.detectors.state_store import DetectorStateStore
from agentmesh.collector.events import (
    CollectorMetrics,
    DetectionExporter,
    DetectionFanout,
    WebhookNotifier,
    webhook_targets,
)
from agentmesh.collector.forward import Forwarders, ForwarderStats, ForwardingSink
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.hot_state import make_hot_state
from agentmesh.collector.pipeline import ColumnarSpanWriter, DetectionListener, Pipeline
from agentmesh.collector.receiver.base import bind_problem, hostport
from agentmesh.collector.receiver.decode_pool import DecodePool
from agentmesh.collector.receiver.grpc_server import OtlpGrpcReceiver
from agentmesh.collector.receiver.http_server import OtlpHttpReceiver
from agentmesh.collector.receiver.ingest import ReceiverStats, SpanSink
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.receiver.process_usage import PoolUsage
from agentmesh.collector.receiver.tls import ReloadingTls
from agentmesh.collector.recovery import (
    RecoveryEngine,
    RecoveryPolicy,
    control_routes,
    make_control_state,
)
from agentmesh.collector.resume import resume_routes
from agentmesh.collector.routing import (
    RouteTableState,
    make_route_table_state,
    route_table_routes,
)
from agentmesh.collector.routing.configured import publish_configuration
from agentmesh.collector.routing.feedback import feedback_routes
from agentmesh.collector.routing.trainer import RouterTrainer, make_router_trainer
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.store import make_store
from agentmesh.collector.store.availability import StoreProbe
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.retention import Retention, RetentionStats
from agentmesh.collector.web import web_routes
from agentmesh.core.errors import CollectorError, ReceiverError
from agentmesh.core.log import get_logger

__all__ = ["Collector", "CollectorStats"]

log = get_logger(__name__)

_PROBE_TRACE_ID: Final = "0" * 32
"""The trace the store check reads: an all-zero trace id is invalid in OTLP, never stored."""


@dataclass(frozen=True, slots=True)
class CollectorStats:
    """Counters of a running collector.

    Attributes:
        requests: OTLP export requests answered (gRPC and HTTP).
        spans_received: Spans accepted into the pipeline.
        spans_rejected: Spans rejected for invalid ids (OTLP partial success).
        spans_stored: Spans newly stored.
        batches_rejected: Requests refused with ``UNAVAILABLE`` / 503 because the queue was full.
        batches_failed: Batches with a processing step that failed (logged).
        detections: New detections.
        queued_batches: Batches waiting in the pipeline now.
        queued_spans: Spans in those batches (the queue's bound is in spans:
            ``agentmesh_queue_spans`` on ``/metrics``).
        live_traces: Run graphs held in memory.
        traces_evicted: Run graphs evicted to bound memory (``max_live_traces``).
        runs_finished: Runs whose root span arrived (each counted once, failed or not).
        runs_failed: Of those, the runs that failed: their root span ended in error.
        runs_by_workflow: The same two counts by workflow name: ``{workflow: (finished,
            failed)}`` (see ``GraphBuilder.runs_by_workflow``).
        traces_retired: Complete run graphs that left memory after their linger time.
        traces_expired: Incomplete run graphs that left memory after the idle timeout.
        late_spans: Spans that arrived after their run left memory (stored; the run's graph is
            then rebuilt from the store).
        late_graphs_rebuilt: Run graphs rebuilt from the store for late spans.
        runs_merged: Runs met part-way: spans of theirs were already stored (before a restart,
            or by another collector) and were merged into the graph here.
        late_graphs_dropped: Runs with late spans whose graph was not rebuilt (too many
            waiting, or the rebuild failed; logged).
        requests_refused: Requests refused: busy, malformed, too large or unauthenticated.
        requests_unauthenticated: Requests refused for missing or wrong credentials.
        attributes_dropped: Span attributes dropped by ``max_attributes_per_span``.
        events_dropped: Span events dropped by ``max_events_per_span``.
        values_truncated: Attribute values truncated or cut by the size and depth limits.
        runs_pruned: Runs deleted by retention (``retention_days``), with their graphs.
        spans_pruned: Spans deleted by retention.
        detections_pruned: Detections deleted by retention.
        prune_failures: Retention passes that failed (logged; the next pass tries again).
        store_unavailable: 1 while the store cannot be reached: writes are held and retried,
            or, with no write going on, it did not answer the store check
            (``store_probe_seconds``).
        store_write_retries: Store writes tried again because the store was unavailable.
        store_reopens: Times the store opened its database again after the database engine
            gave up on it (DuckDB invalidates a database whose checkpoint hit a full disk).
        store_memory_bytes: Memory the embedded database holds in the collector's process
            (DuckDB's buffer manager, sampled at most once a second); ``None`` for a store
            that keeps its data elsewhere (Postgres) or in Python objects (memory).
        decode_pool_restarts: Times the decode pool was rebuilt after a worker died.
        feedback_held: Feedback scores the router trainer holds now, waiting for their routing
            decision (the score arrived first).
        feedback_joined_late: Held feedback scores that found their decision within
            ``router_feedback_grace_seconds`` and were applied.
        feedback_orphans_expired: Held feedback scores dropped because their decision did not
            arrive within ``router_feedback_grace_seconds``.
        feedback_orphans_evicted: Held feedback scores dropped, oldest first, because too many
            were held.
    """

    requests: int = 0
    spans_received: int = 0
    spans_rejected: int = 0
    spans_stored: int = 0
    batches_rejected: int = 0
    batches_failed: int = 0
    detections: int = 0
    queued_batches: int = 0
    queued_spans: int = 0
    live_traces: int = 0
    traces_evicted: int = 0
    runs_finished: int = 0
    runs_failed: int = 0
    runs_by_workflow: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: dict[str, tuple[int, int]]()
    )
    traces_retired: int = 0
    traces_expired: int = 0
    late_spans: int = 0
    late_graphs_rebuilt: int = 0
    late_graphs_dropped: int = 0
    runs_merged: int = 0
    requests_refused: int = 0
    requests_unauthenticated: int = 0
    attributes_dropped: int = 0
    events_dropped: int = 0
    values_truncated: int = 0
    runs_pruned: int = 0
    spans_pruned: int = 0
    detections_pruned: int = 0
    prune_failures: int = 0
    store_unavailable: int = 0
    store_write_retries: int = 0
    store_reopens: int = 0
    store_memory_bytes: int | None = None
    decode_pool_restarts: int = 0
    feedback_held: int = 0
    feedback_joined_late: int = 0
    feedback_orphans_expired: int = 0
    feedback_orphans_evicted: int = 0


class Collector:
    """Receives OTLP spans, rebuilds run graphs, detects failures and stores everything.

    An async context manager: entering opens the store (the backend ``settings.store`` names:
    DuckDB on ``settings.duckdb_path`` by default, Postgres, or memory; unless ``store`` is
    given) and, when ``settings.redis_url`` is set, the shared hot state (fail-open), starts
    the pipeline and then the
    OTLP/gRPC receiver and (unless ``settings.http_enabled`` is false) the OTLP/HTTP receiver,
    both feeding the same pipeline; leaving stops the receivers first (HTTP, then gRPC), then
    drains the pipeline, then closes the store it opened (a store passed in is left open for its
    owner).

    When forwarding is configured (``settings.forward_*``), every request the receivers accept
    is also queued for LangSmith, Braintrust or other OTLP endpoints (see
    :mod:`agentmesh.collector.forward`); the forwarders start before the receivers and, after
    the receivers stop, get ``settings.forward_flush_timeout_seconds`` to send what they hold.

    Args:
        settings: Configuration; :meth:`CollectorSettings.load` by default.
        store: Storage backend to use instead of the DuckDB file.
        rules: Graph rules; by default the loop and ping-pong rule with the settings' bounds.
        detectors: Streaming detectors; by default every detector, with the settings' bounds
            (see :mod:`agentmesh.collector.detectors.registry`).
        on_detection: Called with each new detection (after recovery acted on it).

    Raises:
        ConfigError: ``settings`` were not given and the environment holds a wrong value.
    """

    def __init__(
        self,
        settings: CollectorSettings | None = None,
        store: SpanStore | None = None,
        *,
        rules: Sequence[Rule] | None = None,
        detectors: Sequence[Detector] | None = None,
        on_detection: DetectionListener | None = None,
    ) -> None:
        self._settings = settings if settings is not None else CollectorSettings.load()
        self._owns_store = store is None
        self._store: SpanStore = store if store is not None else make_store(self._settings)
        self._rules: tuple[Rule, ...] = (
            tuple(rules) if rules is not None else tuple(build_rules(self._settings))
        )
        self._detectors: tuple[Detector, ...] = (
            tuple(detectors) if detectors is not None else tuple(build_detectors(self._settings))
        )
        # A wrong recovery setting fails here, at start-up, naming the variable.
        self._policy = RecoveryPolicy.from_settings(self._settings)
        self._on_detection = on_detection
        self._recovery: RecoveryEngine | None = None
        self._route_table: RouteTableState | None = None
        self._trainer: RouterTrainer | None = None
        self._fanout: DetectionFanout | None = None
        self._metrics: CollectorMetrics | None = None
        self._pipeline: Pipeline | None = None
        self._receiver: OtlpGrpcReceiver | None = None
        self._http_receiver: OtlpHttpReceiver | None = None
        self._forwarders: Forwarders | None = None
        self._decode_pool: DecodePool | None = None
        self._retention: Retention | None = None
        self._store_probe: StoreProbe | None = None
        self._stack: AsyncExitStack | None = None
        self._stop = asyncio.Event()
        self._used = False

    @property
    def settings(self) -> CollectorSettings:
        """The configuration in use."""
        return self._settings

    @property
    def store(self) -> SpanStore:
        """The storage backend."""
        return self._store

    @property
    def grpc_port(self) -> int:
        """The port the OTLP/gRPC receiver listens on (the one chosen when configured as 0)."""
        return self._running_receiver().port

    @property
    def endpoint(self) -> str:
        """The OTLP/gRPC endpoint for exporters, for example ``http://127.0.0.1:4317``."""
        return self._running_receiver().endpoint

    @property
    def http_port(self) -> int:
        """The port the OTLP/HTTP receiver listens on (the one chosen when configured as 0).

        Raises:
            CollectorError: Not running, or HTTP is disabled.
        """
        return self._running_http_receiver().port

    @property
    def http_endpoint(self) -> str:
        """The OTLP/HTTP base URL, for example ``http://127.0.0.1:4318`` (traces: ``/v1/traces``).

        Raises:
            CollectorError: Not running, or HTTP is disabled.
        """
        return self._running_http_receiver().endpoint

    @property
    def stats(self) -> CollectorStats:
        """A snapshot of the counters (zeros before start)."""
        if self._pipeline is None or self._receiver is None:
            return CollectorStats()
        pipeline = self._pipeline.stats
        receiver = self._receiver.stats
        if self._http_receiver is not None:
            receiver = receiver + self._http_receiver.stats
        builder = self._pipeline.builder
        retention = self._retention.stats if self._retention is not None else RetentionStats()
        trainer = self._trainer
        return CollectorStats(
            requests=receiver.requests,
            spans_received=pipeline.spans_received,
            spans_rejected=receiver.spans_rejected,
            spans_stored=pipeline.spans_stored,
            batches_rejected=pipeline.batches_rejected,
            batches_failed=pipeline.batches_failed,
            detections=pipeline.detections,
            queued_batches=pipeline.queued_batches,
            queued_spans=pipeline.queued_spans,
            live_traces=len(builder),
            traces_evicted=builder.evicted,
            runs_finished=builder.runs_finished,
            runs_failed=builder.runs_failed,
            runs_by_workflow=builder.runs_by_workflow,
            traces_retired=builder.retired,
            traces_expired=builder.expired,
            late_spans=builder.late_spans,
            late_graphs_rebuilt=pipeline.late_graphs_rebuilt,
            late_graphs_dropped=pipeline.late_graphs_dropped,
            runs_merged=pipeline.runs_merged,
            requests_refused=receiver.requests_refused,
            requests_unauthenticated=receiver.requests_unauthenticated,
            attributes_dropped=receiver.attributes_dropped,
            events_dropped=receiver.events_dropped,
            values_truncated=receiver.values_truncated,
            runs_pruned=retention.runs_pruned,
            spans_pruned=retention.spans_pruned,
            detections_pruned=retention.detections_pruned,
            prune_failures=retention.failures,
            store_unavailable=0 if self._store_answers() else 1,
            store_write_retries=pipeline.store_write_retries,
            store_reopens=int(getattr(self._store, "reopens", 0)),
            store_memory_bytes=getattr(self._store, "memory_sampled", None),
            decode_pool_restarts=0 if self._decode_pool is None else self._decode_pool.restarts,
            feedback_held=0 if trainer is None else trainer.feedback_held,
            feedback_joined_late=0 if trainer is None else trainer.feedback_joined_late,
            feedback_orphans_expired=0 if trainer is None else trainer.feedback_orphans_expired,
            feedback_orphans_evicted=0 if trainer is None else trainer.feedback_orphans_evicted,
        )

    def readiness(self) -> Readiness:
        """Whether the collector takes spans and can store them (``GET /readyz``).

        The store is ready while its writes go through and, for a store kept elsewhere
        (PostgreSQL), while it answers the check made every ``store_probe_seconds`` when no
        write went through: a database lost while no span arrives is reported too.

        Returns:
            The readiness, with each check in words.
        """
        pipeline = self._pipeline
        running = pipeline is not None and pipeline.accepting
        store_ok = self._store_answers()
        if store_ok:
            store = "ok"
        elif pipeline is not None and not pipeline.store_available:
            store = "unavailable: writes are held and retried"
        else:
            store = "unavailable: it does not answer (checked again every 2 s)"
        checks = {
            "pipeline": "ok" if running else "not running (starting or draining)",
            "store": store,
            "queue": "full: senders are asked to retry"
            if pipeline is not None and pipeline.full
            else "ok",
        }
        return Readiness(ready=running and store_ok, checks=checks)

    def _store_answers(self) -> bool:
        """Whether the store takes the writes and, while there are none, answers the check."""
        pipeline, probe = self._pipeline, self._store_probe
        writes_ok = pipeline is None or pipeline.store_available
        return writes_ok and (probe is None or probe.available)

    @property
    def forward_stats(self) -> dict[str, ForwarderStats]:
        """Each forwarder's counters by name (``langsmith``, ``braintrust``, ``otlp-1``…).

        Empty before start and when forwarding is not configured.
        """
        if self._forwarders is None:
            return {}
        return self._forwarders.stats

    @property
    def receiver_stats(self) -> ReceiverStats:
        """Both receivers' counters, summed (zeros before start)."""
        if self._receiver is None:
            return ReceiverStats()
        stats = self._receiver.stats
        if self._http_receiver is not None:
            stats = stats + self._http_receiver.stats
        return stats

    async def __aenter__(self) -> Self:
        if self._used:
            raise CollectorError("a Collector can be started once; make a new one")
        self._used = True
        settings = self._settings
        _refuse_busy_ports(settings)  # before the store: a refused start creates no file
        stack = AsyncExitStack()
        try:
            if self._owns_store:
                await self._store.open()
                stack.push_async_callback(self._store.close)
            hot = make_hot_state(settings)
            if hot is not None:
                await hot.open()
                stack.push_async_callback(hot.close)
            forwarders = Forwarders.from_settings(settings)
            if len(forwarders):
                # Before the pipeline: detection spans still go out while it drains.
                self._forwarders = await stack.enter_async_context(forwarders)
            fanout = await stack.enter_async_context(self._make_fanout())
            self._fanout = fanout
            control = make_control_state(settings)
            engine: RecoveryEngine | None = None
            if settings.recovery_enabled:
                engine = await stack.enter_async_context(RecoveryEngine(control, self._policy))
                self._recovery = engine
            route_table = make_route_table_state(settings, control if engine is not None else None)
            self._route_table = await stack.enter_async_context(route_table)
            trainer = make_router_trainer(settings, route_table)
            if trainer is not None:
                self._trainer = await stack.enter_async_context(trainer)
            else:  # the modes and trade-offs are configuration: published without training
                await publish_configuration(settings, route_table)
            # A store passed in (tests, embedding) keeps learned state only when asked to.
            auto = settings.detector_state == "auto" and not self._owns_store
            backend = None if auto else state_backend(settings)
            if backend is not None and self._detectors:
                await stack.enter_async_context(
                    DetectorStateStore(
                        self._detectors,
                        backend,
                        interval_seconds=settings.detector_state_save_seconds,
                    )
                )
            pipeline = Pipeline(
                self._store,
                builder=GraphBuilder(
                    max_traces=settings.max_live_traces,
                    complete_linger_seconds=settings.complete_trace_linger_seconds,
                    idle_timeout_seconds=settings.trace_idle_timeout_seconds,
                ),
                rules=self._rules,
                detectors=(
                    *self._detectors,
                    *([engine.observer] if engine else []),
                    *([trainer.observer] if trainer else []),
                ),
                max_batches=settings.queue_max_batches,
                max_spans=settings.queue_max_spans,
                max_cycle_spans=settings.pipeline_max_cycle_spans,
                graph_write_seconds=settings.graph_write_seconds,
                drain_timeout_seconds=settings.drain_timeout_seconds,
                on_detection=self._detected,
                hot_state=hot,
            )
            self._pipeline = await stack.enter_async_context(pipeline)
            if settings.store_probe_seconds > 0 and not _in_process(self._store):
                # Writes tell whether the store answers only while there are writes.
                store = self._store
                self._store_probe = await stack.enter_async_context(
                    StoreProbe(
                        lambda: store.spans(_PROBE_TRACE_ID, limit=1),
                        interval_seconds=settings.store_probe_seconds,
                        activity=lambda: pipeline.stats.cycles,
                    )
                )
            if settings.retention_days > 0:
                self._retention = await stack.enter_async_context(
                    Retention(
                        self._store,
                        keep_seconds=settings.retention_days * 86_400.0,
                        interval_seconds=settings.retention_interval_seconds,
                    )
                )
            sink: SpanSink = pipeline
            if self._forwarders is not None:
                sink = ForwardingSink(pipeline, self._forwarders)
            pool: DecodePool | None = None
            if settings.effective_decode_workers > 0:
                pool = DecodePool(
                    settings.effective_decode_workers,
                    DecodeLimits.from_settings(settings),
                    with_records=not isinstance(self._store, ColumnarSpanWriter),
                )
                self._decode_pool = await stack.enter_async_context(pool)
            tls = ReloadingTls.from_settings(settings)  # both receivers serve it
            self._receiver = await stack.enter_async_context(
                OtlpGrpcReceiver(
                    sink,
                    settings,
                    decode_pool=pool,
                    tls=tls,
                    ready=lambda: self.readiness().ready,
                )
            )
            if settings.http_enabled:
                self._http_receiver = await stack.enter_async_context(
                    OtlpHttpReceiver(
                        sink,
                        settings,
                        decode_pool=pool,
                        extra_routes=(
                            *(control_routes(control) if engine is not None else ()),
                            *resume_routes(self._store, policy=self._policy),
                            *runs_routes(self._store, [rule.name for rule in self._rules]),
                            *decisions_routes(self._store),
                            *decision_export_routes(self._store),
                            *export_routes(self._store),
                            *route_table_routes(route_table),
                            *feedback_routes(
                                pipeline,
                                self._store,
                                builder=pipeline.builder,
                                retry_after_seconds=settings.retry_after_seconds,
                            ),
                        ),
                        public_routes=(
                            *health_routes(self.readiness),
                            *(web_routes() if settings.web_enabled else ()),
                        ),
                        metrics=self._metrics.render if self._metrics is not None else None,
                        tls=tls,
                    )
                )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        log.info(
            "collector started",
            endpoint=self.endpoint,
            http_endpoint=self._http_receiver.endpoint if self._http_receiver else None,
            rules=[r.name for r in self._rules],
            detectors=[d.name for d in self._detectors],
            recovery=settings.recovery_enabled,
            forwarding=sorted(self.forward_stats),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._stop.set()
        if stack is not None:
            # HTTP, then gRPC receiver, then forwarders (flush), pipeline (drains), then store
            await stack.aclose()
            totals = asdict(self.stats)
            del totals["runs_by_workflow"]  # up to 200 names: /metrics has them
            log.info("collector stopped", **totals)

    @property
    def recovery(self) -> RecoveryEngine | None:
        """The recovery engine (``None`` when not running or ``recovery_enabled`` is false)."""
        return self._recovery

    @property
    def route_table(self) -> RouteTableState:
        """The route table store: publish with ``await collector.route_table.publish(change)``.

        Served at ``GET /v1/route-table`` with the recovery engine's open breakers merged in.

        Raises:
            CollectorError: The collector was not started.
        """
        if self._route_table is None:
            raise CollectorError("the collector is not running; the route table is not open")
        return self._route_table

    @property
    def router_trainer(self) -> RouterTrainer | None:
        """The router trainer (``None`` when not running or ``router_training`` is false)."""
        return self._trainer

    @property
    def metrics(self) -> CollectorMetrics | None:
        """The Prometheus metrics served at ``/metrics`` (``None`` when disabled)."""
        return self._metrics

    @property
    def detectors(self) -> tuple[Detector, ...]:
        """The streaming detectors the pipeline feeds (recovery's observer not included)."""
        return self._detectors

    def _make_fanout(self) -> DetectionFanout:
        settings = self._settings
        exporter = None
        if settings.detection_otlp_export and self._forwarders is not None:
            exporter = DetectionExporter(
                self._forwarders.offer,
                max_batch=settings.detection_otlp_batch,
                flush_seconds=settings.detection_otlp_flush_seconds,
            )
        webhooks = None
        if settings.detection_webhook_urls:
            webhooks = WebhookNotifier(
                webhook_targets(
                    settings.detection_webhook_urls, settings.detection_webhook_headers
                ),
                queue_max=settings.detection_webhook_queue_max,
                timeout_seconds=settings.detection_webhook_timeout_seconds,
                max_attempts=settings.detection_webhook_max_attempts,
            )
        if settings.metrics_enabled:
            self._metrics = CollectorMetrics(
                stats=lambda: self.stats,
                ingest_latency_ms=self._ingest_quantiles,
                forward_stats=lambda: self.forward_stats,
                exporter=exporter,
                webhooks=webhooks,
                decode_workers=self._decode_worker_usage,
            )
        return DetectionFanout(metrics=self._metrics, exporter=exporter, webhooks=webhooks)

    def _decode_worker_usage(self) -> PoolUsage:
        pool = self._decode_pool
        return PoolUsage(0, 0, 0.0) if pool is None else pool.usage()

    def _ingest_quantiles(self, *quantiles: float) -> list[float | None]:
        if self._pipeline is None:
            return [None for _ in quantiles]
        return self._pipeline.ingest_to_graph_quantiles_ms(*quantiles)

    async def _detected(self, detection: Detection) -> None:
        """Every new detection: metrics, OTLP and webhooks, then recovery, then the caller."""
        if self._fanout is not None:
            self._fanout.on_detection(detection)
        if self._recovery is not None:
            await self._recovery.on_detection(detection)
        if self._trainer is not None:
            await self._trainer.on_detection(detection)
        listener = self._on_detection
        if listener is not None:
            outcome = listener(detection)
            if inspect.isawaitable(outcome):
                await outcome

    async def drain(self) -> None:
        """Wait until every span received so far is stored and analysed.

        Raises:
            CollectorError: The collector is not running.
        """
        if self._pipeline is None or self._stack is None:
            raise CollectorError("the collector is not running")
        await self._pipeline.drain()

    async def serve_forever(self) -> None:
        """Run until :meth:`stop` is called or the calling task is cancelled.

        Raises:
            CollectorError: The collector is not running.
        """
        if self._stack is None:
            raise CollectorError("the collector is not running; use `async with Collector()`")
        await self._stop.wait()

    def stop(self) -> None:
        """Make :meth:`serve_forever` return (safe to call from a signal handler)."""
        self._stop.set()

    def _running_receiver(self) -> OtlpGrpcReceiver:
        if self._receiver is None or self._stack is None:
            raise CollectorError("the collector is not running")
        return self._receiver

    def _running_http_receiver(self) -> OtlpHttpReceiver:
        if self._receiver is None or self._stack is None:
            raise CollectorError("the collector is not running")
        if self._http_receiver is None:
            raise CollectorError("the OTLP/HTTP receiver is disabled (http_enabled is false)")
        return self._http_receiver


def _in_process(store: SpanStore) -> bool:
    """Whether the store keeps its data in the collector's process (its ``in_process``).

    DuckDB and memory stores say so; a store kept elsewhere (PostgreSQL, a store of the
    application's own) is probed.
    """
    return getattr(store, "in_process", False) is True


def _refuse_busy_ports(settings: CollectorSettings) -> None:
    """Raise when a configured port cannot be listened on, before anything is opened.

    The receivers start last (they serve the pipeline and the store); checking their ports
    first means a collector that cannot start leaves no database file or connection behind.
    Ports 0 (any free port) are not checked. A port taken between this check and the receiver's
    bind is still refused by the receiver, in the same words.

    Raises:
        ReceiverError: A port is in use, or the address is not this machine's.
    """
    addresses = [("OTLP/gRPC", settings.grpc_host, settings.grpc_port)]
    if settings.http_enabled:
        addresses.append(("OTLP/HTTP", settings.http_host, settings.http_port))
    for what, host, port in addresses:
        if port == 0:
            continue
        problem = bind_problem(host, port, reuse_address=True)
        if problem is not None:
            raise ReceiverError(f"cannot listen for {what} on {hostport(host, port)}: {problem}")
