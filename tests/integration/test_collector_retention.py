"""A collector with a retention deletes the old runs of its DuckDB file at start, and serves on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from agentmesh.collector import Collector, CollectorSettings, DuckDBStore, SpanRecord
from agentmesh.collector.testing import SpanFactory, graph_of, to_otlp_request

DAY_NS = 86_400 * 10**9


def _spans(f: SpanFactory, run_id: str) -> list[SpanRecord]:
    root = f.workflow("research", run_id=run_id)
    return [root, f.agent("writer", parent=root), f.chat(parent=root, cost_usd=0.01)]


async def test_old_runs_are_deleted_whole_and_new_spans_still_stored(tmp_path: Path) -> None:
    path = tmp_path / "retained.duckdb"
    now = time.time_ns()
    old = SpanFactory(start_ns=now - 3 * DAY_NS)
    recent = SpanFactory(start_ns=now - DAY_NS // 2)
    async with DuckDBStore(path) as store:
        for f, run_id in ((old, "run-old"), (recent, "run-recent")):
            spans = _spans(f, run_id)
            await store.write_spans(spans)
            await store.write_graph(graph_of(spans))
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, duckdb_path=path, retention_days=2
    )
    async with Collector(settings) as collector:
        for _ in range(500):  # the first pass runs at start
            if collector.stats.runs_pruned:
                break
            await asyncio.sleep(0.01)
        fresh = SpanFactory(start_ns=time.time_ns())
        request = to_otlp_request(_spans(fresh, "run-fresh")).SerializeToString()
        async with grpc.aio.insecure_channel(collector.endpoint.removeprefix("http://")) as ch:
            await trace_service_pb2_grpc.TraceServiceStub(ch).Export(
                trace_service_pb2.ExportTraceServiceRequest.FromString(request)
            )
        await collector.drain()
        base = f"http://127.0.0.1:{collector.http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
            async with http.get(f"{base}/v1/runs") as response:
                runs = await response.json()
        stats = collector.stats
        store = collector.store
        assert await store.spans(old.trace_id) == []
        assert await store.graph(old.trace_id) is None
        assert len(await store.spans(recent.trace_id)) == 3
    assert (stats.runs_pruned, stats.spans_pruned, stats.prune_failures) == (1, 3, 0)
    assert "agentmesh_runs_pruned_total 1.0" in metrics
    assert "agentmesh_spans_pruned_total 3.0" in metrics
    assert sorted(r["run_id"] for r in runs["runs"]) == ["run-fresh", "run-recent"]
