"""What both OTLP transports share: decode a request, hand its spans to the sink, count.

:class:`Ingestor` turns a parsed ``ExportTraceServiceRequest`` into either a
:class:`DecodeResult` (the spans were accepted; the result carries what was rejected or
shortened) or an exception the transport maps to its own status: :class:`ReceiverBusyError`
(retry later: gRPC ``UNAVAILABLE``, HTTP 503) or :class:`~agentmesh.core.errors.ReceiverError`
(the request is malformed: gRPC ``INVALID_ARGUMENT``, HTTP 400).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.model import SpanRecord
from agentmesh.collector.normalize import normalize_spans
from agentmesh.collector.receiver.decode import DecodeResult, count_spans, decode_request
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.core.errors import ReceiverError
from agentmesh.core.log import get_logger

__all__ = ["Ingestor", "ReceiverBusyError", "ReceiverStats", "RequestObserver", "SpanSink"]

log = get_logger(__name__)

INLINE_DECODE_MAX_SPANS: Final = 2000
"""Requests with more spans are decoded in a worker thread (in one pass) to keep the loop free."""

QUEUE_FULL: Final = "the AgentMesh collector is busy (ingest queue full); retry later"
SINK_FAILED: Final = "the AgentMesh collector could not accept the spans; retry later"


class SpanSink(Protocol):
    """Where the receiver hands each decoded batch.

    A plain function or an ``async`` one; it returns ``True`` when the batch was accepted and
    ``False`` when it cannot take it now (the receiver then asks the sender to retry later).
    """

    def __call__(self, spans: list[SpanRecord], /) -> bool | Awaitable[bool]:
        """Accept a batch of spans.

        Args:
            spans: The decoded spans of one request (never empty).

        Returns:
            Whether the batch was accepted, or an awaitable of it.
        """
        ...


@runtime_checkable
class RequestObserver(Protocol):
    """A sink that also wants each request whose spans it accepted (forwarding hooks in here).

    When the :class:`SpanSink` given to an :class:`Ingestor` has this method too, it is called
    right after the sink accepted a request's spans, with the request as the receiver parsed it.
    It must not block; an exception from it is logged and does not affect the answer.
    """

    def request_accepted(self, request: ExportTraceServiceRequest, spans: int, /) -> None:
        """Take note of an accepted request.

        Args:
            request: The request as received (do not modify it).
            spans: How many of its spans the sink accepted.
        """
        ...


class ReceiverBusyError(ReceiverError):
    """The sink cannot take the batch now; the sender should retry later."""


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """Counters of a receiver since it started.

    Attributes:
        requests: Export requests answered.
        spans_accepted: Spans handed to the sink and accepted.
        spans_rejected: Spans rejected for invalid ids (reported as partial success).
        requests_refused: Requests refused: busy, malformed, too large or unauthenticated.
        requests_busy: Requests refused because the sink was full (retryable).
        requests_unauthenticated: Requests refused for missing or wrong credentials.
        attributes_dropped: Attributes dropped by the per-span limit.
        events_dropped: Events dropped by the per-span limit.
        values_truncated: Attribute values truncated or cut by the size and depth limits.
    """

    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0
    requests_refused: int = 0
    requests_busy: int = 0
    requests_unauthenticated: int = 0
    attributes_dropped: int = 0
    events_dropped: int = 0
    values_truncated: int = 0

    def __add__(self, other: ReceiverStats) -> ReceiverStats:
        """Sum two receivers' counters, field by field."""
        return ReceiverStats(
            requests=self.requests + other.requests,
            spans_accepted=self.spans_accepted + other.spans_accepted,
            spans_rejected=self.spans_rejected + other.spans_rejected,
            requests_refused=self.requests_refused + other.requests_refused,
            requests_busy=self.requests_busy + other.requests_busy,
            requests_unauthenticated=self.requests_unauthenticated + other.requests_unauthenticated,
            attributes_dropped=self.attributes_dropped + other.attributes_dropped,
            events_dropped=self.events_dropped + other.events_dropped,
            values_truncated=self.values_truncated + other.values_truncated,
        )


class Ingestor:
    """Decodes requests and feeds the sink, keeping one transport's counters.

    Args:
        sink: Receives each decoded batch; when it is also a :class:`RequestObserver`, it is
            told of each request it accepted.
        limits: Per-span bounds applied while decoding.
    """

    def __init__(self, sink: SpanSink, limits: DecodeLimits) -> None:
        self._sink = sink
        self._observer = sink if isinstance(sink, RequestObserver) else None
        self._limits = limits
        self._requests = 0
        self._spans_accepted = 0
        self._spans_rejected = 0
        self._requests_refused = 0
        self._requests_busy = 0
        self._requests_unauthenticated = 0
        self._attributes_dropped = 0
        self._events_dropped = 0
        self._values_truncated = 0

    @property
    def stats(self) -> ReceiverStats:
        """A snapshot of the counters."""
        return ReceiverStats(
            requests=self._requests,
            spans_accepted=self._spans_accepted,
            spans_rejected=self._spans_rejected,
            requests_refused=self._requests_refused,
            requests_busy=self._requests_busy,
            requests_unauthenticated=self._requests_unauthenticated,
            attributes_dropped=self._attributes_dropped,
            events_dropped=self._events_dropped,
            values_truncated=self._values_truncated,
        )

    def refused(self, *, unauthenticated: bool = False) -> None:
        """Count a request the transport refused before ingesting it.

        Args:
            unauthenticated: It was refused for its credentials.
        """
        self._requests += 1
        self._requests_refused += 1
        if unauthenticated:
            self._requests_unauthenticated += 1

    async def ingest(
        self, request: ExportTraceServiceRequest, *, rejected: Sequence[str] = ()
    ) -> DecodeResult:
        """Decode a request and hand its valid spans to the sink.

        Args:
            request: The parsed export request.
            rejected: Reasons for spans the transport already removed (one per span).

        Returns:
            What the request decoded into; its spans were accepted by the sink.

        Raises:
            ReceiverBusyError: The sink refused or failed; the sender should retry.
            ReceiverError: The request could not be decoded.
        """
        self._requests += 1
        try:
            result = await self._decode(request, rejected)
        except ReceiverError as exc:
            self._requests_refused += 1
            log.warning("otlp request refused", reason=str(exc))
            raise
        if result.spans:
            try:
                verdict = self._sink(normalize_spans(result.spans))  # observer: request as sent
                accepted = await verdict if inspect.isawaitable(verdict) else verdict
            except Exception as exc:
                self._requests_refused += 1
                self._requests_busy += 1
                log.exception("span sink failed", spans=len(result.spans))
                raise ReceiverBusyError(SINK_FAILED) from exc
            if not accepted:
                self._requests_refused += 1
                self._requests_busy += 1
                log.debug("otlp request refused, queue full", spans=len(result.spans))
                raise ReceiverBusyError(QUEUE_FULL)
            self._spans_accepted += len(result.spans)
            if self._observer is not None:
                try:
                    self._observer.request_accepted(request, len(result.spans))
                except Exception:
                    log.exception("request observer failed", spans=len(result.spans))
        self._attributes_dropped += result.attributes_dropped
        self._events_dropped += result.events_dropped
        self._values_truncated += result.values_truncated
        if result.error_message:
            self._spans_rejected += result.rejected
            log.warning(
                "otlp spans rejected or shortened",
                rejected=result.rejected,
                reason=result.error_message,
            )
        return result

    async def _decode(
        self, request: ExportTraceServiceRequest, rejected: Sequence[str]
    ) -> DecodeResult:
        if count_spans(request) > INLINE_DECODE_MAX_SPANS:
            return await asyncio.to_thread(decode_request, request, self._limits, rejected=rejected)
        return decode_request(request, self._limits, rejected=rejected)
