import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from agentmesh.collector import SpanRecord, decode_request
from agentmesh.collector.model import SERVICE_NAME
from agentmesh.collector.receiver import count_spans
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import semconv

TRACE = bytes(range(1, 17))
SPAN_A = bytes(range(1, 9))
SPAN_B = bytes(range(11, 19))


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _request(*spans: Span, service: str | None = "svc") -> ExportTraceServiceRequest:
    resource = Resource(
        attributes=[] if service is None else [_kv(SERVICE_NAME, AnyValue(string_value=service))]
    )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource,
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="lib"), spans=list(spans))],
            )
        ]
    )


def _only(request: ExportTraceServiceRequest) -> SpanRecord:
    result = decode_request(request)
    assert result.rejected == 0
    assert len(result.spans) == 1
    return result.spans[0]


def test_decodes_ids_timing_kind_status_and_resource() -> None:
    span = Span(
        trace_id=TRACE,
        span_id=SPAN_B,
        parent_span_id=SPAN_A,
        name="chat gpt-4o-mini",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=10,
        end_time_unix_nano=25,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        events=[
            Span.Event(
                name=semconv.EVENT_HANDOFF,
                time_unix_nano=12,
                attributes=[_kv("n", AnyValue(int_value=3))],
            )
        ],
    )
    record = _only(_request(span))
    assert record.trace_id == TRACE.hex()
    assert record.span_id == SPAN_B.hex()
    assert record.parent_span_id == SPAN_A.hex()
    assert record.kind == "client"
    assert (record.start_ns, record.end_ns, record.duration_ns) == (10, 25, 15)
    assert (record.status_code, record.status_message) == ("error", "boom")
    assert record.service_name == "svc"
    assert record.resource_attributes == {SERVICE_NAME: "svc"}
    assert record.scope_name == "lib"
    assert record.events[0].name == semconv.EVENT_HANDOFF
    assert record.events[0].time_ns == 12
    assert record.events[0].attributes == {"n": 3}


def test_root_span_has_no_parent_and_no_service_name_when_absent() -> None:
    record = _only(_request(Span(trace_id=TRACE, span_id=SPAN_A, name="root"), service=None))
    assert record.parent_span_id is None
    assert record.is_root
    assert record.service_name is None
    assert record.status_code == "unset"


def test_every_any_value_kind() -> None:
    attributes = [
        _kv("s", AnyValue(string_value="text")),
        _kv("b", AnyValue(bool_value=True)),
        _kv("i", AnyValue(int_value=-7)),
        _kv("d", AnyValue(double_value=0.25)),
        _kv("bytes", AnyValue(bytes_value=b"\x00\xff")),
        _kv(
            "arr",
            AnyValue(
                array_value=ArrayValue(
                    values=[AnyValue(string_value="a"), AnyValue(string_value="b")]
                )
            ),
        ),
        _kv(
            "mixed",
            AnyValue(
                array_value=ArrayValue(
                    values=[
                        AnyValue(int_value=1),
                        AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=2)])),
                    ]
                )
            ),
        ),
        _kv(
            "map",
            AnyValue(
                kvlist_value=KeyValueList(
                    values=[
                        _kv("k", AnyValue(string_value="v")),
                        _kv(
                            "nested",
                            AnyValue(
                                array_value=ArrayValue(
                                    values=[AnyValue(double_value=1.5), AnyValue(bool_value=False)]
                                )
                            ),
                        ),
                        _kv("raw", AnyValue(bytes_value=b"\x01")),
                    ]
                )
            ),
        ),
        _kv("empty", AnyValue()),
    ]
    record = _only(_request(Span(trace_id=TRACE, span_id=SPAN_A, attributes=attributes)))
    attrs = record.attributes
    assert attrs["s"] == "text"
    assert attrs["b"] is True
    assert attrs["i"] == -7
    assert attrs["d"] == 0.25
    assert attrs["bytes"] == "00ff"
    assert attrs["arr"] == ["a", "b"]
    assert attrs["mixed"] == [1, "[2]"]
    assert isinstance(attrs["map"], str)
    assert json.loads(attrs["map"]) == {"k": "v", "nested": [1.5, False], "raw": "01"}
    assert "empty" not in attrs


def test_typed_accessors() -> None:
    attributes = [
        _kv(semconv.GEN_AI_OPERATION_NAME, AnyValue(string_value=semconv.Operation.CHAT)),
        _kv(semconv.GEN_AI_USAGE_INPUT_TOKENS, AnyValue(int_value=12)),
        _kv(semconv.AGENTMESH_COST_USD, AnyValue(double_value=0.5)),
        _kv(semconv.GEN_AI_REQUEST_STREAM, AnyValue(bool_value=True)),
    ]
    record = _only(_request(Span(trace_id=TRACE, span_id=SPAN_A, attributes=attributes)))
    assert record.operation == semconv.Operation.CHAT
    assert record.int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) == 12
    assert record.float_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) == 12.0
    assert record.float_attr(semconv.AGENTMESH_COST_USD) == 0.5
    assert record.int_attr(semconv.AGENTMESH_COST_USD) is None  # 0.5 is not integral
    assert record.int_attr(semconv.GEN_AI_REQUEST_STREAM) is None  # booleans are not numbers
    assert record.str_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) is None
    assert record.str_attr(semconv.GEN_AI_AGENT_NAME) is None


@pytest.mark.parametrize(
    ("trace_id", "span_id", "parent", "reason"),
    [
        (b"\x01" * 3, SPAN_A, b"", "trace_id has 3 bytes"),
        (bytes(16), SPAN_A, b"", "trace_id is all zeros"),
        (TRACE, b"\x01" * 4, b"", "span_id has 4 bytes"),
        (TRACE, bytes(8), b"", "span_id is all zeros"),
        (TRACE, SPAN_A, b"\x01" * 5, "parent_span_id has 5 bytes"),
    ],
)
def test_bad_ids_are_rejected_and_good_spans_kept(
    trace_id: bytes, span_id: bytes, parent: bytes, reason: str
) -> None:
    good_before = Span(trace_id=TRACE, span_id=SPAN_B, name="before")
    bad = Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name="bad")
    good_after = Span(trace_id=TRACE, span_id=bytes(range(21, 29)), name="after")
    result = decode_request(_request(good_before, bad, good_after))
    assert [s.name for s in result.spans] == ["before", "after"]
    assert result.rejected == 1
    assert "'bad'" in result.error_message
    assert reason in result.error_message


def test_a_span_ending_before_it_starts_is_kept_with_no_negative_duration() -> None:
    backwards = Span(
        trace_id=TRACE,
        span_id=SPAN_A,
        name="skewed",
        start_time_unix_nano=5_000,
        end_time_unix_nano=2_000,
    )
    fine = Span(
        trace_id=TRACE,
        span_id=SPAN_B,
        name="fine",
        start_time_unix_nano=1_000,
        end_time_unix_nano=3_000,
    )
    result = decode_request(_request(backwards, fine))
    skewed, kept = result.spans
    assert (skewed.start_ns, skewed.end_ns) == (5_000, 5_000)
    assert (kept.start_ns, kept.end_ns) == (1_000, 3_000)
    assert result.rejected == 0
    assert result.ends_moved == 1
    assert "1 span(s) ended before they started: kept with their end set to their start" in (
        result.error_message
    )


def test_rejections_are_counted_across_resources_with_a_bounded_message() -> None:
    bad = [Span(trace_id=b"\x01", span_id=SPAN_A, name=f"bad{i}") for i in range(5)]
    request = _request(*bad[:3])
    request.resource_spans.extend(
        _request(*bad[3:], Span(trace_id=TRACE, span_id=SPAN_A)).resource_spans
    )
    result = decode_request(request)
    assert result.rejected == 5
    assert len(result.spans) == 1
    assert "rejected 5 span(s)" in result.error_message
    assert "bad0" in result.error_message
    assert "bad4" not in result.error_message


def test_clean_request_has_no_error_message() -> None:
    result = decode_request(_request(Span(trace_id=TRACE, span_id=SPAN_A)))
    assert (result.rejected, result.error_message) == (0, "")


def test_round_trip_through_the_testing_encoder() -> None:
    f = SpanFactory(service_name="app")
    root = f.workflow("w", run_id="r1")
    agent = f.agent("researcher", parent=root, handoff_from="supervisor", context_size=12)
    chat = f.chat(parent=agent, input_tokens=5, output_tokens=2, cost_usd=0.001)
    request = to_otlp_request([root, agent, chat])
    assert count_spans(request) == 3
    assert decode_request(request).spans == [root, agent, chat]
