"""Postgres goes away under a running collector: it pushes back, reports not ready, loses nothing.

The collector reaches the real Postgres through a TCP proxy the test can cut (every connection
dropped, new ones refused) and restore, as a database restart or a network cut would. Spans
keep arriving over OTLP/gRPC meanwhile; the test re-sends what was refused, as an exporter
does, and checks that every span accepted is in Postgres once the database is back.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import grpc
import pytest
from _otlp_export import export, resend, send_each
from _tcp_proxy import TcpProxy
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, to_otlp_request


@pytest.fixture
async def proxy(postgres_address: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(*postgres_address)
    await proxy.start()
    yield proxy
    await proxy.cut()


def _request(i: int) -> bytes:
    f = SpanFactory()
    root = f.workflow("outage", run_id=f"run-{i}")
    spans = [root, f.agent("writer", parent=root), f.chat(parent=root, cost_usd=0.001)]
    return to_otlp_request(spans).SerializeToString()


async def _grpc_health(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return answer.status


async def _ready(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_postgres_outage_costs_latency_not_spans(
    proxy: TcpProxy, postgres_address: tuple[str, int]
) -> None:
    host, port = postgres_address
    dsn = os.environ.get("AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test")
    proxied = dsn.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/")
    assert proxied != dsn
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, queue_max_batches=4, retry_after_seconds=1
    )
    async with scratch_schema(dsn) as schema:
        store = await PostgresStore(proxied, schema=schema, min_size=1, max_size=2).open()
        try:
            async with (
                Collector(settings, store) as collector,
                grpc.aio.insecure_channel(collector.endpoint.removeprefix("http://")) as channel,
                aiohttp.ClientSession() as http,
            ):
                stub = trace_service_pb2_grpc.TraceServiceStub(channel)
                ready_url = collector.http_endpoint + "/readyz"
                assert await export(stub, _request(0))
                await collector.drain()
                assert (await _ready(http, ready_url))[0] == 200
                assert await _grpc_health(channel) == health_pb2.HealthCheckResponse.SERVING

                await proxy.cut()  # the database goes away
                accepted, refused = await send_each(stub, (_request(i) for i in range(1, 40)))
                accepted += 1
                assert refused, "the queue never filled: no backpressure"
                status, answer = await _ready(http, ready_url)
                async with http.get(collector.http_endpoint + "/healthz") as alive:
                    assert alive.status == 200  # alive all along: no restart is needed
                async with http.get(collector.http_endpoint + "/v1/runs") as reading:
                    assert reading.status == 503  # the API says so in words, not a traceback
                    assert reading.headers["Retry-After"] == "1"
                    assert "PostgreSQL" in (await reading.json())["error"]
                assert status == 503
                assert await _grpc_health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
                assert answer["checks"]["store"].startswith("unavailable")  # type: ignore[index]
                assert collector.stats.store_unavailable == 1
                async with http.get(collector.http_endpoint + "/metrics") as response:
                    assert "agentmesh_store_unavailable 1.0" in await response.text()

                await proxy.start()  # the database is back: the exporter's retries get in
                accepted += await resend(stub, refused)
                await collector.drain()
                assert (await _ready(http, ready_url))[0] == 200
                assert await _grpc_health(channel) == health_pb2.HealthCheckResponse.SERVING
                stats = collector.stats
        finally:
            await store.close()
        con = await asyncpg.connect(dsn)
        try:
            stored = await con.fetchval(f'SELECT count(*) FROM "{schema}".spans')
            runs = await con.fetchval(f'SELECT count(*) FROM "{schema}".runs')
        finally:
            await con.close()
    assert accepted == 40
    assert stored == 3 * 40  # every span accepted, none twice
    assert runs == 40
    assert stats.batches_failed == 0
    assert stats.store_write_retries >= 1
    assert stats.store_unavailable == 0


async def test_the_probes_need_no_token_when_the_api_does() -> None:
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, auth_bearer_tokens=["s3cret-token"]
    )
    async with Collector(settings, MemoryStore()) as collector, aiohttp.ClientSession() as http:
        base = collector.http_endpoint
        status, answer = await _ready(http, base + "/readyz")
        assert status == 200
        assert answer == {
            "status": "ready",
            "checks": {"pipeline": "ok", "store": "ok", "queue": "ok"},
        }
        async with http.get(base + "/healthz") as alive:
            assert alive.status == 200
        async with http.get(base + "/v1/runs") as refused:
            assert refused.status == 401
        async with grpc.aio.insecure_channel(collector.endpoint.removeprefix("http://")) as channel:
            assert await _grpc_health(channel) == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as export:
                await trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                    trace_service_pb2.ExportTraceServiceRequest(), timeout=10
                )
            assert export.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not collector.readiness().ready  # stopped: not running
