"""The detection fan-out: every sink gets each detection; none can raise into or stall it."""

from __future__ import annotations

import asyncio

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.detection import Detection
from agentmesh.collector.events import (
    CollectorMetrics,
    DetectionExporter,
    DetectionFanout,
    WebhookNotifier,
    WebhookTarget,
)
from agentmesh.collector.forward.testing import SinkServer
from agentmesh.collector.hot_state import detection_from_json

TRACE = "5b8efff798038103d269b633813fc60c"


def _detection(key: str) -> Detection:
    return Detection(
        f"det-{key}", "stuck", "error", TRACE, "run-1", "planner", ("eee19b7ec3c1b174",), "x", 5
    )


async def test_every_sink_gets_each_detection_even_when_one_raises() -> None:
    exported: list[int] = []
    seen_sync: list[str] = []
    seen_async: list[str] = []

    def broken(detection: Detection) -> None:
        raise RuntimeError("listener bug")

    async def slow_listener(detection: Detection) -> None:
        await asyncio.sleep(0)
        seen_async.append(detection.id)

    async with SinkServer() as hook:
        metrics = CollectorMetrics()
        fanout = DetectionFanout(
            metrics=metrics,
            exporter=DetectionExporter(lambda r, n: exported.append(n), flush_seconds=60),
            webhooks=WebhookNotifier([WebhookTarget(hook.url("/hook"))]),
            listeners=[broken, lambda d: seen_sync.append(d.id), slow_listener],
        )
        async with fanout:
            for key in ("a", "b"):
                assert fanout.on_detection(_detection(key)) is None
            await hook.wait_for(2)
        bodies = sorted(detection_from_json(r.body).id for r in hook.requests)
    assert metrics.detections("stuck", "error") == 2
    assert exported == [2]  # flushed on leaving
    assert bodies == seen_sync == sorted(seen_async) == ["det-a", "det-b"]
    stats = fanout.stats
    assert (stats.detections, stats.sink_failures, stats.listener_calls_dropped) == (2, 2, 0)


async def test_a_stalled_listener_neither_blocks_the_caller_nor_the_shutdown() -> None:
    never = asyncio.Event()
    started: list[str] = []

    async def stalled(detection: Detection) -> None:
        started.append(detection.id)
        await never.wait()

    fanout = DetectionFanout(
        listeners=[stalled], max_listener_tasks=2, listener_timeout_seconds=0.05
    )
    async with asyncio.timeout(10):
        async with fanout:
            for key in "abc":
                fanout.on_detection(_detection(key))  # returns at once
            await asyncio.sleep(0)
            during = fanout.stats
    assert started == ["det-a", "det-b"]
    assert (during.listener_tasks, during.listener_calls_dropped) == (2, 1)
    assert (fanout.stats.listener_tasks, fanout.stats.listener_calls_dropped) == (0, 3)


async def test_a_failing_exporter_sink_is_contained() -> None:
    def sink(request: ExportTraceServiceRequest, spans: int) -> None:
        raise OSError("forwarders gone")

    exporter = DetectionExporter(sink, max_batch=1, flush_seconds=60)
    async with DetectionFanout(exporter=exporter) as fanout:
        fanout(_detection("a"))
    assert (exporter.stats.offered, exporter.stats.dropped) == (1, 1)
