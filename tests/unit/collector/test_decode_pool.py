"""The decode worker pool: same result as decoding in-process, clear errors, recovery."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from agentmesh.collector.batch import SpanBatch
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.graph.node import GraphNode, HandoffInfo, RouteInfo, graph_node
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.normalize import normalize_spans
from agentmesh.collector.pipeline import Pipeline
from agentmesh.collector.receiver.decode import decode_request
from agentmesh.collector.receiver.decode_pool import (
    DecodedPayload,
    DecodePool,
    PoolBusyError,
    decode_payload,
)
from agentmesh.collector.receiver.ingest import POOL_MIN_BYTES, Ingestor, ReceiverBusyError
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.store.memory_store import MemoryStore
from agentmesh.collector.store.span_table import span_table
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core.errors import CollectorError, ReceiverError


def _run(f: SpanFactory, agents: int = 40) -> list[SpanRecord]:
    root = f.workflow("research", run_id="run-pool")
    spans = [root]
    previous = None
    for index in range(agents):
        name = "supervisor" if index % 2 == 0 else "researcher"
        agent = f.agent(name, parent=root, handoff_from=previous)
        spans += [agent, f.chat(parent=agent, input_tokens=900, output_tokens=40)]
        previous = name
    return spans


def _payload(spans: list[SpanRecord]) -> bytes:
    payload = to_otlp_request(spans).SerializeToString()
    assert len(payload) >= POOL_MIN_BYTES  # big enough to go to the pool
    return payload


def test_worker_function_matches_in_process_decoding() -> None:
    spans = _run(SpanFactory())
    payload = _payload(spans)
    decoded = decode_payload(payload, DecodeLimits(), with_records=True)
    expected = normalize_spans(decode_request(to_otlp_request(spans)).spans)
    batch = decoded.batch()
    assert len(batch) == len(spans)
    assert batch.records() == expected
    assert batch.nodes == [graph_node(span) for span in expected]
    assert batch.table.to_pylist() == span_table(expected).to_pylist()
    assert decoded.problem == ""
    assert decoded.rejected == 0


def test_worker_function_reports_garbage_in_plain_words() -> None:
    decoded = decode_payload(b"\xff\xff\xff not protobuf", DecodeLimits(), with_records=False)
    assert decoded.problem.startswith(
        "could not decode the OTLP request: it is not a valid OTLP protobuf"
    )
    assert decoded.nodes == []
    assert decoded.table is None


def test_bad_utf8_and_too_deep_values_are_named() -> None:
    span = Span(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="NAME")
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    payload = request.SerializeToString().replace(b"NAME", b"N\xff\xfeE")
    decoded = decode_payload(payload, DecodeLimits(), with_records=False)
    assert "a string field holds bytes that are not UTF-8" in decoded.problem
    value = AnyValue(string_value="x")
    for _ in range(48):  # with the request's 6 levels above it: 102 levels of messages
        value = AnyValue(array_value=ArrayValue(values=[value]))
    request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="k", value=value)
    deep = request.SerializeToString()
    decoded = decode_payload(deep, DecodeLimits(), with_records=False)
    assert "nested too deeply" in decoded.problem
    decoded = decode_payload(request.SerializeToString()[:-3], DecodeLimits(), with_records=False)
    assert "were cut short" in decoded.problem


def test_graph_nodes_pickle_as_tuples_and_compare_by_value() -> None:
    spans = _run(SpanFactory(), agents=2)
    nodes = [graph_node(span) for span in spans]
    back: list[GraphNode] = pickle.loads(pickle.dumps(nodes))
    assert back == nodes
    assert back[1].agent == "supervisor"
    assert back[3].handoff is not None
    assert back[3].handoff.source == "supervisor"


def test_a_decoded_payload_pickles_whole_with_its_nodes_as_graph_nodes() -> None:
    spans = _run(SpanFactory(), agents=4)
    decoded = decode_payload(_payload_any(spans), DecodeLimits(), with_records=True)
    assert decoded.table is not None
    back = pickle.loads(pickle.dumps(decoded, protocol=pickle.HIGHEST_PROTOCOL))
    assert back.nodes == decoded.nodes
    assert {type(node) for node in back.nodes} == {GraphNode}
    assert back.table.to_pylist() == decoded.table.to_pylist()
    assert (back.records_blob, back.rejected, back.error_message, back.problem) == (
        decoded.records_blob,
        decoded.rejected,
        decoded.error_message,
        decoded.problem,
    )
    assert back.result() == decoded.result()
    handoffs = [node.handoff for node in back.nodes if node.handoff is not None]
    assert handoffs
    assert {type(handoff) for handoff in handoffs} == {HandoffInfo}


def test_a_decoded_payload_sends_each_repeated_string_once() -> None:
    spans = _run(SpanFactory(), agents=4)
    decoded = decode_payload(_payload_any(spans), DecodeLimits(), with_records=False)
    nodes = decoded.nodes
    assert nodes[1].trace_id == nodes[2].trace_id
    assert nodes[1].trace_id is not nodes[2].trace_id  # decoded span by span
    back: list[GraphNode] = pickle.loads(pickle.dumps(decoded)).nodes
    assert back == nodes
    # One object per distinct string of the request, for all the nodes that carry it.
    assert len({id(node.trace_id) for node in back}) == 1
    assert len({id(node.run_id) for node in back if node.run_id is not None}) == 1
    chat, agent = back[2], back[1]
    assert chat.parent_id == agent.span_id
    assert chat.parent_id is agent.span_id
    supervisors = [node.agent for node in back if node.agent == "supervisor"]
    assert len(supervisors) == 2
    assert supervisors[0] is supervisors[1]


def test_nested_node_fields_survive_the_trip_with_their_types() -> None:
    f = SpanFactory()
    node = graph_node(f.chat(parent=f.workflow("w")))._replace(
        handoff=HandoffInfo("a", "b", "edge", "d1", 12),
        route=RouteInfo("dec-1", "qa", 3, 0.5),
        failed_attempts=(("m-1", "rate_limited", "429"),),
    )
    payload = DecodedPayload([node, node._replace(route=None)], None, None)
    back = pickle.loads(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    assert back.nodes == payload.nodes
    assert type(back.nodes[0].handoff) is HandoffInfo
    assert type(back.nodes[0].route) is RouteInfo
    assert back.nodes[1].route is None
    assert back.nodes[0].route.cluster == 3


def _payload_any(spans: list[SpanRecord]) -> bytes:
    return to_otlp_request(spans).SerializeToString()


def test_a_batch_without_records_says_so() -> None:
    batch = SpanBatch.of_parts([], None, None)
    with pytest.raises(CollectorError, match="without its span records"):
        batch.records()


async def test_pool_decodes_like_the_process_and_builds_the_same_graph() -> None:
    f = SpanFactory()
    spans = _run(f)
    async with DecodePool(1, DecodeLimits(), with_records=True) as pool:
        decoded = await pool.decode(_payload(spans))
        assert pool.inflight_bytes == 0
    batch = decoded.batch()
    in_pool, in_process = GraphBuilder(), GraphBuilder()
    in_pool.add_nodes(batch.nodes)
    in_process.add(spans)
    assert in_pool.get(f.trace_id) == in_process.get(f.trace_id)
    assert batch.records() == normalize_spans(spans)


async def test_pool_refuses_malformed_requests_with_a_clear_error() -> None:
    async with DecodePool(1, DecodeLimits()) as pool:
        with pytest.raises(ReceiverError, match="not a valid OTLP protobuf trace export") as caught:
            await pool.decode(b"\x0a\xff\xff\xff\xff" * 5000)
        assert not isinstance(caught.value, PoolBusyError)
        # the pool keeps serving
        decoded = await pool.decode(_payload(_run(SpanFactory())))
        assert len(decoded.nodes) == 81


async def test_pool_refuses_past_its_inflight_bound() -> None:
    payload = _payload(_run(SpanFactory()))
    async with DecodePool(1, DecodeLimits(), max_inflight_bytes=len(payload) + 1) as pool:
        first = asyncio.ensure_future(pool.decode(payload))
        await asyncio.sleep(0)
        with pytest.raises(PoolBusyError, match="busy decoding"):
            await pool.decode(payload)
        assert len((await first).nodes) == 81


async def test_a_killed_worker_is_replaced_and_the_request_is_retryable() -> None:
    payload = _payload(_run(SpanFactory()))
    async with DecodePool(1, DecodeLimits()) as pool:
        executor = pool._executor  # pyright: ignore[reportPrivateUsage]
        assert executor is not None
        pids = list(executor._processes)  # pyright: ignore[reportPrivateUsage]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        failure: PoolBusyError | None = None
        for _ in range(50):  # the pool notices the death on its next use
            try:
                await pool.decode(payload)
            except PoolBusyError as exc:
                failure = exc
                break
            await asyncio.sleep(0.05)
        assert failure is not None
        assert "worker died" in str(failure)
        assert pool.restarts == 1
        assert len((await pool.decode(payload)).nodes) == 81


async def test_ingestor_uses_the_pool_and_the_pipeline_stores_the_batch() -> None:
    f = SpanFactory()
    spans = _run(f)
    store = MemoryStore()
    async with (
        DecodePool(1, DecodeLimits(), with_records=True) as pool,
        Pipeline(store) as pipeline,
    ):
        ingestor = Ingestor(pipeline, DecodeLimits(), pool)
        result = await ingestor.ingest_payload(_payload(spans))
        assert result.rejected == 0
        await pipeline.drain()
        assert ingestor.stats.spans_accepted == len(spans)
    assert await store.count_spans() == len(spans)
    graph = await store.graph(f.trace_id)
    assert graph is not None
    assert graph.run.llm_calls == 40


async def test_ingestor_refuses_before_decoding_when_the_pipeline_is_full() -> None:
    spans = _run(SpanFactory())
    async with Pipeline(MemoryStore(), max_batches=1) as pipeline:
        assert pipeline.has_room()
        pipeline._accepting = False  # pyright: ignore[reportPrivateUsage]
        assert not pipeline.has_room()
        ingestor = Ingestor(pipeline, DecodeLimits())
        with pytest.raises(ReceiverBusyError, match="busy"):
            await ingestor.ingest_payload(_payload(spans))
        assert ingestor.stats.requests_busy == 1
        pipeline._accepting = True  # pyright: ignore[reportPrivateUsage]


class _ObservingSink:
    def __init__(self) -> None:
        self.spans = 0
        self.requests: list[object] = []

    def __call__(self, spans: list[SpanRecord] | SpanBatch, /) -> bool:
        self.spans += len(spans)
        return True

    def request_accepted(self, request: object, spans: int, /) -> None:
        self.requests.append(request)


async def test_a_pooled_request_reaches_the_observer_as_the_bytes_received() -> None:
    payload = _payload(_run(SpanFactory()))
    sink = _ObservingSink()
    async with DecodePool(1, DecodeLimits()) as pool:
        await Ingestor(sink, DecodeLimits(), pool).ingest_payload(payload)
    assert sink.spans == 81
    assert sink.requests == [payload]  # forwarded as is: never parsed in this process
