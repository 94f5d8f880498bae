"""Prometheus metrics: detections counted, pipeline counters read at scrape time, served."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from agentmesh.collector import DuckDBStore, MemoryStore, Pipeline
from agentmesh.collector.detection import Detection
from agentmesh.collector.events import METRICS_PATH, CollectorMetrics
from agentmesh.collector.forward import ForwarderStats
from agentmesh.collector.pipeline import PipelineStats
from agentmesh.collector.service import CollectorStats
from agentmesh.collector.testing import SpanFactory


def _detection(type_: str, severity: str = "error", key: str = "k") -> Detection:
    return Detection(f"det-{type_}-{key}", type_, severity, "t" * 32, "r", None, (), "x", 1)  # pyright: ignore[reportArgumentType]


def _samples(metrics: CollectorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the exposition the way Prometheus does: (sample name, labels) → value."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_detections_are_counted_by_type_and_severity() -> None:
    metrics = CollectorMetrics()
    for d in [
        _detection("stuck"),
        _detection("stuck", key="2"),
        _detection("ping_pong", "warning"),
    ]:
        metrics.record(d)
    samples = _samples(metrics)
    assert samples[("agentmesh_detections_total", (("severity", "error"), ("type", "stuck")))] == 2
    key = ("agentmesh_detections_total", (("severity", "warning"), ("type", "ping_pong")))
    assert samples[key] == 1
    assert metrics.detections("stuck", "error") == 2
    assert metrics.detections("runaway", "critical") == 0


def test_two_collectors_in_one_process_keep_their_own_counts() -> None:
    first, second = CollectorMetrics(), CollectorMetrics()
    first.record(_detection("stuck"))
    assert (first.detections("stuck", "error"), second.detections("stuck", "error")) == (1, 0)


async def test_the_process_and_its_store_memory_are_exposed(tmp_path: Path) -> None:
    async with DuckDBStore(tmp_path / "m.duckdb") as store:
        await store.write_spans([SpanFactory().workflow("w", run_id="r")])
        sampled = store.memory_sampled
        assert sampled is not None
        assert sampled >= 0
        metrics = CollectorMetrics(stats=lambda: CollectorStats(store_memory_bytes=sampled))
        samples = _samples(metrics)
    assert samples[("agentmesh_store_memory_bytes", ())] == sampled
    resident = samples[("process_resident_memory_bytes", ())]
    assert resident > 10 * 2**20  # a Python process with DuckDB loaded
    assert samples[("process_cpu_seconds_total", ())] > 0
    absent = _samples(CollectorMetrics(stats=lambda: CollectorStats()))  # Postgres, memory
    assert ("agentmesh_store_memory_bytes", ()) not in absent


async def test_pipeline_counters_and_latency_are_read_at_scrape_time() -> None:
    async with Pipeline(MemoryStore()) as pipeline:
        metrics = CollectorMetrics(
            stats=lambda: pipeline.stats,
            ingest_latency_ms=pipeline.ingest_to_graph_quantiles_ms,
        )
        before = _samples(metrics)
        assert before[("agentmesh_spans_received_total", ())] == 0
        assert ("agentmesh_ingest_to_graph_seconds", (("quantile", "0.99"),)) not in before
        f = SpanFactory()
        root = f.workflow("w")
        assert pipeline.offer([root, f.agent("a", parent=root), f.agent("b", parent=root)])
        await pipeline.drain()
        after = _samples(metrics)
    assert after[("agentmesh_spans_received_total", ())] == 3
    assert after[("agentmesh_spans_stored_total", ())] == 3
    assert after[("agentmesh_queue_batches", ())] == 0
    assert after[("agentmesh_queue_spans", ())] == 0
    for quantile in ("0.5", "0.9", "0.99"):
        assert after[("agentmesh_ingest_to_graph_seconds", (("quantile", quantile),))] >= 0
    assert ("agentmesh_live_traces", ()) not in after  # PipelineStats has no such field


def test_runs_finished_and_failed_are_labelled_by_workflow() -> None:
    stats = CollectorStats(
        runs_finished=5, runs_failed=2, runs_by_workflow={"essay": (4, 2), "(none)": (1, 0)}
    )
    samples = _samples(CollectorMetrics(stats=lambda: stats))
    runs = {
        (name, labels[0][1]): value
        for (name, labels), value in samples.items()
        if name in ("agentmesh_runs_finished_total", "agentmesh_runs_failed_total")
    }
    assert runs == {
        ("agentmesh_runs_finished_total", "essay"): 4,
        ("agentmesh_runs_failed_total", "essay"): 2,
        ("agentmesh_runs_finished_total", "(none)"): 1,
        ("agentmesh_runs_failed_total", "(none)"): 0,
    }


def test_forwarder_counters_are_labelled_by_forwarder_and_outcome() -> None:
    stats = {
        "langsmith": ForwarderStats(sent_requests=4, sent_spans=40, retried=2, queued=1),
        "otlp-1": ForwarderStats(dropped_requests=3, dropped_spans=9),
    }
    samples = _samples(CollectorMetrics(forward_stats=lambda: stats))
    sent = ("agentmesh_forward_requests_total", (("forwarder", "langsmith"), ("outcome", "sent")))
    assert samples[sent] == 4
    dropped = ("agentmesh_forward_spans_total", (("forwarder", "otlp-1"), ("outcome", "dropped")))
    assert samples[dropped] == 9
    assert samples[("agentmesh_forward_retries_total", (("forwarder", "langsmith"),))] == 2
    assert samples[("agentmesh_forward_queue_requests", (("forwarder", "langsmith"),))] == 1


def test_a_failing_source_leaves_the_others_in_the_scrape() -> None:
    def broken() -> PipelineStats:
        raise RuntimeError("stats went away")

    metrics = CollectorMetrics(stats=broken, forward_stats=lambda: {"x": ForwarderStats()})
    metrics.record(_detection("stuck"))
    samples = _samples(metrics)
    assert samples[("agentmesh_detections_total", (("severity", "error"), ("type", "stuck")))] == 1
    assert ("agentmesh_forward_retries_total", (("forwarder", "x"),)) in samples
    assert not any(name.startswith("agentmesh_spans") for name, _ in samples)


async def test_served_over_http_by_the_aiohttp_handler() -> None:
    metrics = CollectorMetrics(stats=lambda: PipelineStats(spans_received=5))
    metrics.record(_detection("context_loss", "warning"))
    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics.aiohttp_handler())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{port}{METRICS_PATH}") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    finally:
        await runner.cleanup()
    assert 'agentmesh_detections_total{severity="warning",type="context_loss"} 1.0' in text
    assert "agentmesh_spans_received_total 5.0" in text
