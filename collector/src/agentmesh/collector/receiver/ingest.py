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

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.batch import SpanBatch
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.normalize import normalize_spans
from agentmesh.collector.receiver.decode import (
    NOT_PROTOBUF,
    DecodeResult,
    count_spans,
    decode_request,
)
from agentmesh.collector.receiver.decode_errors import protobuf_problem
from agentmesh.collector.receiver.decode_pool import DecodePool, PoolBusyError
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.core.errors import ReceiverError
from agentmesh.core.log import get_logger

__all__ = ["Ingestor", "ReceiverBusyError", "ReceiverStats", "RequestObserver", "SpanSink"]

log = get_logger(__name__)

INLINE_DECODE_MAX_SPANS: Final = 2000
"""Without a decode pool, requests with more spans are decoded in a worker thread (in one pass)
to keep the loop free."""

POOL_MIN_BYTES: Final = 16 * 1024
"""With a decode pool, smaller requests are decoded inline: shipping them costs more than
decoding them."""

QUEUE_FULL: Final = "the AgentMesh collector is busy (ingest queue full); retry later"
SINK_FAILED: Final = "the AgentMesh collector could not accept the spans; retry later"


class SpanSink(Protocol):
    """Where the receiver hands each decoded batch.

    A plain function or an ``async`` one; it returns ``True`` when the batch was accepted and
    ``False`` when it cannot take it now (the receiver then asks the sender to retry later).
    Requests decoded in the receiver's process arrive as a list of records; requests decoded
    by a :class:`~agentmesh.collector.receiver.decode_pool.DecodePool` arrive as a
    :class:`~agentmesh.collector.batch.SpanBatch` (``batch_of`` turns either into a batch).
    """

    def __call__(self, spans: list[SpanRecord] | SpanBatch, /) -> bool | Awaitable[bool]:
        """Accept a batch of spans.

        Args:
            spans: The decoded spans of one request (never empty).

        Returns:
            Whether the batch was accepted, or an awaitable of it.
        """
        ...


@runtime_checkable
class SinkCapacity(Protocol):
    """A sink that can tell, before a request is decoded, that it would refuse it."""

    def has_room(self) -> bool:
        """Whether a new batch would be accepted now.

        Returns:
            ``False`` when the sink is full (the request is refused without being decoded).
        """
        ...


@runtime_checkable
class RequestObserver(Protocol):
    """A sink that also wants each request whose spans it accepted (forwarding hooks in here).

    When the :class:`SpanSink` given to an :class:`Ingestor` has this method too, it is called
    right after the sink accepted a request's spans, with the request as the receiver parsed it.
    It must not block; an exception from it is logged and does not affect the answer.
    """

    def request_accepted(self, request: ExportTraceServiceRequest | bytes, spans: int, /) -> None:
        """Take note of an accepted request.

        Args:
            request: The request as received (do not modify it): parsed, or its protobuf
                bytes when it was decoded by a decode pool.
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
            told of each request it accepted; when it is a :class:`SinkCapacity`, a request it
            has no room for is refused before it is decoded.
        limits: Per-span bounds applied while decoding.
        pool: Decode worker processes for serialized requests (see :meth:`ingest_payload`);
            without one, requests are decoded in this process.
    """

    def __init__(
        self, sink: SpanSink, limits: DecodeLimits, pool: DecodePool | None = None
    ) -> None:
        self._sink = sink
        self._observer = sink if isinstance(sink, RequestObserver) else None
        self._capacity = sink if isinstance(sink, SinkCapacity) else None
        self._limits = limits
        self._pool = pool
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
        self._check_room()
        try:
            result = await self._decode(request, rejected)
        except ReceiverError as exc:
            self._requests_refused += 1
            log.warning("otlp request refused", reason=str(exc))
            raise
        spans = normalize_spans(result.spans)
        if spans:
            await self._deliver(spans, len(spans), request)
        return self._account(result)

    async def ingest_payload(self, payload: bytes) -> DecodeResult:
        """Decode a serialized request and hand its valid spans to the sink.

        The decode pool decodes it when there is one and the request is not tiny.

        Args:
            payload: The ``ExportTraceServiceRequest`` protobuf bytes.

        Returns:
            What the request decoded into (with the pool, its ``spans`` list is empty: the
            spans went to the sink as a batch).

        Raises:
            ReceiverBusyError: The sink or the pool is full; the sender should retry.
            ReceiverError: The request could not be decoded.
        """
        pool = self._pool
        if pool is None or len(payload) < POOL_MIN_BYTES:
            try:
                request = ExportTraceServiceRequest.FromString(payload)
            except DecodeError as exc:
                self._requests += 1
                self._requests_refused += 1
                reason = f"{NOT_PROTOBUF}: {protobuf_problem(str(exc))}"
                log.warning("otlp request refused", reason=reason)
                raise ReceiverError(reason) from exc
            return await self.ingest(request)
        self._requests += 1
        self._check_room()
        try:
            decoded = await pool.decode(payload)
        except PoolBusyError as exc:
            self._requests_refused += 1
            self._requests_busy += 1
            log.debug("otlp request refused, decode pool busy", reason=str(exc))
            raise ReceiverBusyError(str(exc)) from exc
        except ReceiverError as exc:
            self._requests_refused += 1
            log.warning("otlp request refused", reason=str(exc))
            raise
        batch = decoded.batch()
        if len(batch):
            await self._deliver(batch, len(batch), payload)
        return self._account(decoded.result())

    def _check_room(self) -> None:
        if self._capacity is not None and not self._capacity.has_room():
            self._requests_refused += 1
            self._requests_busy += 1
            raise ReceiverBusyError(QUEUE_FULL)

    async def _deliver(
        self,
        spans: list[SpanRecord] | SpanBatch,
        count: int,
        request: ExportTraceServiceRequest | bytes,
    ) -> None:
        try:
            verdict = self._sink(spans)  # the observer gets the request as sent
            accepted = await verdict if inspect.isawaitable(verdict) else verdict
        except Exception as exc:
            self._requests_refused += 1
            self._requests_busy += 1
            log.exception("span sink failed", spans=count)
            raise ReceiverBusyError(SINK_FAILED) from exc
        if not accepted:
            self._requests_refused += 1
            self._requests_busy += 1
            log.debug("otlp request refused, queue full", spans=count)
            raise ReceiverBusyError(QUEUE_FULL)
        self._spans_accepted += count
        if self._observer is not None:
            try:
                self._observer.request_accepted(request, count)
            except Exception:
                log.exception("request observer failed", spans=count)

    def _account(self, result: DecodeResult) -> DecodeResult:
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
