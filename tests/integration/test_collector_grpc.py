"""The collector over real OTLP/gRPC: the OpenTelemetry SDK exporter in, DuckDB out."""

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from agentmesh.collector import Collector, CollectorSettings, DuckDBStore, MemoryStore, SpanRecord
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import ReceiverError, semconv

RUN_ID = "run-integration-1"
LOOPS = 5  # supervisor → researcher five times: a loop once past the bound of 3
T0 = 1_750_000_000_000_000_000


def _settings(tmp_path: Path, **overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "http_port": 0,
        "duckdb_path": tmp_path / "agentmesh.duckdb",
        "grpc_grace_seconds": 1.0,
    }
    return CollectorSettings.load(**(values | overrides))


def _emit_looping_run(endpoint: str) -> str:
    """Run an instrumented-looking app in this (worker) thread; return its trace id."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "research-app"}))
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    processor = BatchSpanProcessor(exporter, max_export_batch_size=4, schedule_delay_millis=50)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("agentmesh.test")
    clock = T0

    def tick() -> int:
        nonlocal clock
        clock += 1_000_000
        return clock

    workflow = tracer.start_span(
        "invoke_workflow research",
        start_time=tick(),
        attributes={
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_WORKFLOW,
            semconv.GEN_AI_WORKFLOW_NAME: "research",
            semconv.AGENTMESH_RUN_ID: RUN_ID,
            semconv.AGENTMESH_FRAMEWORK: "plain",
        },
    )
    in_workflow = trace.set_span_in_context(workflow)
    previous: str | None = None
    for i in range(LOOPS * 2):
        name = "supervisor" if i % 2 == 0 else "researcher"
        attributes: dict[str, str | int] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_AGENT,
            semconv.GEN_AI_AGENT_NAME: name,
            semconv.AGENTMESH_RUN_ID: RUN_ID,
        }
        if previous is not None:
            attributes.update(
                {
                    semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME: previous,
                    semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME: name,
                    semconv.AGENTMESH_HANDOFF_KIND: "command",
                    semconv.AGENTMESH_HANDOFF_CONTEXT_DIGEST: f"sha256:{i:04x}",
                    semconv.AGENTMESH_HANDOFF_CONTEXT_SIZE: 100 + i,
                }
            )
        agent = tracer.start_span(
            f"invoke_agent {name}", context=in_workflow, start_time=tick(), attributes=attributes
        )
        chat = tracer.start_span(
            "chat gpt-4o-mini",
            context=trace.set_span_in_context(agent),
            kind=trace.SpanKind.CLIENT,
            start_time=tick(),
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
                semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
                semconv.AGENTMESH_COST_USD: 0.25,
            },
        )
        chat.end(end_time=tick())
        agent.end(end_time=tick())
        processor.force_flush()  # one more batch per agent visit
        previous = name
    workflow.end(end_time=tick())
    trace_id = f"{workflow.get_span_context().trace_id:032x}"
    provider.shutdown()
    return trace_id


async def test_sdk_spans_become_stored_spans_graph_rows_and_one_detection(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    async with Collector(settings) as collector:
        assert collector.grpc_port > 0
        assert collector.endpoint == f"http://127.0.0.1:{collector.grpc_port}"
        trace_id = await asyncio.to_thread(_emit_looping_run, collector.endpoint)
        await collector.drain()

        store = collector.store
        spans = await store.spans(trace_id)
        assert len(spans) == 1 + LOOPS * 2 * 2
        assert await store.count_spans() == len(spans)
        assert {s.service_name for s in spans} == {"research-app"}
        assert sum(1 for s in spans if s.parent_span_id is None) == 1

        graph = await store.graph(trace_id)
        assert graph is not None
        assert graph.run.run_id == RUN_ID
        assert graph.run.workflow_name == "research"
        assert graph.run.complete
        assert [(a.name, a.invocations, a.llm_calls) for a in graph.agents] == [
            ("researcher", LOOPS, LOOPS),
            ("supervisor", LOOPS, LOOPS),
        ]
        assert graph.agents[0].input_tokens == 100 * LOOPS
        assert graph.run.cost_usd == pytest.approx(0.25 * LOOPS * 2)
        assert len(graph.handoffs) == LOOPS * 2 - 1
        assert {h.kind for h in graph.handoffs} == {"command"}
        assert graph.handoffs[0].source == "supervisor"
        assert graph.handoffs[0].target == "researcher"
        assert graph.handoffs[0].context_size == 101

        (detection,) = await store.detections()
        assert detection.type == "ping_pong"
        assert detection.trace_id == trace_id
        assert detection.run_id == RUN_ID
        assert detection.agent == "supervisor"
        # Rules run once per pipeline cycle: the cycle that crossed the bound may already hold
        # later visits, so the count is at least the first one over the bound.
        repeats = re.search(r"repeated (\d+) times \(bound 3\)", detection.explanation)
        assert repeats is not None, detection.explanation
        assert 4 <= int(repeats.group(1)) <= LOOPS
        (run,) = await store.runs()
        assert run.detections == 1

        stats = collector.stats
        assert stats.spans_received == len(spans)
        assert stats.spans_stored == len(spans)
        assert stats.detections == 1
        assert stats.requests >= LOOPS * 2
        assert stats.batches_rejected == 0

    # The collector closed the file on exit: open it again and read everything back.
    async with DuckDBStore(settings.duckdb_path) as reopened:
        assert len(await reopened.spans(trace_id)) == 1 + LOOPS * 2 * 2
        again = await reopened.graph(trace_id)
        assert again is not None
        assert again == graph
        assert [d.id for d in await reopened.detections(trace_id)] == [detection.id]


def _raw_span(trace_id: bytes, span_id: bytes, name: str) -> Span:
    return Span(trace_id=trace_id, span_id=span_id, name=name, start_time_unix_nano=T0)


async def test_bad_span_id_gets_a_partial_success(tmp_path: Path) -> None:
    async with Collector(_settings(tmp_path)) as collector:
        good_trace = bytes(range(1, 17))
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    scope_spans=[
                        ScopeSpans(
                            spans=[
                                _raw_span(good_trace, bytes(range(1, 9)), "good"),
                                _raw_span(good_trace, b"\x01\x02\x03", "short-id"),
                                _raw_span(good_trace, bytes(range(2, 10)), "also-good"),
                            ]
                        )
                    ]
                )
            ]
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            response: ExportTraceServiceResponse = await TraceServiceStub(channel).Export(request)
        assert response.partial_success.rejected_spans == 1
        assert "short-id" in response.partial_success.error_message
        assert "span_id has 3 bytes" in response.partial_success.error_message
        await collector.drain()
        stored = await collector.store.spans(good_trace.hex())
        assert sorted(s.name for s in stored) == ["also-good", "good"]
        assert collector.stats.spans_rejected == 1


async def test_clean_request_gets_an_empty_success(tmp_path: Path) -> None:
    async with Collector(_settings(tmp_path)) as collector:
        request = to_otlp_request([SpanFactory().workflow("w")])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            response = await TraceServiceStub(channel).Export(request)
        assert not response.HasField("partial_success")


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


async def test_full_queue_answers_unavailable_with_retry_info(tmp_path: Path) -> None:
    store = GatedStore()
    async with Collector(_settings(tmp_path, queue_max_batches=1), store=store) as collector:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            stub = TraceServiceStub(channel)
            f = SpanFactory()
            await stub.Export(to_otlp_request([f.workflow("first")]))
            await store.entered.wait()  # the worker is stuck on the first batch
            await stub.Export(to_otlp_request([f.agent("queued", parent=None)]))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Export(to_otlp_request([f.agent("refused", parent=None)]))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "queue full" in (info.value.details() or "")
        trailers = dict(info.value.trailing_metadata() or ())
        status = Status.FromString(trailers["grpc-status-details-bin"])
        assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert "queue full" in status.message
        (detail,) = status.details
        retry = RetryInfo()
        assert detail.Unpack(retry)
        assert retry.retry_delay.seconds == 1  # retry_after_seconds' default
        assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == retry
        assert collector.stats.batches_rejected == 1
        store.gate.set()
        await collector.drain()
        assert sorted(s.name for s in await store.spans(f.trace_id)) == [
            "invoke_agent queued",
            "invoke_workflow first",
        ]
    assert await store.count_spans() == 2  # a store passed in is left open for its owner


def _export_one_span(endpoint: str) -> str:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "retrying-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    span = provider.get_tracer("t").start_span("invoke_agent late")
    span.end()
    provider.shutdown()
    return f"{span.get_span_context().trace_id:032x}"


async def test_sdk_exporter_retries_after_unavailable(tmp_path: Path) -> None:
    store = GatedStore()
    async with Collector(_settings(tmp_path, queue_max_batches=1), store=store) as collector:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            stub = TraceServiceStub(channel)
            await stub.Export(to_otlp_request([SpanFactory().workflow("blocker")]))
            await store.entered.wait()
            await stub.Export(to_otlp_request([SpanFactory().workflow("fills the queue")]))
        sent = asyncio.ensure_future(asyncio.to_thread(_export_one_span, collector.endpoint))
        for _ in range(1000):  # until the exporter's first try is refused
            if collector.stats.batches_rejected:
                break
            await asyncio.sleep(0.01)
        assert collector.stats.batches_rejected == 1
        store.gate.set()
        trace_id = await sent  # its retry (after about a second) is accepted
        await collector.drain()
        assert [s.name for s in await store.spans(trace_id)] == ["invoke_agent late"]


async def test_oversized_request_is_refused_by_the_size_limit(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_receive_message_bytes=64 * 1024)
    async with Collector(settings) as collector:
        f = SpanFactory()
        big = f.span("big", attributes={"payload": "x" * 100_000})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await TraceServiceStub(channel).Export(to_otlp_request([big]))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_busy_port_is_refused_in_words_before_anything_is_created(tmp_path: Path) -> None:
    async with Collector(_settings(tmp_path / "a")) as first:
        clash = _settings(tmp_path / "b", grpc_port=first.grpc_port)
        second = Collector(clash)
        with pytest.raises(ReceiverError, match="cannot listen") as refused:
            await second.__aenter__()
        # in words, not gRPC's "Failed to bind ... set GRPC_VERBOSITY=debug"
        assert str(refused.value) == (
            f"cannot listen for OTLP/gRPC on 127.0.0.1:{first.grpc_port}: address already in "
            "use (another collector, or another program, listens there)"
        )
        assert not clash.duckdb_path.exists()  # refused before the store was opened
        http_clash = _settings(tmp_path / "c", http_port=first.http_port)
        with pytest.raises(ReceiverError, match="cannot listen for OTLP/HTTP on") as refused:
            await Collector(http_clash).__aenter__()
        assert not http_clash.duckdb_path.exists()


async def test_serve_forever_returns_on_stop(tmp_path: Path) -> None:
    async with Collector(_settings(tmp_path)) as collector:
        serving = asyncio.create_task(collector.serve_forever())
        await asyncio.sleep(0)
        assert not serving.done()
        collector.stop()
        await asyncio.wait_for(serving, timeout=1)
