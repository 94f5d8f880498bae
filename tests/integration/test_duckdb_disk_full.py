"""The disk under a DuckDB store fills up: writes wait and are retried, nothing is lost.

A real DuckDB file under a real limit: the process's file size limit (``_disk_limit.py``)
makes the kernel refuse to grow any file past it, as a full disk refuses to grow it (DuckDB
reports "File too large" instead of "No space left on device"). Lifting the limit is the disk
getting room again.
"""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import grpc
import pytest
from _disk_limit import disk_full_beyond
from _otlp_export import export, resend, send_each
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from agentmesh.collector import Collector, CollectorSettings, DuckDBStore, SpanRecord
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import StoreUnavailableError


def _bulky(f: SpanFactory, parent: SpanRecord) -> SpanRecord:
    """A tool span carrying 2 KB that does not compress (a real result would, a little)."""
    return f.span(
        "execute_tool search", parent=parent, attributes={"result": os.urandom(1_000).hex()}
    )


def _spans(prefix: str, runs: int) -> list[SpanRecord]:
    spans: list[SpanRecord] = []
    for i in range(runs):
        f = SpanFactory()
        root = f.workflow("disk", run_id=f"{prefix}-{i}")
        spans += [root, f.agent("writer", parent=root)]
        spans += [_bulky(f, root) for _ in range(4)]
    return spans


async def test_a_commit_the_disk_refuses_is_unavailable_then_goes_in(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    async with DuckDBStore(path) as store:
        assert await store.write_spans(_spans("before", 5)) == 30
        batch = _spans("during", 100)  # about 1 MB: more than the room left
        with disk_full_beyond(path, 64_000), pytest.raises(StoreUnavailableError) as refused:
            await store.write_spans(batch)
        assert "File too large" in str(refused.value)
        assert await store.count_spans() == 30  # the refused commit left nothing half-written
        assert await store.write_spans(batch) == 600  # the same batch, retried once there is room
        assert await store.count_spans() == 630
        assert store.reopens == 0


async def test_an_invalidated_database_is_opened_again_once_there_is_room(
    tmp_path: Path,
) -> None:
    # every commit checkpoints: the write-ahead log fits, the checkpoint does not, and DuckDB
    # invalidates the database, as it does when a checkpoint hits a full disk
    path = tmp_path / "store.duckdb"
    async with DuckDBStore(path, checkpoint_threshold="1KB") as store:
        assert await store.write_spans(_spans("before", 5)) == 30
        batch = _spans("during", 40)
        with disk_full_beyond(path, 100_000):
            with pytest.raises(StoreUnavailableError) as first:
                await store.write_spans(batch)
            assert "opened again" in str(first.value)
            with pytest.raises(StoreUnavailableError):  # still no room: reopening fails too
                await store.write_spans(batch)
            with pytest.raises(StoreUnavailableError):
                await store.runs(1)
        assert await store.write_spans(batch) >= 0  # room again: opened anew, retried
        assert await store.count_spans() == 30 + 240  # whether or not the log kept it, once
        assert store.reopens >= 1
        assert await store.write_spans(_spans("after", 1)) == 6
    async with DuckDBStore(path) as reopened:
        assert await reopened.count_spans() == 30 + 240 + 6


async def test_a_store_closed_while_the_disk_is_still_full_closes_quietly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.duckdb"
    store = await DuckDBStore(path, checkpoint_threshold="1KB").open()
    assert await store.write_spans(_spans("before", 5)) == 30
    with disk_full_beyond(path, 100_000):
        with pytest.raises(StoreUnavailableError):
            await store.write_spans(_spans("during", 40))
        await store.close()  # shutting down on a full disk: no error on the way out
    async with DuckDBStore(path) as reopened:
        assert await reopened.count_spans() >= 30


def _request(i: int) -> bytes:
    f = SpanFactory()
    root = f.workflow("disk", run_id=f"run-{i}")
    spans = [root, f.agent("writer", parent=root)]
    spans += [_bulky(f, root) for _ in range(4)]
    return to_otlp_request(spans).SerializeToString()


async def test_a_collector_on_a_full_disk_pushes_back_and_loses_no_span(tmp_path: Path) -> None:
    path = tmp_path / "collector.duckdb"
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        decode_workers=0,
        duckdb_path=path,
        queue_max_batches=4,
        retry_after_seconds=1,
    )
    async with (
        Collector(settings) as collector,
        grpc.aio.insecure_channel(collector.endpoint.removeprefix("http://")) as channel,
        aiohttp.ClientSession() as http,
    ):
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        assert await export(stub, _request(0))
        await collector.drain()
        with disk_full_beyond(path, 32_000):
            accepted, refused = await send_each(stub, (_request(i) for i in range(1, 40)))
            assert refused, "the queue never filled: no backpressure"
            async with http.get(collector.http_endpoint + "/readyz") as ready:
                assert ready.status == 503
                assert (await ready.json())["checks"]["store"].startswith("unavailable")
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        accepted += 1 + await resend(stub, refused)  # room again: the retries get in
        await collector.drain()
        async with http.get(collector.http_endpoint + "/readyz") as ready:
            assert ready.status == 200
        stats = collector.stats
        stored = await collector.store.count_spans()
        runs = await collector.store.runs()
    assert accepted == 40
    assert stored == 6 * 40
    assert len(runs) == 40
    assert stats.batches_failed == 0
    assert stats.store_write_retries >= 1


async def test_a_collector_reopens_an_invalidated_database_and_counts_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "collector.duckdb"
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        decode_workers=0,
        duckdb_path=path,
        retry_after_seconds=1,
        duckdb_checkpoint_threshold="1KB",  # see above
    )
    async with (
        Collector(settings) as collector,
        grpc.aio.insecure_channel(collector.endpoint.removeprefix("http://")) as channel,
        aiohttp.ClientSession() as http,
    ):
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        assert await export(stub, _request(0))
        await collector.drain()
        with disk_full_beyond(path, 100_000):
            accepted, refused = await send_each(stub, (_request(i) for i in range(1, 20)))
        accepted += 1 + await resend(stub, refused)
        await collector.drain()
        async with http.get(collector.http_endpoint + "/metrics") as scraped:
            metrics = await scraped.text()
        reopens = collector.stats.store_reopens
        stored = await collector.store.count_spans()
    assert accepted == 20
    assert stored == 6 * 20  # every span once, whether the log kept a retried batch or not
    assert reopens >= 1
    assert f"agentmesh_store_reopens_total {float(reopens)}" in metrics
