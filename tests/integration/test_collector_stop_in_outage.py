"""A collector stopped while Postgres is down: what it accepted and could not store is counted.

The collector reaches the real Postgres through a TCP proxy the test cuts; two requests are
accepted (69 spans), their write is retried, and the collector is stopped with a short drain
timeout. The log must say plainly that 2 batches and 69 spans were lost, because the store was
unreachable, and what to change; nothing is stored (dropping after the timeout is the contract).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from _otlp_export import export
from _tcp_proxy import TcpProxy
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from structlog.testing import capture_logs

from agentmesh.collector import Collector, CollectorSettings
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, to_otlp_request

pytestmark = pytest.mark.postgres


@pytest.fixture
async def proxy(postgres_address: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(*postgres_address)
    await proxy.start()
    yield proxy
    await proxy.cut()


def _request(spans: int) -> bytes:
    f = SpanFactory()
    root = f.workflow("outage", run_id=f"run-{f.trace_id[:8]}")
    agents = [f.agent(f"agent-{i}", parent=root) for i in range(spans - 1)]
    return to_otlp_request([root, *agents]).SerializeToString()


async def test_stopping_during_an_outage_counts_every_span_lost(
    proxy: TcpProxy, postgres_address: tuple[str, int]
) -> None:
    host, port = postgres_address
    dsn = os.environ.get("AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test")
    proxied = dsn.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/")
    assert proxied != dsn
    settings = CollectorSettings.load(
        grpc_port=0, http_enabled=False, decode_workers=0, drain_timeout_seconds=1.5
    )
    async with scratch_schema(dsn) as schema:
        store = await PostgresStore(proxied, schema=schema, min_size=1, max_size=2).open()
        try:
            with capture_logs() as logs:
                async with (
                    Collector(settings, store) as collector,
                    grpc.aio.insecure_channel(
                        collector.endpoint.removeprefix("http://")
                    ) as channel,
                ):
                    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
                    await proxy.cut()  # the database goes away
                    assert await export(stub, _request(50))
                    assert await export(stub, _request(19))
                    assert collector.stats.spans_received == 69
        finally:
            await store.close()
        con = await asyncpg.connect(dsn)
        try:
            stored = await con.fetchval(f'SELECT count(*) FROM "{schema}".spans')
        finally:
            await con.close()
    [lost] = [e for e in logs if e["event"].startswith("pipeline drain timed out")]
    assert (lost["dropped_batches"], lost.get("dropped_spans")) == (2, 69)
    assert lost["event"] == (
        "pipeline drain timed out: accepted spans were lost, the store was unreachable at shutdown"
    )
    assert lost["log_level"] == "error"
    assert "AGENTMESH_COLLECTOR_DRAIN_TIMEOUT_SECONDS" in lost["advice"]
    assert stored == 0  # dropped after the drain timeout, as documented
