"""One accepted OTLP request, encoded once for every forwarder that sends it.

The request is forwarded as it was received: the decode limits of the collector (attribute
counts, value sizes, depth) shape what AgentMesh stores, not what other backends get, so the
message the receiver parsed is serialised back unchanged (for OTLP/HTTP protobuf that is the
same bytes; gRPC and OTLP/JSON requests become their protobuf form), with one exception: the
start markers AgentMesh's instrumentation exports (zero-length ``agentmesh.step.start`` spans
carrying ``agentmesh.step.started``, a signal for the stuck-step detector) are left out, as the
``filter/step_markers`` processor of ``otel-collector.yaml`` leaves them out, since LangSmith and
Braintrust would show each as an extra run. A request without markers (found by a byte search,
without parsing) is forwarded as it is. Serialising, filtering and gzipping happen lazily, in
the first forwarder worker that needs the body, off the receiving path, and in a worker thread
for large requests.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from typing import Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agentmesh.core import semconv

__all__ = ["ForwardPayload", "without_step_markers"]

_MARKER_KEY: Final = semconv.AGENTMESH_STEP_STARTED
_MARKER_BYTES: Final = _MARKER_KEY.encode()

_INLINE_SPANS: Final = 500
"""Requests with more spans are encoded in a worker thread to keep the event loop free."""

_GZIP_LEVEL: Final = 5
"""A balance of speed and size; OTLP compresses several-fold at any level."""


class ForwardPayload:
    """An accepted export request, with its gzipped protobuf body computed once.

    Args:
        request: The request as the receiver parsed it (not modified afterwards), or its
            protobuf bytes as received (forwarded without parsing them again).
        spans: How many of its spans the collector accepted (for the counters; once the body
            is built, how many it forwards: start markers are not).
    """

    __slots__ = ("_body", "_request", "spans")

    def __init__(self, request: ExportTraceServiceRequest | bytes, spans: int) -> None:
        self._request = request
        self._body: bytes | None = None
        self.spans = spans

    async def body(self) -> bytes:
        """The request as gzipped OTLP protobuf (``Content-Encoding: gzip``).

        Returns:
            The compressed body; the same bytes on every call.
        """
        body = self._body
        if body is None:
            if self.spans > _INLINE_SPANS:
                body = await asyncio.to_thread(self._encode)
            else:
                body = self._encode()
            self._body = body
        return body

    def _encode(self) -> bytes:
        request = self._request
        raw = request if isinstance(request, bytes) else request.SerializeToString()
        raw, removed = without_step_markers(raw)
        self.spans = max(0, self.spans - removed)
        return gzip.compress(raw, compresslevel=_GZIP_LEVEL)


def without_step_markers(raw: bytes) -> tuple[bytes, int]:
    """Leave AgentMesh's start markers out of a serialised export request.

    Args:
        raw: An ``ExportTraceServiceRequest`` as protobuf bytes.

    Returns:
        The request without its marker spans (the same bytes when it has none; scopes and
        resources left without spans are dropped), and how many spans were removed.

    Example:
        >>> from agentmesh.collector.testing import SpanFactory, to_otlp_request
        >>> f = SpanFactory()
        >>> raw = to_otlp_request([f.workflow("w")]).SerializeToString()
        >>> without_step_markers(raw) == (raw, 0)
        True
    """
    if _MARKER_BYTES not in raw:
        return raw, 0
    request = ExportTraceServiceRequest.FromString(raw)
    removed = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            removed += _drop(scope_spans.spans, _is_marker)
        _drop(resource_spans.scope_spans, lambda scope: not scope.spans)
    if not removed:
        return raw, 0  # the key was in a value, not on a marker
    _drop(request.resource_spans, lambda resource: not resource.scope_spans)
    return request.SerializeToString(), removed


def _drop(items: Any, unwanted: Callable[[Any], bool]) -> int:
    """Delete the unwanted messages of a repeated field in place; return how many."""
    doomed = [index for index, item in enumerate(items) if unwanted(item)]
    for index in reversed(doomed):
        del items[index]
    return len(doomed)


def _is_marker(span: Span) -> bool:
    return any(pair.key == _MARKER_KEY for pair in span.attributes)
