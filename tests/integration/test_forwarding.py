"""The collector forwards what it accepted to LangSmith, Braintrust and OTLP endpoints.

Every "remote" here is a :class:`SinkServer` on loopback that records path, headers and body;
no external host is ever contacted.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable

import aiohttp
import grpc
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.forward import ForwarderStats
from agentmesh.collector.forward.testing import SinkAnswer, SinkServer
from agentmesh.collector.receiver.otlp_json import to_json
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import semconv

OTEL_PATH = "/otel/v1/traces"


def _settings(**overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "grpc_port": 0,
        "http_port": 0,
        "grpc_grace_seconds": 1.0,
        "forward_max_retry_seconds": 10.0,
    }
    return CollectorSettings.load(**(values | overrides))


def _emit(endpoint: str) -> str:
    """Export an agent run with the OpenTelemetry SDK's OTLP/gRPC exporter; return its trace."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "fwd-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint, insecure=True)))
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span(
            "invoke_agent planner",
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_AGENT,
                semconv.GEN_AI_AGENT_NAME: "planner",
            },
        ) as agent,
        tracer.start_as_current_span("chat gpt-4o-mini"),
    ):
        pass
    provider.shutdown()
    return f"{agent.get_span_context().trace_id:032x}"


def _run_request(name: str, agents: int = 2) -> tuple[str, bytes, list[str]]:
    f = SpanFactory()
    root = f.workflow(name)
    spans = [root] + [f.agent(f"{name}-{i}", parent=root) for i in range(agents)]
    return f.trace_id, to_otlp_request(spans).SerializeToString(), [s.name for s in spans]


async def _export_grpc(endpoint: str, payload: bytes) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    async with grpc.aio.insecure_channel(endpoint.removeprefix("http://")) as channel:
        stub = TraceServiceStub(channel)
        await stub.Export(ExportTraceServiceRequest.FromString(payload))  # pyright: ignore[reportUnknownMemberType]


async def _until(
    collector: Collector, name: str, done: Callable[[ForwarderStats], bool]
) -> ForwarderStats:
    async with asyncio.timeout(15):
        while not done(collector.forward_stats[name]):  # noqa: ASYNC110 - polled counters
            await asyncio.sleep(0.01)
    return collector.forward_stats[name]


def _otlp_json(request: Message) -> bytes:
    """OTLP/JSON: protobuf JSON with trace and span ids in hex rather than base64."""
    document = json.loads(to_json(request))
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


async def test_langsmith_and_braintrust_receive_the_spans() -> None:
    async with SinkServer() as langsmith, SinkServer() as braintrust:
        settings = _settings(
            forward_langsmith_api_key="ls-key-123",
            forward_langsmith_endpoint=langsmith.url(),
            forward_langsmith_project="agents-prod",
            forward_braintrust_api_key="bt-key-456",
            forward_braintrust_endpoint=braintrust.url() + "/",
            forward_braintrust_parent="project_name:agents",
        )
        async with Collector(settings, MemoryStore()) as collector:
            trace_id = await asyncio.to_thread(_emit, collector.endpoint)
            await _until(collector, "langsmith", lambda s: s.sent_spans == 2)
            await _until(collector, "braintrust", lambda s: s.sent_spans == 2)
            await collector.drain()
            assert len(await collector.store.spans(trace_id)) == 2
        for sink in (langsmith, braintrust):
            assert [r.path for r in sink.requests] == [OTEL_PATH] * len(sink.requests)
            names = {n for r in sink.requests for n in r.span_names()}
            assert names == {"invoke_agent planner", "chat gpt-4o-mini"}
            traces = {
                span.trace_id.hex()
                for r in sink.requests
                for rs in r.export_request().resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            }
            assert traces == {trace_id}
        ls_headers = langsmith.requests[0].headers
        assert ls_headers["x-api-key"] == "ls-key-123"
        assert ls_headers["langsmith-project"] == "agents-prod"
        assert "authorization" not in ls_headers
        bt_headers = braintrust.requests[0].headers
        assert bt_headers["authorization"] == "Bearer bt-key-456"
        assert bt_headers["x-bt-parent"] == "project_name:agents"
        assert "x-api-key" not in bt_headers
        for headers in (ls_headers, bt_headers):
            assert headers["content-type"] == "application/x-protobuf"
            assert headers["content-encoding"] == "gzip"


async def test_otlp_endpoints_get_http_json_requests_as_protobuf() -> None:
    async with SinkServer() as first, SinkServer() as second:
        settings = _settings(
            forward_otlp_endpoints=[first.url("/v1/traces"), second.url("/custom/traces")],
            forward_otlp_headers={"x-tenant": "acme"},
        )
        _, payload, names = _run_request("json-run")
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = _otlp_json(ExportTraceServiceRequest.FromString(payload))
        async with Collector(settings, MemoryStore()) as collector:
            async with aiohttp.ClientSession() as client:
                response = await client.post(
                    collector.http_endpoint + "/v1/traces",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                assert response.status == 200
            await _until(collector, "otlp-1", lambda s: s.sent_requests == 1)
            await _until(collector, "otlp-2", lambda s: s.sent_requests == 1)
        (one,) = first.requests
        (two,) = second.requests
    assert (one.path, two.path) == ("/v1/traces", "/custom/traces")
    assert one.headers["x-tenant"] == two.headers["x-tenant"] == "acme"
    assert one.export_request() == ExportTraceServiceRequest.FromString(payload)
    assert one.span_names() == names


async def test_retries_honour_retry_after_then_deliver() -> None:
    async with SinkServer() as langsmith:
        langsmith.script(SinkAnswer(429, retry_after="1"), SinkAnswer(503, retry_after="0"))
        settings = _settings(
            forward_langsmith_api_key="k", forward_langsmith_endpoint=langsmith.url()
        )
        async with Collector(settings, MemoryStore()) as collector:
            _, payload, names = _run_request("retried")
            await _export_grpc(collector.endpoint, payload)
            stats = await _until(collector, "langsmith", lambda s: s.sent_requests == 1)
        assert [r.span_names() for r in langsmith.requests] == [names] * 3
    assert (stats.retried, stats.failed_requests, stats.dropped_requests) == (2, 0, 0)


async def test_400_is_not_retried() -> None:
    async with SinkServer(always=SinkAnswer(400)) as braintrust:
        settings = _settings(
            forward_braintrust_api_key="k", forward_braintrust_endpoint=braintrust.url()
        )
        async with Collector(settings, MemoryStore()) as collector:
            _, payload, _ = _run_request("refused")
            await _export_grpc(collector.endpoint, payload)
            stats = await _until(collector, "braintrust", lambda s: s.failed_requests == 1)
            await collector.drain()
            assert await collector.store.count_spans() == 3  # stored all the same
        assert len(braintrust.requests) == 1
    assert (stats.retried, stats.sent_requests, stats.failed_spans) == (0, 0, 3)


async def test_hanging_sink_never_slows_ingestion_and_shutdown_is_bounded() -> None:
    async with SinkServer(always=SinkAnswer(hang=True)) as sink:
        settings = _settings(
            forward_otlp_endpoints=[sink.url("/v1/traces")],
            forward_queue_max_requests=2,
            forward_concurrency=1,
            forward_timeout_seconds=300.0,
            forward_flush_timeout_seconds=0.2,
        )
        requests = 12
        collector = Collector(settings, MemoryStore())
        async with asyncio.timeout(60):
            async with collector:
                for index in range(requests):
                    _, payload, _ = _run_request(f"busy-{index}")
                    await _export_grpc(collector.endpoint, payload)  # never refused
                await collector.drain()
                assert await collector.store.count_spans() == requests * 3
                during = collector.forward_stats["otlp-1"]
                assert collector.stats.requests_refused == 0
            after = collector.forward_stats["otlp-1"]
    assert during.offered_requests == requests
    assert during.queued == 2
    assert during.dropped_requests == requests - 2 - during.in_flight
    assert during.dropped_requests >= requests - 3
    assert during.sent_requests == 0
    assert (after.dropped_requests, after.queued, after.in_flight) == (requests, 0, 0)
    assert after.dropped_spans == requests * 3


async def test_nothing_is_forwarded_without_configuration() -> None:
    async with Collector(_settings(), MemoryStore()) as collector:
        _, payload, _ = _run_request("local-only")
        await _export_grpc(collector.endpoint, payload)
        await collector.drain()
        assert collector.forward_stats == {}
        assert await collector.store.count_spans() == 3
