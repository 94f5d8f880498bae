"""The collector over real OTLP/HTTP: the SDK exporter (protobuf, gzip) and raw requests."""

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import CollectorError, semconv

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _settings(**overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "grpc_port": 0,
        "http_port": 0,
        "grpc_grace_seconds": 1.0,
    }
    return CollectorSettings.load(**(values | overrides))


def _emit(exporter: SpanExporter) -> str:
    """Export a two-span agent run through ``exporter``; return its trace id."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "http-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
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


async def _post(
    url: str, body: bytes, content_type: str | None, **headers: str
) -> tuple[int, bytes, dict[str, str]]:
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(url, data=body, headers=sent) as response,
    ):
        return response.status, await response.read(), dict(response.headers)


def _status_message(body: bytes, content_type: str) -> str:
    if content_type == JSON:
        return str(json.loads(body)["message"])
    return Status.FromString(body).message


async def test_sdk_http_exporter_with_gzip_stores_the_spans() -> None:
    store = MemoryStore()
    async with Collector(_settings(), store) as collector:
        assert collector.http_endpoint == f"http://127.0.0.1:{collector.http_port}"
        exporter = OTLPSpanExporter(
            endpoint=f"{collector.http_endpoint}/v1/traces", compression=Compression.Gzip
        )
        trace_id = await asyncio.to_thread(_emit, exporter)
        await collector.drain()
        spans = await store.spans(trace_id)
        assert sorted(s.name for s in spans) == ["chat gpt-4o-mini", "invoke_agent planner"]
        assert {s.service_name for s in spans} == {"http-app"}
        assert collector.stats.requests == 2


async def test_protobuf_and_json_bodies_get_answers_in_their_encoding() -> None:
    store = MemoryStore()
    async with Collector(_settings(), store) as collector:
        url = f"{collector.http_endpoint}/v1/traces"
        f = SpanFactory()
        proto_body = to_otlp_request([f.workflow("w", run_id="run-h")]).SerializeToString()
        status, body, headers = await _post(url, proto_body, PROTOBUF)
        assert status == 200
        assert headers["Content-Type"] == PROTOBUF
        assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")

        agent = f.agent("writer", parent=None)
        document = {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": f.trace_id,
                                    "spanId": agent.span_id,
                                    "name": agent.name,
                                    "kind": 1,
                                    "startTimeUnixNano": str(agent.start_ns),
                                    "endTimeUnixNano": str(agent.end_ns),
                                    "attributes": [
                                        {
                                            "key": semconv.GEN_AI_AGENT_NAME,
                                            "value": {"stringValue": "writer"},
                                        }
                                    ],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        status, body, headers = await _post(
            url, gzip.compress(json.dumps(document).encode()), JSON, **{"Content-Encoding": "gzip"}
        )
        assert status == 200
        assert headers["Content-Type"] == JSON
        assert json.loads(body) == {}
        await collector.drain()
        stored = {s.span_id: s for s in await store.spans(f.trace_id)}
        assert stored[agent.span_id].name == "invoke_agent writer"
        assert stored[agent.span_id].kind == "internal"
        assert stored[agent.span_id].attributes[semconv.GEN_AI_AGENT_NAME] == "writer"
        assert len(stored) == 2


async def test_json_span_with_bad_id_is_a_partial_success_the_rest_kept() -> None:
    store = MemoryStore()
    async with Collector(_settings(), store) as collector:
        trace = "0102030405060708090a0b0c0d0e0f10"
        spans = [
            {"traceId": trace, "spanId": "0102030405060708", "name": "kept"},
            {"traceId": trace, "spanId": "zz", "name": "bad-hex"},
            {"traceId": trace, "spanId": "01020304", "name": "short"},
        ]
        document = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
        status, body, _ = await _post(
            f"{collector.http_endpoint}/v1/traces", json.dumps(document).encode(), JSON
        )
        assert status == 200
        partial = json.loads(body)["partialSuccess"]
        assert partial["rejectedSpans"] == "2"
        assert "bad-hex" in partial["errorMessage"]
        assert "span_id has 4 bytes" in partial["errorMessage"]
        await collector.drain()
        assert [s.name for s in await store.spans(trace)] == ["kept"]
        assert collector.stats.spans_rejected == 2


async def test_limits_answer_partial_success_with_zero_rejected() -> None:
    store = MemoryStore()
    async with Collector(_settings(max_attributes_per_span=2), store) as collector:
        f = SpanFactory()
        span = f.span("wide", attributes={f"k{i}": i for i in range(5)})
        status, body, _ = await _post(
            f"{collector.http_endpoint}/v1/traces",
            to_otlp_request([span]).SerializeToString(),
            PROTOBUF,
        )
        assert status == 200
        partial = ExportTraceServiceResponse.FromString(body).partial_success
        assert partial.rejected_spans == 0
        assert "dropped 3 attribute(s) past the limit of 2" in partial.error_message
        await collector.drain()
        (stored,) = await store.spans(f.trace_id)
        assert len(stored.attributes) == 2
        assert collector.stats.attributes_dropped == 3


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"\xff\xff\xff\xff", PROTOBUF, "not a valid OTLP protobuf trace export"),
        (b"{nope", JSON, "not valid JSON"),
        (b'{"resourceSpans": "x"}', JSON, "not a valid OTLP/JSON trace export"),
    ],
)
async def test_malformed_bodies_get_400_and_the_receiver_keeps_serving(
    body: bytes, content_type: str, words: str
) -> None:
    async with Collector(_settings(), MemoryStore()) as collector:
        url = f"{collector.http_endpoint}/v1/traces"
        status, answer, _ = await _post(url, body, content_type)
        assert status == 400
        assert words in _status_message(answer, content_type)
        good = to_otlp_request([SpanFactory().workflow("after")]).SerializeToString()
        assert (await _post(url, good, PROTOBUF))[0] == 200


async def test_bad_gzip_is_400() -> None:
    async with Collector(_settings(), MemoryStore()) as collector:
        status, answer, _ = await _post(
            f"{collector.http_endpoint}/v1/traces",
            b"not gzip",
            PROTOBUF,
            **{"Content-Encoding": "gzip"},
        )
        assert status == 400
        assert "not valid gzip" in _status_message(answer, PROTOBUF)


async def test_oversized_and_bomb_bodies_get_413() -> None:
    limit = 64 * 1024
    async with Collector(_settings(max_receive_message_bytes=limit), MemoryStore()) as collector:
        url = f"{collector.http_endpoint}/v1/traces"
        big = SpanFactory().span("big", attributes={"payload": "x" * 100_000})
        raw = to_otlp_request([big]).SerializeToString()
        status, answer, _ = await _post(url, raw, PROTOBUF)
        assert status == 413
        assert "over the limit of 65536 bytes" in _status_message(answer, PROTOBUF)

        compressed = gzip.compress(raw)  # small on the wire, too big once inflated
        assert len(compressed) < limit
        status, answer, _ = await _post(url, compressed, PROTOBUF, **{"Content-Encoding": "gzip"})
        assert status == 413
        assert "decompresses to over the limit" in _status_message(answer, PROTOBUF)

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(4):
                yield bytes(32 * 1024)

        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=chunked(), headers={"Content-Type": PROTOBUF}) as response,
        ):
            assert response.status == 413
        small_bomb = gzip.compress(bytes(8 * 1024 * 1024))  # under the wire limit
        assert len(small_bomb) < limit
        status, answer, _ = await _post(url, small_bomb, PROTOBUF, **{"Content-Encoding": "gzip"})
        assert status == 413
        assert "decompresses to over the limit" in _status_message(answer, PROTOBUF)
        assert collector.stats.spans_received == 0


async def test_wrong_method_path_type_and_encoding() -> None:
    async with Collector(_settings(), MemoryStore()) as collector:
        base = collector.http_endpoint
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/v1/traces") as response:
                assert response.status == 405
                assert response.headers["Allow"] == "POST"
                assert "send POST" in await response.text()
            async with session.post(f"{base}/v1/metrics", data=b"") as response:
                assert response.status == 404
                assert "/v1/traces" in await response.text()
        status, answer, _ = await _post(f"{base}/v1/traces", b"x", "text/plain")
        assert status == 415
        assert "unsupported Content-Type 'text/plain'" in answer.decode()
        status, answer, _ = await _post(
            f"{base}/v1/traces", b"x", PROTOBUF, **{"Content-Encoding": "br"}
        )
        assert status == 415
        assert "unsupported Content-Encoding 'br'" in _status_message(answer, PROTOBUF)


def _emit_one(exporter: SpanExporter) -> str:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("invoke_agent authed")
    span.end()
    provider.shutdown()
    return f"{span.get_span_context().trace_id:032x}"


async def test_auth_on_both_transports() -> None:
    store = MemoryStore()
    settings = _settings(auth_bearer_tokens=["tok-123"], auth_api_keys=["key-456"])
    async with Collector(settings, store) as collector:
        url = f"{collector.http_endpoint}/v1/traces"
        body = to_otlp_request([SpanFactory().workflow("w")]).SerializeToString()
        status, answer, headers = await _post(url, body, PROTOBUF)
        assert status == 401
        assert headers["WWW-Authenticate"] == "Bearer"
        assert "authentication required" in _status_message(answer, PROTOBUF)
        status, answer, _ = await _post(url, body, JSON, Authorization="Bearer tok-12")
        assert status == 401
        assert "not accepted" in _status_message(answer, JSON)
        assert (await _post(url, body, PROTOBUF, Authorization="Bearer tok-123"))[0] == 200

        request = to_otlp_request([SpanFactory().workflow("g")])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            stub = TraceServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Export(request)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Export(request, metadata=(("x-api-key", "wrong"),))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "wrong" not in (info.value.details() or "")
            await stub.Export(request, metadata=(("x-api-key", "key-456"),))

        http_trace = await asyncio.to_thread(
            _emit_one, OTLPSpanExporter(endpoint=url, headers={"x-api-key": "key-456"})
        )
        grpc_trace = await asyncio.to_thread(
            _emit_one,
            GrpcSpanExporter(
                endpoint=collector.endpoint,
                insecure=True,
                headers={"authorization": "Bearer tok-123"},
            ),
        )
        await collector.drain()
        assert [s.name for s in await store.spans(http_trace)] == ["invoke_agent authed"]
        assert [s.name for s in await store.spans(grpc_trace)] == ["invoke_agent authed"]
        assert collector.stats.requests_unauthenticated == 4


async def test_http_can_be_disabled() -> None:
    async with Collector(_settings(http_enabled=False), MemoryStore()) as collector:
        assert collector.grpc_port > 0
        with pytest.raises(CollectorError, match="disabled"):
            _ = collector.http_port
