"""Backpressure the real exporters understand: 503 + Retry-After, UNAVAILABLE + RetryInfo.

The store's span writes wait on a gate, so the pipeline's worker blocks on the first batch and
a one-batch queue fills with the second; the third request is refused as retryable.
"""

import asyncio
import json
from collections.abc import Sequence

import aiohttp
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentmesh.collector import Collector, CollectorSettings, MemoryStore, SpanRecord
from agentmesh.collector.testing import SpanFactory, to_otlp_request

PROTOBUF = "application/x-protobuf"


class GatedStore(MemoryStore):
    """Span writes wait for the gate: the pipeline's worker blocks and the queue fills."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        self.entered.set()
        await self.gate.wait()
        return await super().write_spans(spans)


def _settings(**overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "grpc_port": 0,
        "http_port": 0,
        "grpc_grace_seconds": 1.0,
        "queue_max_batches": 1,
    }
    return CollectorSettings.load(**(values | overrides))


async def _post(url: str, body: bytes, content_type: str) -> tuple[int, bytes, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={"Content-Type": content_type}) as response,
    ):
        return response.status, await response.read(), dict(response.headers)


async def _fill(collector: Collector, store: GatedStore) -> None:
    """Block the worker on one batch and fill the one-slot queue with another."""
    url = f"{collector.http_endpoint}/v1/traces"
    for name in ("blocker", "fills the queue"):
        body = to_otlp_request([SpanFactory().workflow(name)]).SerializeToString()
        assert (await _post(url, body, PROTOBUF))[0] == 200
        await store.entered.wait()


def _one_span() -> ReadableSpan:
    span = TracerProvider().get_tracer("t").start_span("invoke_agent patient")
    span.end()
    assert isinstance(span, ReadableSpan)
    return span


def _export(exporter: SpanExporter, span: ReadableSpan) -> SpanExportResult:
    try:
        return exporter.export([span])
    finally:
        exporter.shutdown()


async def test_full_queue_answers_503_with_retry_after_in_both_encodings() -> None:
    store = GatedStore()
    async with Collector(_settings(retry_after_seconds=7), store) as collector:
        await _fill(collector, store)
        url = f"{collector.http_endpoint}/v1/traces"
        body = to_otlp_request([SpanFactory().workflow("refused")]).SerializeToString()
        status, answer, headers = await _post(url, body, PROTOBUF)
        assert status == 503
        assert headers["Retry-After"] == "7"
        assert "queue full" in Status.FromString(answer).message
        span = {"name": "j", "traceId": "01" * 16, "spanId": "02" * 8}
        document = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
        status, answer, headers = await _post(
            url, json.dumps(document).encode(), "application/json"
        )
        assert status == 503
        assert headers["Retry-After"] == "7"
        assert json.loads(answer)["code"] == 14  # UNAVAILABLE
        assert collector.stats.batches_rejected == 2
        store.gate.set()
        await collector.drain()
        assert await store.count_spans() == 2  # the two accepted batches, nothing lost


async def test_sdk_http_exporter_retries_after_503_and_the_span_arrives() -> None:
    store = GatedStore()
    async with Collector(_settings(), store) as collector:
        await _fill(collector, store)
        span = _one_span()
        exporter = OTLPSpanExporter(endpoint=f"{collector.http_endpoint}/v1/traces", timeout=20)
        sent = asyncio.ensure_future(asyncio.to_thread(_export, exporter, span))
        for _ in range(1000):  # until its first try is refused
            if collector.stats.batches_rejected:
                break
            await asyncio.sleep(0.01)
        assert collector.stats.batches_rejected == 1
        store.gate.set()
        assert await sent == SpanExportResult.SUCCESS  # retried after Retry-After: 1
        await collector.drain()
        trace_id = f"{span.context.trace_id:032x}"
        assert [s.name for s in await store.spans(trace_id)] == ["invoke_agent patient"]


async def test_sdk_exporters_honour_the_retry_delay() -> None:
    """A delay longer than the exporter's timeout makes it give up at once instead of retrying
    on its own backoff: the proof that it read our Retry-After and RetryInfo."""
    store = GatedStore()
    async with Collector(_settings(retry_after_seconds=3600), store) as collector:
        await _fill(collector, store)
        http = OTLPSpanExporter(endpoint=f"{collector.http_endpoint}/v1/traces", timeout=10)
        assert await asyncio.to_thread(_export, http, _one_span()) == SpanExportResult.FAILURE
        assert collector.stats.batches_rejected == 1  # one try, no retry
        grpc_exporter = GrpcSpanExporter(endpoint=collector.endpoint, insecure=True, timeout=10)
        result = await asyncio.to_thread(_export, grpc_exporter, _one_span())
        assert result == SpanExportResult.FAILURE
        assert collector.stats.batches_rejected == 2  # one try, no retry
        store.gate.set()
