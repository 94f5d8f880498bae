"""One accepted OTLP request, encoded once for every forwarder that sends it.

The request is forwarded as it was received: the decode limits of the collector (attribute
counts, value sizes, depth) shape what AgentMesh stores, not what other backends get, so the
message the receiver parsed is serialised back unchanged (for OTLP/HTTP protobuf that is the
same bytes; gRPC and OTLP/JSON requests become their protobuf form). Serialising and gzipping
happen lazily, in the first forwarder worker that needs the body, off the receiving path, and in
a worker thread for large requests.
"""

from __future__ import annotations

import asyncio
import gzip
from typing import Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["ForwardPayload"]

_INLINE_SPANS: Final = 500
"""Requests with more spans are encoded in a worker thread to keep the event loop free."""

_GZIP_LEVEL: Final = 5
"""A balance of speed and size; OTLP compresses several-fold at any level."""


class ForwardPayload:
    """An accepted export request, with its gzipped protobuf body computed once.

    Args:
        request: The request as the receiver parsed it (not modified afterwards), or its
            protobuf bytes as received (forwarded without parsing them again).
        spans: How many of its spans the collector accepted (for the counters).
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
        return gzip.compress(raw, compresslevel=_GZIP_LEVEL)
