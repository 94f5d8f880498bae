"""Turn an OTLP ``ExportTraceServiceRequest`` into :class:`SpanRecord` objects.

The whole request is decoded in one pass: resource and scope attributes once per group, each
span's attributes once. Spans whose trace, span or parent id has a wrong length (or is all
zeros) are rejected and counted, the valid spans around them are kept, so the receiver can
answer with an OTLP partial success.

Attribute values of every ``AnyValue`` kind are kept: strings, booleans, integers and doubles as
they are; arrays as lists (nested arrays and maps inside them as JSON strings); maps
(``kvlist``) as a JSON string; bytes as lowercase hex.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agentmesh.collector.model import (
    SERVICE_NAME,
    AttributeScalar,
    AttributeValue,
    SpanEventRecord,
    SpanKind,
    SpanRecord,
    StatusCode,
)
from agentmesh.core.errors import ReceiverError

__all__ = ["DecodeResult", "count_spans", "decode_request"]

_TRACE_ID_BYTES: Final = 16
_SPAN_ID_BYTES: Final = 8
_MAX_NS: Final = 2**63 - 1
_MAX_REASONS: Final = 3

_KINDS: Final[dict[int, SpanKind]] = {
    Span.SPAN_KIND_UNSPECIFIED: "unspecified",
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
_STATUSES: Final[dict[int, StatusCode]] = {
    Status.STATUS_CODE_UNSET: "unset",
    Status.STATUS_CODE_OK: "ok",
    Status.STATUS_CODE_ERROR: "error",
}

_Json: TypeAlias = str | bool | int | float | list["_Json"] | dict[str, "_Json"] | None


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What one request decoded into.

    Attributes:
        spans: The valid spans, in request order.
        rejected: How many spans were rejected.
        error_message: Why, for the OTLP partial-success answer (empty when none was rejected).
    """

    spans: list[SpanRecord] = field(default_factory=lambda: [])
    rejected: int = 0
    error_message: str = ""


def count_spans(request: ExportTraceServiceRequest) -> int:
    """Count the spans of a request without decoding them.

    Args:
        request: The OTLP request.

    Returns:
        The number of spans it carries.
    """
    return sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)


def decode_request(request: ExportTraceServiceRequest) -> DecodeResult:
    """Decode every span of an OTLP trace export request.

    Args:
        request: The OTLP request.

    Returns:
        The valid spans, and the count and reasons of the rejected ones.

    Raises:
        ReceiverError: The request as a whole could not be decoded.

    Example:
        >>> from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
        >>> good = Span(trace_id=bytes(15) + bytes([1]), span_id=bytes(7) + bytes([2]), name="ok")
        >>> bad = Span(trace_id=bytes([1]), span_id=bytes(7) + bytes([3]), name="bad")
        >>> request = ExportTraceServiceRequest(
        ...     resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[good, bad])])]
        ... )
        >>> result = decode_request(request)
        >>> [s.name for s in result.spans], result.rejected
        (['ok'], 1)
    """
    try:
        return _decode(request)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ReceiverError(f"could not decode the OTLP request: {exc}") from exc


def _decode(request: ExportTraceServiceRequest) -> DecodeResult:
    spans: list[SpanRecord] = []
    rejected = 0
    reasons: list[str] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get(SERVICE_NAME)
        service_name = service if isinstance(service, str) else None
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                problem = _id_problem(span)
                if problem is not None:
                    rejected += 1
                    if len(reasons) < _MAX_REASONS:
                        reasons.append(f"span {span.name!r}: {problem}")
                    continue
                parent = span.parent_span_id
                spans.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=parent.hex() if parent and any(parent) else None,
                        name=span.name,
                        kind=_KINDS.get(span.kind, "unspecified"),
                        start_ns=min(span.start_time_unix_nano, _MAX_NS),
                        end_ns=min(span.end_time_unix_nano, _MAX_NS),
                        status_code=_STATUSES.get(span.status.code, "unset"),
                        status_message=span.status.message,
                        attributes=_attributes(span.attributes),
                        events=tuple(
                            SpanEventRecord(
                                name=event.name,
                                time_ns=min(event.time_unix_nano, _MAX_NS),
                                attributes=_attributes(event.attributes),
                            )
                            for event in span.events
                        ),
                        resource_attributes=resource,
                        scope_name=scope_name,
                        service_name=service_name,
                    )
                )
    message = ""
    if rejected:
        message = f"rejected {rejected} span(s) with invalid ids: " + "; ".join(reasons)
        if rejected > len(reasons):
            message += "; …"
    return DecodeResult(spans=spans, rejected=rejected, error_message=message)


def _id_problem(span: Span) -> str | None:
    trace_id = span.trace_id
    if len(trace_id) != _TRACE_ID_BYTES or not any(trace_id):
        return f"trace_id has {len(trace_id)} bytes, expected {_TRACE_ID_BYTES} not all zero"
    span_id = span.span_id
    if len(span_id) != _SPAN_ID_BYTES or not any(span_id):
        return f"span_id has {len(span_id)} bytes, expected {_SPAN_ID_BYTES} not all zero"
    parent = span.parent_span_id
    if parent and len(parent) != _SPAN_ID_BYTES:
        return f"parent_span_id has {len(parent)} bytes, expected 0 or {_SPAN_ID_BYTES}"
    return None


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, AttributeValue]:
    result: dict[str, AttributeValue] = {}
    for pair in pairs:
        value = _value(pair.value)
        if value is not None:
            result[pair.key] = value
    return result


def _value(value: AnyValue) -> AttributeValue | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "array_value":
        items: list[AttributeScalar] = []
        for item in value.array_value.values:
            scalar = _scalar(item)
            if scalar is not None:
                items.append(scalar)
        return items
    if kind == "kvlist_value":
        return _dumps(_json(value))
    return None  # empty, or a profiling-only string index


def _scalar(value: AnyValue) -> AttributeScalar | None:
    kind = value.WhichOneof("value")
    if kind in ("array_value", "kvlist_value"):
        return _dumps(_json(value))
    nested = _value(value)
    return nested if not isinstance(nested, list) else None


def _json(value: AnyValue) -> _Json:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_json(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {pair.key: _json(pair.value) for pair in value.kvlist_value.values}
    nested = _value(value)
    return None if isinstance(nested, list) else nested


def _dumps(value: _Json) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
