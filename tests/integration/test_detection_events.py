"""Detections leave the collector as OTLP spans, webhooks and metrics, never slowing it.

A looping run is sent to a real collector over OTLP/HTTP. Its handoff-loop detection reaches:
an OTLP/HTTP endpoint (a local :class:`SinkServer` standing in for LangSmith, Braintrust or
Grafana) as a span in the run's own trace, next to the run's forwarded spans; a webhook (another
sink) as JSON; and the Prometheus exposition. Then a pipeline with dead-slow endpoints shows
detection sinks never hold up ingestion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from agentmesh.collector import Collector, CollectorSettings, MemoryStore, Pipeline, RunGraph
from agentmesh.collector.detection import Detection, detection_id
from agentmesh.collector.events import (
    CollectorMetrics,
    DetectionExporter,
    DetectionFanout,
    WebhookNotifier,
    webhook_targets,
)
from agentmesh.collector.forward import Forwarders
from agentmesh.collector.forward.testing import SinkAnswer, SinkRequest, SinkServer
from agentmesh.collector.hot_state import detection_from_json
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import semconv


def _spans(requests: Sequence[SinkRequest]) -> list[Span]:
    return [
        span
        for request in requests
        for rs in request.export_request().resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def _value(value: AnyValue) -> object:
    if value.HasField("array_value"):
        return [_value(v) for v in value.array_value.values]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


async def _wait_for_span(sink: SinkServer, name: str) -> Span:
    async with asyncio.timeout(20):
        while True:
            found = [s for s in _spans(sink.requests) if s.name == name]
            if found:
                return found[0]
            await sink.wait_for(len(sink.requests) + 1)


async def test_a_loop_detection_reaches_otlp_webhooks_and_metrics() -> None:
    async with SinkServer() as otlp, SinkServer() as hook:
        settings = CollectorSettings.load(
            grpc_port=0,
            http_port=0,
            grpc_grace_seconds=1.0,
            decode_workers=0,
            forward_otlp_endpoints=[otlp.url("/v1/traces")],
        )
        detection_forwarders = Forwarders.from_settings(settings)
        exporter = DetectionExporter(detection_forwarders.offer)
        webhooks = WebhookNotifier(webhook_targets([hook.url("/agentmesh")]))
        metrics = CollectorMetrics(  # read at scrape time, from the collector made below
            stats=lambda: collector.stats,
            forward_stats=lambda: collector.forward_stats,
            exporter=exporter,
            webhooks=webhooks,
        )
        fanout = DetectionFanout(metrics=metrics, exporter=exporter, webhooks=webhooks)
        collector = Collector(settings, MemoryStore(), on_detection=fanout.on_detection)

        f = SpanFactory()
        root = f.workflow("research", run_id="run-loop")
        agents = [f.agent(name, parent=root) for name in ["planner", "researcher", "writer"] * 4]
        body = to_otlp_request([root, *agents]).SerializeToString()
        async with detection_forwarders, fanout, collector:
            async with (
                aiohttp.ClientSession() as client,
                client.post(
                    collector.http_endpoint + "/v1/traces",
                    data=body,
                    headers={"Content-Type": "application/x-protobuf"},
                ) as response,
            ):
                assert response.status == 200
            span = await _wait_for_span(otlp, "agentmesh.detection handoff_loop")
            (webhook,) = await hook.wait_for(1)
            await collector.drain()
            (stored,) = await collector.store.detections(f.trace_id)
            scrape = metrics.render().decode()

    # the OTLP endpoint has the run's spans and, in the same trace, the detection span
    app_spans = {s.span_id.hex(): s for s in _spans(otlp.requests) if s is not span}
    assert set(app_spans) >= {root.span_id, *(a.span_id for a in agents)}
    assert span.trace_id.hex() == f.trace_id
    assert span.parent_span_id.hex() == stored.span_ids[0]
    assert span.parent_span_id.hex() in app_spans
    assert span.start_time_unix_nano == span.end_time_unix_nano == stored.detected_at_ns
    attributes = {kv.key: _value(kv.value) for kv in span.attributes}
    assert attributes[semconv.AGENTMESH_DETECTION_ID] == stored.id
    assert attributes[semconv.AGENTMESH_DETECTION_TYPE] == "handoff_loop"
    assert attributes[semconv.AGENTMESH_DETECTION_SEVERITY] == "error"
    assert attributes[semconv.AGENTMESH_DETECTION_AGENT] == stored.agent == "planner"
    assert attributes[semconv.AGENTMESH_DETECTION_SPAN_IDS] == list(stored.span_ids)
    assert attributes[semconv.AGENTMESH_DETECTION_EXPLANATION] == stored.explanation
    assert attributes[semconv.AGENTMESH_RUN_ID] == "run-loop"
    assert [e.name for e in span.events] == [semconv.EVENT_DETECTION]

    # the webhook got the stored detection as JSON
    assert webhook.path == "/agentmesh"
    assert detection_from_json(webhook.body) == stored

    # the scrape counted it, and read the collector's own counters
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape)
        for s in family.samples
    }
    detections = ("agentmesh_detections_total", (("severity", "error"), ("type", "handoff_loop")))
    assert samples[detections] == 1
    assert samples[("agentmesh_spans_received_total", ())] == 13
    assert samples[("agentmesh_spans_stored_total", ())] == 13
    assert samples[("agentmesh_otlp_requests_total", ())] == 1
    assert samples[("agentmesh_webhook_deliveries_total", (("outcome", "delivered"),))] == 1
    assert samples[("agentmesh_detection_spans_total", (("outcome", "exported"),))] == 1


class EveryRunRule:
    """Reports one detection per run it sees (a real rule, just an eager one)."""

    name = "every_run"

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def evaluate(self, graph: RunGraph) -> list[Detection]:
        if graph.trace_id in self._seen:
            return []
        self._seen.add(graph.trace_id)
        return [
            Detection(
                id=detection_id(self.name, graph.trace_id, ""),
                type=self.name,
                severity="warning",
                trace_id=graph.trace_id,
                run_id=graph.run_id,
                agent=None,
                span_ids=(),
                explanation="a run happened",
                detected_at_ns=1,
            )
        ]


async def test_dead_slow_endpoints_never_hold_up_the_pipeline() -> None:
    runs = 40
    async with SinkServer(always=SinkAnswer(hang=True)) as dead:
        settings = CollectorSettings.load(
            forward_otlp_endpoints=[dead.url("/v1/traces")],
            forward_queue_max_requests=2,
            forward_concurrency=1,
            forward_timeout_seconds=300.0,
            forward_flush_timeout_seconds=0.1,
        )
        forwarders = Forwarders.from_settings(settings)
        exporter = DetectionExporter(forwarders.offer, max_batch=1)
        webhooks = WebhookNotifier(
            webhook_targets([dead.url("/hook")]),
            queue_max=3,
            timeout_seconds=300.0,
            flush_timeout_seconds=0.1,
        )
        fanout = DetectionFanout(exporter=exporter, webhooks=webhooks)
        store = MemoryStore()
        async with asyncio.timeout(60):  # a hang guard, not a timing assertion
            async with forwarders, fanout:
                async with Pipeline(
                    store, rules=[EveryRunRule()], on_detection=fanout.on_detection
                ) as pipeline:
                    for index in range(runs):
                        f = SpanFactory()
                        root = f.workflow(f"run-{index}")
                        assert pipeline.offer([root, f.agent("a", parent=root)])
                    await pipeline.drain()
                    assert pipeline.stats.detections == runs
                    assert pipeline.stats.spans_stored == runs * 2
                during = webhooks.stats
    assert len(await store.detections()) == runs
    assert during.offered == runs
    assert during.queued <= 3  # the bound
    assert during.in_flight <= 1  # the one delivery the dead endpoint holds
    assert during.dropped == runs - during.queued - during.in_flight >= runs - 4
    assert webhooks.stats.dropped == runs
    assert exporter.stats.exported == runs  # handed to the forwarders, which drop the excess
    assert forwarders.stats["otlp-1"].dropped_requests >= runs - 3
