"""Postgres goes away while no span arrives: the collector says so, then says it is back.

Writes tell whether the store answers only while there are writes. Here the collector is
idle: it reaches the real Postgres through a TCP proxy the test cuts (connections dropped, new
ones refused) or freezes (a partition: nothing answers, nothing closes), and its store check
(``store_probe_seconds``) must turn ``/readyz``, the gRPC health service and
``agentmesh_store_unavailable`` to not ready, all three together and in agreement with what
an API read meets, then back to ready by itself once the proxy passes bytes again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from _tcp_proxy import TcpProxy
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from agentmesh.collector import Collector, CollectorSettings
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, to_otlp_request

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def proxy(postgres_address: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(*postgres_address)
    await proxy.start()
    yield proxy
    proxy.thaw()
    await proxy.cut()


def _dsn(postgres_address: tuple[str, int]) -> str:
    host, port = postgres_address
    return os.environ.get(
        "AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test"
    )


class Probes:
    """What a load balancer, Kubernetes and Prometheus each read of the collector."""

    def __init__(
        self, collector: Collector, http: aiohttp.ClientSession, channel: grpc.aio.Channel
    ) -> None:
        self._base = collector.http_endpoint
        self._http = http
        self._health = health_pb2_grpc.HealthStub(channel)
        self.collector = collector

    async def readyz(self) -> tuple[int, dict[str, str]]:
        async with self._http.get(self._base + "/readyz") as response:
            body = await response.json()
            return response.status, body["checks"]

    async def grpc(self) -> int:
        answer = await self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        return answer.status

    async def metric(self) -> str:
        async with self._http.get(self._base + "/metrics") as response:
            lines = (await response.text()).splitlines()
        return next(line for line in lines if line.startswith("agentmesh_store_unavailable "))

    async def read_runs(self) -> int:
        async with self._http.get(self._base + "/v1/runs") as response:
            return response.status

    async def until_ready(self, ready: bool) -> None:
        async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
            while (await self.readyz())[0] != (200 if ready else 503):  # noqa: ASYNC110 - polled over HTTP
                await asyncio.sleep(0.05)


@pytest.mark.parametrize("outage", ["cut", "partition"])
async def test_an_idle_collector_reports_a_lost_database_and_its_return(
    outage: str, proxy: TcpProxy, postgres_address: tuple[str, int]
) -> None:
    dsn = _dsn(postgres_address)
    host, port = postgres_address
    proxied = dsn.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/")
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, store_probe_seconds=0.5
    )
    async with scratch_schema(dsn) as schema:
        store = await PostgresStore(
            proxied, schema=schema, min_size=1, max_size=4, command_timeout_seconds=60
        ).open()
        try:
            async with (
                Collector(settings, store) as collector,
                grpc.aio.insecure_channel(collector.endpoint.removeprefix("http://")) as channel,
                aiohttp.ClientSession() as http,
            ):
                probes = Probes(collector, http, channel)
                f = SpanFactory()
                request = to_otlp_request([f.workflow("idle", run_id="run-before")])
                await trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                    trace_service_pb2.ExportTraceServiceRequest.FromString(
                        request.SerializeToString()
                    ),
                    timeout=10,
                )
                await collector.drain()  # then nothing more arrives
                assert (await probes.readyz())[0] == 200

                if outage == "cut":
                    await proxy.cut()
                else:
                    proxy.freeze()
                await probes.until_ready(False)
                status, checks = await probes.readyz()
                assert status == 503
                assert checks["store"].startswith("unavailable")
                assert checks["pipeline"] == "ok"
                assert await probes.grpc() == NOT_SERVING
                assert await probes.metric() == "agentmesh_store_unavailable 1.0"
                assert collector.stats.store_unavailable == 1
                if outage == "cut":  # a partitioned read waits for the command timeout
                    assert await probes.read_runs() == 503  # what readiness said

                if outage == "cut":
                    await proxy.start()
                else:
                    proxy.thaw()
                await probes.until_ready(True)  # by itself: no span is sent
                assert (await probes.readyz())[1]["store"] == "ok"
                assert await probes.grpc() == SERVING
                assert await probes.metric() == "agentmesh_store_unavailable 0.0"
                assert await probes.read_runs() == 200
                assert collector.stats.spans_received == 1
        finally:
            await store.close()
