"""Turn an OTLP ``ExportTraceServiceRequest`` into :class:`SpanRecord` objects.

The whole request is decoded in one pass: resource and scope attributes once per group, each
span's attributes once. Spans whose trace, span or parent id has a wrong length (or is all
zeros) are rejected and counted, the valid spans around them are kept, so the receiver can
answer with an OTLP partial success.

Attribute values of every ``AnyValue`` kind are kept: strings, booleans, integers and doubles as
they are; arrays as lists (nested arrays and maps inside them as JSON strings); maps
(``kvlist``) as a JSON string; bytes as lowercase hex.

:class:`~agentmesh.collector.receiver.limits.DecodeLimits` bound each span: attributes and
events past the limit are dropped, long values truncated and deep values cut, never the whole
span; the counts come back in the :class:`DecodeResult` and in its message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
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
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.core.errors import ReceiverError

__all__ = ["DecodeResult", "count_spans", "decode_request"]

_TRACE_ID_BYTES: Final = 16
_SPAN_ID_BYTES: Final = 8
_MAX_NS: Final = 2**63 - 1
_MAX_REASONS: Final = 3
_NUMBER_BYTES: Final = 8
_DEFAULT_LIMITS: Final = DecodeLimits()

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

NOT_PROTOBUF: Final = (
    "could not decode the OTLP request: it is not a valid OTLP protobuf trace export"
)
"""The start of the error for a request body that does not parse."""

SpanFields: TypeAlias = tuple[
    str,
    str,
    str | None,
    str,
    SpanKind,
    int,
    int,
    StatusCode,
    str,
    dict[str, AttributeValue],
    tuple[SpanEventRecord, ...],
    dict[str, AttributeValue],
    str,
    str | None,
]
"""A decoded span's fields, in :class:`SpanRecord` order (what ``SpanRecord(*fields)`` takes)."""

_Json: TypeAlias = str | bool | int | float | list["_Json"] | dict[str, "_Json"] | None


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What one request decoded into.

    Attributes:
        spans: The valid spans, in request order.
        rejected: How many spans were rejected.
        error_message: For the OTLP partial-success answer: why spans were rejected and which
            limits were applied (empty when nothing was rejected or changed).
        attributes_dropped: Attributes dropped past ``max_attributes``.
        events_dropped: Events dropped past ``max_events``.
        values_truncated: Attribute values truncated past ``max_value_bytes`` or cut past
            ``max_depth``.
        ends_moved: Spans that ended before they started: their end was set to their start.
    """

    spans: list[SpanRecord] = field(default_factory=lambda: [])
    rejected: int = 0
    error_message: str = ""
    attributes_dropped: int = 0
    events_dropped: int = 0
    values_truncated: int = 0
    ends_moved: int = 0


def count_spans(request: ExportTraceServiceRequest) -> int:
    """Count the spans of a request without decoding them.

    Args:
        request: The OTLP request.

    Returns:
        The number of spans it carries.
    """
    return sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)


def decode_request(
    request: ExportTraceServiceRequest,
    limits: DecodeLimits = _DEFAULT_LIMITS,
    *,
    rejected: Sequence[str] = (),
) -> DecodeResult:
    """Decode every span of an OTLP trace export request.

    Args:
        request: The OTLP request.
        limits: Bounds on attributes, events and values per span.
        rejected: One reason per span the caller already removed from the request (the OTLP/JSON
            reader does so for ids that are not hex); they are counted and reported too.

    Returns:
        The valid spans, the count and reasons of the rejected ones, and what the limits changed.

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
        return _Decoder(limits).decode(request, list(rejected))
    except (ValueError, TypeError, RecursionError) as exc:
        raise ReceiverError(f"could not decode the OTLP request: {exc}") from exc


class _Decoder:
    """One request's decoding: the limits in fast local form and the counts of what they did."""

    __slots__ = (
        "attributes_dropped",
        "ends_moved",
        "events_dropped",
        "limits",
        "max_attributes",
        "max_bytes",
        "max_depth",
        "max_events",
        "rejected",
        "safe_chars",
        "values_truncated",
    )

    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self.max_attributes = limits.max_attributes
        self.max_events = limits.max_events
        self.max_bytes = limits.max_value_bytes
        self.safe_chars = limits.max_value_bytes // 4  # no UTF-8 character takes more than 4
        self.max_depth = limits.max_depth
        self.attributes_dropped = 0
        self.events_dropped = 0
        self.rejected = 0
        self.values_truncated = 0
        self.ends_moved = 0

    def decode(self, request: ExportTraceServiceRequest, reasons: list[str]) -> DecodeResult:
        rejected = len(reasons)
        spans = [SpanRecord(*fields) for fields in self.fields(request, reasons)]
        rejected += self.rejected
        return DecodeResult(
            spans=spans,
            rejected=rejected,
            error_message=self.message(rejected, reasons),
            attributes_dropped=self.attributes_dropped,
            events_dropped=self.events_dropped,
            values_truncated=self.values_truncated,
            ends_moved=self.ends_moved,
        )

    def fields(
        self, request: ExportTraceServiceRequest, reasons: list[str]
    ) -> Iterator[SpanFields]:
        """Yield each valid span's fields, in :class:`SpanRecord` order; count the rest."""
        del reasons[_MAX_REASONS:]
        attributes = self.attributes
        max_events = self.max_events
        kinds = _KINDS
        statuses = _STATUSES
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            service = resource.get(SERVICE_NAME)
            service_name = service if isinstance(service, str) else None
            for scope_spans in resource_spans.scope_spans:
                scope_name = scope_spans.scope.name
                for span in scope_spans.spans:
                    problem = _id_problem(span)
                    if problem is not None:
                        self.rejected += 1
                        if len(reasons) < _MAX_REASONS:
                            reasons.append(f"span {span.name!r}: {problem}")
                        continue
                    parent = span.parent_span_id
                    events = span.events
                    if events:
                        if len(events) > max_events:
                            self.events_dropped += len(events) - max_events
                            events = events[:max_events]
                        records = tuple(
                            SpanEventRecord(
                                name=event.name,
                                time_ns=min(event.time_unix_nano, _MAX_NS),
                                attributes=attributes(event.attributes),
                            )
                            for event in events
                        )
                    else:
                        records = ()
                    status = span.status
                    start = min(span.start_time_unix_nano, _MAX_NS)
                    end = min(span.end_time_unix_nano, _MAX_NS)
                    if end < start:  # a clock that went back: no negative duration is kept
                        end = start
                        self.ends_moved += 1
                    yield (
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        parent.hex() if parent and any(parent) else None,
                        span.name,
                        kinds.get(span.kind, "unspecified"),
                        start,
                        end,
                        statuses.get(status.code, "unset"),
                        status.message,
                        attributes(span.attributes),
                        records,
                        resource,
                        scope_name,
                        service_name,
                    )

    def message(self, rejected: int, reasons: list[str]) -> str:
        parts: list[str] = []
        if rejected:
            text = f"rejected {rejected} span(s) with invalid ids: " + "; ".join(reasons)
            parts.append(text + ("; …" if rejected > len(reasons) else ""))
        limits = self.limits
        applied: list[str] = []
        if self.attributes_dropped:
            applied.append(
                f"dropped {self.attributes_dropped} attribute(s) past the limit of "
                f"{limits.max_attributes} per span, event or resource"
            )
        if self.events_dropped:
            applied.append(
                f"dropped {self.events_dropped} event(s) past the limit of "
                f"{limits.max_events} per span"
            )
        if self.values_truncated:
            applied.append(
                f"truncated {self.values_truncated} attribute value(s) longer than "
                f"{limits.max_value_bytes} bytes or nested deeper than {limits.max_depth} levels"
            )
        if applied:
            parts.append("spans kept but shortened: " + "; ".join(applied))
        if self.ends_moved:
            parts.append(
                f"{self.ends_moved} span(s) ended before they started: kept with their end "
                "set to their start"
            )
        return ". ".join(parts)

    def attributes(self, pairs: Sequence[KeyValue]) -> dict[str, AttributeValue]:
        if len(pairs) > self.max_attributes:
            self.attributes_dropped += len(pairs) - self.max_attributes
            pairs = pairs[: self.max_attributes]
        result: dict[str, AttributeValue] = {}
        value_of = self.value
        safe_chars = self.safe_chars
        for pair in pairs:
            any_value = pair.value
            kind = any_value.WhichOneof("value")
            # The common kinds inline (this loop is most of the decoding time); the rest, and
            # strings that may need truncating, through `value`.
            if kind == "string_value":
                text = any_value.string_value
                result[pair.key] = text if len(text) <= safe_chars else self.fit(text)
            elif kind == "int_value":
                result[pair.key] = any_value.int_value
            elif kind == "double_value":
                result[pair.key] = any_value.double_value
            else:
                value = value_of(any_value)
                if value is not None:
                    result[pair.key] = value
        return result

    def value(self, value: AnyValue) -> AttributeValue | None:
        kind = value.WhichOneof("value")
        if kind == "string_value":
            text = value.string_value
            return text if len(text) <= self.safe_chars else self.fit(text)
        if kind == "bool_value":
            return value.bool_value
        if kind == "int_value":
            return value.int_value
        if kind == "double_value":
            return value.double_value
        if kind == "bytes_value":
            raw = value.bytes_value
            if len(raw) * 2 > self.max_bytes:
                self.values_truncated += 1
                raw = raw[: self.max_bytes // 2]
            return raw.hex()
        if kind == "array_value":
            return self.array(value.array_value.values)
        if kind == "kvlist_value":
            return self.fit(_dumps(self.json(value, 1)))
        return None  # empty, or a profiling-only string index

    def fit(self, text: str) -> str:
        """Truncate ``text`` to ``max_bytes`` of UTF-8 without splitting a character."""
        if len(text) <= self.safe_chars:
            return text
        encoded = text.encode("utf-8", "surrogatepass")
        if len(encoded) <= self.max_bytes:
            return text
        self.values_truncated += 1
        return encoded[: self.max_bytes].decode("utf-8", "ignore")

    def array(self, values: Sequence[AnyValue]) -> list[AttributeScalar]:
        items: list[AttributeScalar] = []
        budget = self.max_bytes
        for item in values:
            scalar = self.scalar(item)
            if scalar is None:
                continue
            if isinstance(scalar, str):
                budget -= len(scalar) if scalar.isascii() else len(scalar.encode("utf-8"))
            else:
                budget -= _NUMBER_BYTES
            if budget < 0:
                self.values_truncated += 1
                break
            items.append(scalar)
        return items

    def scalar(self, value: AnyValue) -> AttributeScalar | None:
        kind = value.WhichOneof("value")
        if kind == "array_value" or kind == "kvlist_value":
            return self.fit(_dumps(self.json(value, 2)))
        nested = self.value(value)
        return nested if not isinstance(nested, list) else None

    def json(self, value: AnyValue, depth: int) -> _Json:
        kind = value.WhichOneof("value")
        if kind == "array_value":
            if depth > self.max_depth:
                self.values_truncated += 1
                return None
            return [self.json(item, depth + 1) for item in value.array_value.values]
        if kind == "kvlist_value":
            if depth > self.max_depth:
                self.values_truncated += 1
                return None
            return {
                pair.key: self.json(pair.value, depth + 1) for pair in value.kvlist_value.values
            }
        nested = self.value(value)
        return None if isinstance(nested, list) else nested


def _id_problem(span: Span) -> str | None:
    trace_id = span.trace_id
    if len(trace_id) != _TRACE_ID_BYTES:
        return f"trace_id has {len(trace_id)} bytes, expected {_TRACE_ID_BYTES}"
    if not any(trace_id):
        return "trace_id is all zeros (an invalid id)"
    span_id = span.span_id
    if len(span_id) != _SPAN_ID_BYTES:
        return f"span_id has {len(span_id)} bytes, expected {_SPAN_ID_BYTES}"
    if not any(span_id):
        return "span_id is all zeros (an invalid id)"
    parent = span.parent_span_id
    if parent and len(parent) != _SPAN_ID_BYTES:
        return f"parent_span_id has {len(parent)} bytes, expected 0 or {_SPAN_ID_BYTES}"
    return None


def _dumps(value: _Json) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
