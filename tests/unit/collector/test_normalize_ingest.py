"""The receiver hands the sink normalised spans and the forwarding hook the request as sent."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.model import SpanRecord
from agentmesh.collector.receiver.ingest import Ingestor
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.testing import to_otlp_request
from agentmesh.core import semconv


class RecordingSink:
    """A sink that keeps what it is given, and the requests it is told of."""

    def __init__(self) -> None:
        self.batches: list[list[SpanRecord]] = []
        self.requests: list[bytes] = []

    def __call__(self, spans: list[SpanRecord], /) -> bool:
        self.batches.append(spans)
        return True

    def request_accepted(self, request: ExportTraceServiceRequest, spans: int, /) -> None:
        self.requests.append(request.SerializeToString())


async def test_sink_gets_contract_spans_and_the_observer_the_original_request() -> None:
    foreign = SpanRecord(
        trace_id="ab" * 16,
        span_id="cd" * 8,
        parent_span_id=None,
        name="ChatCompletion",
        kind="internal",
        start_ns=1,
        end_ns=2,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 2,
        },
        scope_name="openinference.instrumentation.openai",
    )
    request = to_otlp_request([foreign])
    sent = request.SerializeToString()
    sink = RecordingSink()
    await Ingestor(sink, DecodeLimits()).ingest(request)
    ((span,),) = sink.batches
    assert span.operation == semconv.Operation.CHAT
    assert span.int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) == 10
    assert span.str_attr(semconv.AGENTMESH_NORMALIZED_FROM) == "openinference"
    assert sink.requests == [sent]
    assert semconv.AGENTMESH_NORMALIZED_FROM.encode() not in sent
