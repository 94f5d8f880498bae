"""Read and write the OTLP/JSON encoding of trace exports.

OTLP/JSON is protobuf's JSON mapping with one exception that matters: trace and span ids are
**hex** strings (``"5b8efff798038103d269b633813fc60c"``), where proto3 JSON would expect base64
for a ``bytes`` field. Parsing OTLP/JSON with :func:`google.protobuf.json_format.Parse` as is
would silently turn a 32-digit hex trace id into 24 wrong bytes (hex digits are valid base64).
So the ids (``traceId``, ``spanId``, ``parentSpanId`` of spans and of their links, in
lowerCamelCase or snake_case) are converted from hex to base64 first; every other field,
including ``bytesValue`` attribute values, follows proto3 JSON. Enums as integers, 64-bit
integers as strings or numbers and unknown fields are accepted.

A span whose id is not hex is removed and reported (the rest of the request is kept); a body
that is not valid OTLP/JSON at all is a :class:`~agentmesh.core.errors.ReceiverError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Final, cast

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.receiver.decode_errors import json_problem
from agentmesh.core.errors import ReceiverError

__all__ = ["JsonRequest", "parse_json_request", "to_json"]

_SPAN_IDS: Final = (
    ("traceId", "trace_id"),
    ("spanId", "span_id"),
    ("parentSpanId", "parent_span_id"),
)
_LINK_IDS: Final = (("traceId", "trace_id"), ("spanId", "span_id"))


@dataclass(frozen=True, slots=True)
class JsonRequest:
    """An OTLP/JSON body read into a protobuf request.

    Attributes:
        request: The request, without the spans whose ids were not hex.
        rejected: One reason per removed span.
    """

    request: ExportTraceServiceRequest
    rejected: list[str] = field(default_factory=lambda: [])


def parse_json_request(body: bytes) -> JsonRequest:
    """Parse an OTLP/JSON trace export body.

    Args:
        body: The (decompressed) request body, UTF-8 JSON.

    Returns:
        The request and the reasons for the spans removed from it.

    Raises:
        ReceiverError: The body is not JSON, or not an OTLP trace export.

    Example:
        >>> body = (
        ...     b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"s",'
        ...     b'"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",'
        ...     b'"kind":3}]}]}]}'
        ... )
        >>> span = parse_json_request(body).request.resource_spans[0].scope_spans[0].spans[0]
        >>> span.trace_id.hex(), span.kind
        ('0102030405060708090a0b0c0d0e0f10', 3)
    """
    try:
        document: object = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ReceiverError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ReceiverError('the body is not an OTLP/JSON object (expected {"resourceSpans": …})')
    root = cast(dict[str, object], document)
    rejected: list[str] = []
    _convert_ids(root, rejected)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(root, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise ReceiverError(
            f"the body is not a valid OTLP/JSON trace export: {json_problem(str(exc))}"
        ) from exc
    return JsonRequest(request=request, rejected=rejected)


def to_json(message: Message) -> bytes:
    """Encode a response (or a ``google.rpc.Status``) as OTLP/JSON.

    Args:
        message: The protobuf message.

    Returns:
        Compact UTF-8 JSON with lowerCamelCase names.
    """
    return json_format.MessageToJson(message, indent=None).encode("utf-8")


def _convert_ids(document: dict[str, object], rejected: list[str]) -> None:
    for resource_spans in _items(_field(document, "resourceSpans", "resource_spans")):
        for scope_spans in _items(_field(resource_spans, "scopeSpans", "scope_spans")):
            found = _field(scope_spans, "spans", "spans")
            if not isinstance(found, list):
                continue
            spans = cast(list[object], found)
            kept: list[object] = []
            for item in spans:
                if not isinstance(item, dict):
                    kept.append(item)  # ParseDict reports it
                    continue
                span = cast(dict[str, object], item)
                problem = _convert(span, _SPAN_IDS)
                for link in _items(_field(span, "links", "links")):
                    problem = problem or _convert(link, _LINK_IDS)
                if problem is None:
                    kept.append(span)
                else:
                    rejected.append(f"span {span.get('name')!r}: {problem}")
            spans[:] = kept


def _field(obj: dict[str, object], camel: str, snake: str) -> object:
    return obj.get(camel, obj.get(snake))


def _items(value: object) -> list[dict[str, object]]:
    if not isinstance(value, list):
        return []
    return [
        cast(dict[str, object], item)
        for item in cast(list[object], value)
        if isinstance(item, dict)
    ]


def _convert(obj: dict[str, object], names: tuple[tuple[str, str], ...]) -> str | None:
    for names_pair in names:
        for name in names_pair:
            value = obj.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not _is_hex(value):
                return f"{names_pair[0]} {value!r:.40} is not a hex string"
            obj[name] = base64.b64encode(binascii.unhexlify(value)).decode("ascii")
    return None


def _is_hex(value: str) -> bool:
    if len(value) % 2 or not value.isascii():
        return False
    try:
        binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        return False
    return True
