"""The collector keeps Redis's live state and publishes detections, and survives a dead Redis."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from agentmesh.collector import Collector, CollectorSettings
from agentmesh.collector.hot_state import RedisHotState
from agentmesh.collector.testing import SpanFactory, to_otlp_request


def _looping_request(run_id: str) -> tuple[str, bytes]:
    f = SpanFactory()
    root = f.workflow("loopy", run_id=run_id)
    spans = [root]
    previous = None
    for name in ["a", "b"] * 6:
        spans.append(f.agent(name, parent=root, handoff_from=previous))
        previous = name
    return f.trace_id, to_otlp_request(spans).SerializeToString()


async def _send(endpoint: str, payload: bytes) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    async with grpc.aio.insecure_channel(endpoint.removeprefix("http://")) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        await stub.Export(ExportTraceServiceRequest.FromString(payload))


async def test_live_state_and_detections_reach_redis(
    redis_address: tuple[str, int], tmp_path: Path
) -> None:
    host, port = redis_address
    prefix = f"agentmesh-test-{secrets.token_hex(4)}:"
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        duckdb_path=tmp_path / "c.duckdb",
        redis_url=f"redis://{host}:{port}/0",
        redis_prefix=prefix,
    )
    reader = RedisHotState(f"redis://{host}:{port}/0", prefix=prefix)
    await reader.open()
    try:
        async with reader.subscribe_detections() as detections, Collector(settings) as collector:
            trace_id, payload = _looping_request("run-hot")
            await _send(collector.endpoint, payload)
            await collector.drain()
            detection = await asyncio.wait_for(anext(aiter(detections)), timeout=5)
            assert detection.type == "ping_pong"
            assert detection.trace_id == trace_id
            state = await reader.run(trace_id)
            assert state is not None
            assert state.run_id == "run-hot"
            live = await reader.live_runs()
            assert [s.trace_id for s in live] == [trace_id]
    finally:
        await reader.close()


async def test_dead_redis_does_not_stop_ingestion(tmp_path: Path) -> None:
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        duckdb_path=tmp_path / "c.duckdb",
        redis_url="redis://127.0.0.1:1/0",
    )
    async with Collector(settings) as collector:
        trace_id, payload = _looping_request("run-dead-redis")
        await _send(collector.endpoint, payload)
        await collector.drain()
        assert await collector.store.count_spans() == 13
        assert len(await collector.store.detections(trace_id)) == 1
