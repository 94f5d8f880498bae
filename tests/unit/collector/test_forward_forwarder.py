"""A forwarder against a local sink server: wire shape, retries, drops, bounded shutdown."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import SecretStr
from structlog.testing import capture_logs

from agentmesh.collector.forward import (
    Forwarder,
    ForwarderStats,
    ForwardPayload,
    ForwardTarget,
    RetryPolicy,
)
from agentmesh.collector.forward.payload import without_step_markers
from agentmesh.collector.forward.testing import SinkAnswer, SinkServer
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import semconv

PATH = "/otel/v1/traces"


def _payload(name: str, spans: int = 2) -> ForwardPayload:
    f = SpanFactory()
    root = f.workflow(name)
    records = [root] + [f.agent(f"{name}-{i}", parent=root) for i in range(spans - 1)]
    return ForwardPayload(to_otlp_request(records), spans)


def _forwarder(url: str, **options: object) -> Forwarder:
    target = ForwardTarget("sink", url, {"x-api-key": SecretStr("s3cret-key")})
    defaults: dict[str, object] = {
        "retry": RetryPolicy(max_seconds=10.0, initial_seconds=0.01),
        "flush_timeout_seconds": 5.0,
    }
    defaults.update(options)
    return Forwarder(target, **defaults)  # pyright: ignore[reportArgumentType]


async def _until(forwarder: Forwarder, done: Callable[[ForwarderStats], bool]) -> ForwarderStats:
    async with asyncio.timeout(10):
        while not done(forwarder.stats):  # noqa: ASYNC110 - counters have no event to await
            await asyncio.sleep(0.01)
    return forwarder.stats


async def test_sends_gzipped_protobuf_with_headers() -> None:
    async with SinkServer() as sink:
        async with _forwarder(sink.url(PATH)) as forwarder:
            forwarder.offer(_payload("first", spans=3))
            stats = await _until(forwarder, lambda s: s.sent_requests == 1)
        (request,) = sink.requests
    assert request.method == "POST"
    assert request.path == PATH
    assert request.headers["x-api-key"] == "s3cret-key"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["content-encoding"] == "gzip"
    assert request.span_names() == [
        "invoke_workflow first",
        "invoke_agent first-0",
        "invoke_agent first-1",
    ]
    assert stats.sent_spans == 3
    assert stats.retried == 0


async def test_payload_is_the_request_as_received() -> None:
    payload = _payload("same")
    body = gzip.decompress(await payload.body())
    assert ExportTraceServiceRequest.FromString(body) == payload._request  # pyright: ignore[reportPrivateUsage]
    assert await payload.body() is await payload.body()


async def test_raw_bytes_are_forwarded_without_parsing_them_again() -> None:
    raw = _payload("raw")._request.SerializeToString()  # pyright: ignore[reportPrivateUsage]
    payload = ForwardPayload(raw, 3)
    assert gzip.decompress(await payload.body()) == raw


async def test_retries_on_429_and_503_then_sends() -> None:
    async with SinkServer() as sink:
        sink.script(SinkAnswer(429, retry_after="0"), SinkAnswer(503, retry_after="0"))
        async with _forwarder(sink.url(PATH)) as forwarder:
            forwarder.offer(_payload("retried"))
            stats = await _until(forwarder, lambda s: s.sent_requests == 1)
        assert len(sink.requests) == 3
        assert {r.body for r in sink.requests} == {sink.requests[0].body}
    assert stats.retried == 2
    assert stats.failed_requests == 0


async def test_retry_after_beyond_the_budget_gives_up() -> None:
    async with SinkServer() as sink:
        sink.script(SinkAnswer(503, retry_after="60"))
        retry = RetryPolicy(max_seconds=5.0)
        async with _forwarder(sink.url(PATH), retry=retry) as forwarder:
            forwarder.offer(_payload("late"))
            stats = await _until(forwarder, lambda s: s.failed_requests == 1)
        assert len(sink.requests) == 1
    assert stats.retried == 0
    assert stats.failed_spans == 2


async def test_no_retry_on_400_and_logged_without_secrets() -> None:
    async with SinkServer(always=SinkAnswer(400)) as sink:
        with capture_logs() as logs:
            async with _forwarder(sink.url(PATH)) as forwarder:
                forwarder.offer(_payload("bad"))
                forwarder.offer(_payload("bad-too"))
                stats = await _until(forwarder, lambda s: s.failed_requests == 2)
        assert len(sink.requests) == 2
    assert stats.retried == 0
    failures = [e for e in logs if e["event"] == "forwarding failed, request dropped"]
    assert len(failures) == 1  # the same failure again is not logged again
    assert "HTTP 400" in failures[0]["reason"]
    assert "s3cret-key" not in repr(logs)


async def test_connection_errors_are_retried_until_the_budget() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    retry = RetryPolicy(max_seconds=0.5, initial_seconds=0.02)
    async with _forwarder(f"http://127.0.0.1:{port}{PATH}", retry=retry) as forwarder:
        forwarder.offer(_payload("nowhere"))
        stats = await _until(forwarder, lambda s: s.failed_requests == 1)
    assert stats.retried >= 1
    assert stats.sent_requests == 0


async def test_full_queue_drops_the_oldest() -> None:
    async with SinkServer() as sink:
        sink.script(SinkAnswer(hang=True))  # the first request hangs until its timeout
        forwarder = _forwarder(
            sink.url(PATH), queue_max_requests=2, concurrency=1, timeout_seconds=1.0
        )
        with capture_logs() as logs:
            async with forwarder:
                forwarder.offer(_payload("p0"))
                await sink.wait_for(1)
                for index in range(1, 6):
                    forwarder.offer(_payload(f"p{index}"))
                full = forwarder.stats
                stats = await _until(forwarder, lambda s: s.sent_requests == 3)
        names = [r.span_names()[0] for r in sink.requests]
    assert (full.dropped_requests, full.queued, full.in_flight) == (3, 2, 1)
    assert names == [
        "invoke_workflow p0",
        "invoke_workflow p0",
        "invoke_workflow p4",
        "invoke_workflow p5",
    ]
    assert (stats.dropped_requests, stats.dropped_spans, stats.offered_requests) == (3, 6, 6)
    assert [e["event"] for e in logs].count("forward queue full, dropping the oldest requests") == 1


async def test_shutdown_is_bounded_and_counts_what_is_left() -> None:
    async with SinkServer(always=SinkAnswer(hang=True)) as sink:
        forwarder = _forwarder(sink.url(PATH), concurrency=1, flush_timeout_seconds=0.2)
        await forwarder.start()
        for index in range(4):
            forwarder.offer(_payload(f"stuck{index}"))
        await sink.wait_for(1)
        async with asyncio.timeout(10):
            await forwarder.stop()
        stats = forwarder.stats
    assert (stats.dropped_requests, stats.queued, stats.in_flight, stats.sent_requests) == (
        4,
        0,
        0,
        0,
    )
    forwarder.offer(_payload("after"))
    assert forwarder.stats.dropped_requests == 5


async def test_start_markers_are_not_forwarded() -> None:
    f = SpanFactory(service_name="app")
    root = f.workflow("w")
    agent = f.agent("researcher", parent=root)
    only_markers = SpanFactory(service_name="other")
    other_root = only_markers.workflow("v")
    spans = [f.marker(agent), agent, root, only_markers.marker(other_root)]
    raw = to_otlp_request(spans).SerializeToString()
    payload = ForwardPayload(raw, len(spans))
    sent = ExportTraceServiceRequest.FromString(gzip.decompress(await payload.body()))
    names = [
        span.name
        for resource in sent.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert names == [agent.name, root.name]
    assert len(sent.resource_spans) == 1  # the resource left with markers only is dropped
    assert payload.spans == 2


def test_a_request_without_markers_keeps_its_bytes_even_if_a_value_names_the_key() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id=semconv.AGENTMESH_STEP_STARTED)  # the key as a value only
    raw = to_otlp_request([root]).SerializeToString()
    assert without_step_markers(raw) == (raw, 0)
