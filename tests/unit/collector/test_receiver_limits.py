"""Per-span limits in the decoder: spans are always kept, what is over a limit is shortened."""

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from agentmesh.collector import SpanRecord, decode_request
from agentmesh.collector.receiver import DecodeLimits

TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


def _span(attributes: list[KeyValue] | None = None, events: int = 0) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=SPAN,
        name="s",
        attributes=attributes or [],
        events=[Span.Event(name=f"e{i}", time_unix_nano=i + 1) for i in range(events)],
    )


def _request(span: Span) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _nested(depth: int) -> AnyValue:
    """A map nested ``depth`` levels deep: {"k": {"k": … "leaf"}}."""
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        value = AnyValue(kvlist_value=KeyValueList(values=[_kv("k", value)]))
    return value


def _decode_one(span: Span, limits: DecodeLimits) -> tuple[SpanRecord, str]:
    result = decode_request(_request(span), limits)
    assert result.rejected == 0
    (record,) = result.spans
    return record, result.error_message


def test_within_limits_nothing_changes_and_no_message() -> None:
    span = _span([_kv("a", AnyValue(string_value="x" * 100))], events=3)
    result = decode_request(_request(span), DecodeLimits(max_value_bytes=100, max_events=3))
    assert result.error_message == ""
    assert (result.attributes_dropped, result.events_dropped, result.values_truncated) == (0, 0, 0)
    assert result.spans[0].attributes["a"] == "x" * 100


def test_extra_attributes_are_dropped_first_ones_kept() -> None:
    attributes = [_kv(f"k{i}", AnyValue(int_value=i)) for i in range(10)]
    result = decode_request(_request(_span(attributes)), DecodeLimits(max_attributes=4))
    (record,) = result.spans
    assert list(record.attributes) == ["k0", "k1", "k2", "k3"]
    assert result.attributes_dropped == 6
    assert "dropped 6 attribute(s) past the limit of 4" in result.error_message
    assert result.rejected == 0


def test_extra_events_are_dropped_and_counted() -> None:
    result = decode_request(_request(_span(events=5)), DecodeLimits(max_events=2))
    (record,) = result.spans
    assert [e.name for e in record.events] == ["e0", "e1"]
    assert result.events_dropped == 3
    assert "dropped 3 event(s) past the limit of 2 per span" in result.error_message


def test_long_string_is_truncated_on_a_character_boundary() -> None:
    text = "é" * 100  # 200 bytes of UTF-8
    record, message = _decode_one(
        _span([_kv("s", AnyValue(string_value=text))]), DecodeLimits(max_value_bytes=101)
    )
    value = record.attributes["s"]
    assert value == "é" * 50  # 100 bytes: the 101st would split a character
    assert "truncated 1 attribute value(s) longer than 101 bytes" in message


def test_long_bytes_value_is_cut_before_hex() -> None:
    record, _ = _decode_one(
        _span([_kv("b", AnyValue(bytes_value=bytes(100)))]), DecodeLimits(max_value_bytes=64)
    )
    assert record.attributes["b"] == "00" * 32


def test_long_array_loses_its_last_items() -> None:
    items = [AnyValue(string_value="abcdefghij") for _ in range(10)]
    record, message = _decode_one(
        _span([_kv("arr", AnyValue(array_value=ArrayValue(values=items)))]),
        DecodeLimits(max_value_bytes=64),
    )
    assert record.attributes["arr"] == ["abcdefghij"] * 6
    assert "truncated 1" in message


def test_deep_map_is_cut_to_null_below_the_depth_limit() -> None:
    record, message = _decode_one(_span([_kv("m", _nested(5))]), DecodeLimits(max_depth=3))
    value = record.attributes["m"]
    assert isinstance(value, str)
    assert json.loads(value) == {"k": {"k": {"k": None}}}
    assert "nested deeper than 3 levels" in message


def test_map_at_the_depth_limit_is_kept_whole() -> None:
    record, message = _decode_one(_span([_kv("m", _nested(3))]), DecodeLimits(max_depth=3))
    value = record.attributes["m"]
    assert isinstance(value, str)
    assert json.loads(value) == {"k": {"k": {"k": "leaf"}}}
    assert message == ""


def test_limits_and_rejections_share_one_message() -> None:
    good = _span([_kv(f"k{i}", AnyValue(bool_value=True)) for i in range(3)])
    bad = Span(trace_id=bytes(3), span_id=SPAN, name="bad")
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[good, bad])])]
    )
    result = decode_request(request, DecodeLimits(max_attributes=1), rejected=["span 'x': no"])
    assert result.rejected == 2
    assert len(result.spans) == 1
    assert result.error_message.startswith("rejected 2 span(s) with invalid ids: span 'x': no; ")
    assert "spans kept but shortened: dropped 2 attribute(s)" in result.error_message
