"""OTLP/JSON bodies: hex ids (not base64), enum ints, camelCase and snake_case, bad bodies."""

import base64
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentmesh.collector.receiver.otlp_json import parse_json_request, to_json
from agentmesh.core import ReceiverError

TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "eee19b7ec3c1b173"


def _body(*spans: dict[str, object]) -> bytes:
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [{"scope": {"name": "lib"}, "spans": list(spans)}],
            }
        ]
    }
    return json.dumps(document).encode()


def test_hex_ids_enum_ints_and_string_int64() -> None:
    body = _body(
        {
            "traceId": TRACE_HEX,
            "spanId": SPAN_HEX,
            "parentSpanId": PARENT_HEX,
            "name": "chat",
            "kind": 3,
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": 1544712661000000000,
            "status": {"code": 2, "message": "boom"},
            "attributes": [
                {"key": "n", "value": {"intValue": "42"}},
                {"key": "raw", "value": {"bytesValue": base64.b64encode(b"\x01\x02").decode()}},
            ],
            "links": [{"traceId": TRACE_HEX, "spanId": PARENT_HEX}],
            "someFutureField": True,
        }
    )
    parsed = parse_json_request(body)
    assert parsed.rejected == []
    span = parsed.request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE_HEX
    assert span.span_id.hex() == SPAN_HEX
    assert span.parent_span_id.hex() == PARENT_HEX
    assert span.links[0].span_id.hex() == PARENT_HEX
    assert span.kind == 3
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.status.code == 2
    assert span.attributes[0].value.int_value == 42
    assert span.attributes[1].value.bytes_value == b"\x01\x02"  # bytes values stay base64


def test_snake_case_names_are_accepted() -> None:
    body = _body({"trace_id": TRACE_HEX, "span_id": SPAN_HEX, "name": "s"})
    span = parse_json_request(body).request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE_HEX


def test_span_with_non_hex_id_is_removed_and_reported() -> None:
    body = _body(
        {"traceId": TRACE_HEX, "spanId": SPAN_HEX, "name": "good"},
        {"traceId": "W47/95gDgQPSabYzgT/GDA==", "spanId": SPAN_HEX, "name": "base64-id"},
    )
    parsed = parse_json_request(body)
    spans = parsed.request.resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == ["good"]
    (reason,) = parsed.rejected
    assert "base64-id" in reason
    assert "not a hex string" in reason


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not an OTLP/JSON object"),
        (b'{"resourceSpans": 5}', "not a valid OTLP/JSON trace export"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', "not a valid"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_bodies_are_receiver_errors(body: bytes, words: str) -> None:
    with pytest.raises(ReceiverError, match=words):
        parse_json_request(body)


def test_response_json_uses_camel_case() -> None:
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 2
    response.partial_success.error_message = "why"
    assert json.loads(to_json(response)) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "why"}
    }


def test_a_too_deep_value_is_named_with_its_place_in_a_short_message() -> None:
    value: dict[str, object] = {"stringValue": "x"}
    for _ in range(50):
        value = {"arrayValue": {"values": [value]}}
    span = {"name": "s", "traceId": "01" * 16, "spanId": "02" * 8}
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span | {"attributes": [
        {"key": "k", "value": value}]}]}]}]}  # fmt: skip
    with pytest.raises(ReceiverError) as refused:
        parse_json_request(json.dumps(body).encode())
    message = str(refused.value)
    assert len(message) < 400  # one clause per level used to run to 1.7 KB
    assert "at resourceSpans.scopeSpans.spans.attributes.value.values x" in message
    assert "nested too deeply" in message
