"""Detections as OTLP spans, so LangSmith, Braintrust and Grafana show them in the run's trace.

Each detection becomes one zero-length span in the trace it was seen in, a child of the first
span that shows it, named ``agentmesh.detection <type>``, at the time it was detected. It carries
the ``agentmesh.detection.*`` attributes and ``agentmesh.run.id``, and a span event
``agentmesh.detection`` with the same attributes (backends that show events but not attributes
still show it). A detection of severity ``error`` or ``critical`` has status ``ERROR`` with the
explanation as its message. The span id is derived from the detection id, so exporting the same
detection twice gives the same span.

:class:`DetectionExporter` batches detections (a batch every 200 ms, or as soon as 100 are
waiting) and hands each batch as one ``ExportTraceServiceRequest`` to a request sink: the
collector's forwarders (:meth:`~agentmesh.collector.forward.Forwarders.offer`), which send it
like any accepted request.

Example:
    >>> from agentmesh.collector.detection import Detection
    >>> d = Detection(
    ...     "det-1", "handoff_loop", "error", "0af7651916cd43dd8448eb211c80319c", "run-1",
    ...     "supervisor", ("b7ad6b7169203331",), "cycle repeated", 1_700_000_000_000_000_000,
    ... )
    >>> span = detection_span(d)
    >>> span.name, span.parent_span_id.hex(), span.start_time_unix_nano == span.end_time_unix_nano
    ('agentmesh.detection handoff_loop', 'b7ad6b7169203331', True)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from agentmesh.collector.detection import Detection
from agentmesh.collector.events.batcher import Batcher
from agentmesh.core import semconv
from agentmesh.core.log import get_logger

__all__ = [
    "DETECTION_SCOPE",
    "DETECTION_SERVICE",
    "DETECTION_SPAN_PREFIX",
    "DetectionExporter",
    "DetectionExporterStats",
    "RequestSink",
    "detection_span",
    "detection_span_id",
    "detections_request",
]

log = get_logger(__name__)

DETECTION_SPAN_PREFIX: Final = "agentmesh.detection"
"""Detection spans are named ``agentmesh.detection <type>``."""

DETECTION_SERVICE: Final = "agentmesh-collector"
"""``service.name`` of the resource detection spans are exported under."""

DETECTION_SCOPE: Final = "agentmesh.collector.detection"
"""Instrumentation scope of detection spans."""

RequestSink = Callable[[ExportTraceServiceRequest, int], None]
"""Takes an OTLP request and how many spans it holds, without blocking (``Forwarders.offer``)."""

_TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")
_SPAN_ID: Final = re.compile(r"[0-9a-f]{16}")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16
_ERROR_SEVERITIES: Final = frozenset({"error", "critical"})


def _valid_trace_id(value: str) -> bool:
    return _TRACE_ID.fullmatch(value.lower()) is not None and value != _ZERO_TRACE


def _valid_span_id(value: str) -> bool:
    return _SPAN_ID.fullmatch(value.lower()) is not None and value != _ZERO_SPAN


def _string(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _attributes(detection: Detection) -> list[KeyValue]:
    d = detection
    attributes = [
        _string(semconv.AGENTMESH_DETECTION_ID, d.id),
        _string(semconv.AGENTMESH_DETECTION_TYPE, d.type),
        _string(semconv.AGENTMESH_DETECTION_SEVERITY, d.severity),
        _string(semconv.AGENTMESH_DETECTION_EXPLANATION, d.explanation),
        KeyValue(
            key=semconv.AGENTMESH_DETECTION_SPAN_IDS,
            value=AnyValue(
                array_value=ArrayValue(values=[AnyValue(string_value=s) for s in d.span_ids])
            ),
        ),
        _string(semconv.AGENTMESH_RUN_ID, d.run_id),
    ]
    if d.agent is not None:
        attributes.append(_string(semconv.AGENTMESH_DETECTION_AGENT, d.agent))
    return attributes


def detection_span_id(detection: Detection) -> str:
    """Return the span id a detection is exported under (derived from its id).

    Args:
        detection: The detection.

    Returns:
        16 hex digits, never all zeros.
    """
    digest = hashlib.sha256(f"span\x1f{detection.id}".encode()).hexdigest()
    for start in range(0, len(digest) - 15, 16):
        candidate = digest[start : start + 16]
        if candidate != _ZERO_SPAN:
            return candidate
    return "0" * 15 + "1"  # pragma: no cover - four all-zero slices of a sha256


def detection_span(detection: Detection) -> Span:
    """Build the OTLP span of a detection.

    Args:
        detection: The detection; its ``trace_id`` must be 32 hex digits, not all zeros.

    Returns:
        A zero-length internal span at ``detected_at_ns`` in the detection's trace, child of
        its first well-formed span id (a root span when it has none).

    Raises:
        ValueError: The trace id is not a valid OTLP trace id.
    """
    d = detection
    if not _valid_trace_id(d.trace_id):
        raise ValueError(f"detection {d.id} has an invalid trace id {d.trace_id!r}")
    parent = next((s for s in d.span_ids if _valid_span_id(s)), None)
    attributes = _attributes(d)
    status = (
        Status(code=Status.STATUS_CODE_ERROR, message=d.explanation)
        if d.severity in _ERROR_SEVERITIES
        else Status()
    )
    return Span(
        trace_id=bytes.fromhex(d.trace_id),
        span_id=bytes.fromhex(detection_span_id(d)),
        parent_span_id=b"" if parent is None else bytes.fromhex(parent),
        name=f"{DETECTION_SPAN_PREFIX} {d.type}",
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=d.detected_at_ns,
        end_time_unix_nano=d.detected_at_ns,
        attributes=attributes,
        events=[
            Span.Event(
                name=semconv.EVENT_DETECTION,
                time_unix_nano=d.detected_at_ns,
                attributes=attributes,
            )
        ],
        status=status,
    )


def detections_request(
    detections: Iterable[Detection], *, service_name: str = DETECTION_SERVICE
) -> tuple[ExportTraceServiceRequest, int]:
    """Encode detections as one OTLP export request (one resource, one scope).

    Detections whose trace id is not a valid OTLP trace id are left out (logged).

    Args:
        detections: The detections.
        service_name: ``service.name`` of the resource.

    Returns:
        The request and how many spans it holds.
    """
    spans: list[Span] = []
    for detection in detections:
        try:
            spans.append(detection_span(detection))
        except ValueError as exc:
            log.warning("detection not exported as a span", reason=str(exc))
    request = ExportTraceServiceRequest()
    if spans:
        request.resource_spans.append(
            ResourceSpans(
                resource=Resource(attributes=[_string(semconv.SERVICE_NAME, service_name)]),
                scope_spans=[
                    ScopeSpans(scope=InstrumentationScope(name=DETECTION_SCOPE), spans=spans)
                ],
            )
        )
    return request, len(spans)


@dataclass(frozen=True, slots=True)
class DetectionExporterStats:
    """Counters of a :class:`DetectionExporter`.

    Attributes:
        offered: Detections handed to :meth:`DetectionExporter.offer`.
        exported: Detection spans handed to the request sink.
        requests: Requests handed to the request sink.
        skipped: Detections left out (invalid trace id).
        dropped: Detections dropped unsent (buffer overflow, offered after stop, sink failure).
        pending: Detections waiting for their batch now.
    """

    offered: int = 0
    exported: int = 0
    requests: int = 0
    skipped: int = 0
    dropped: int = 0
    pending: int = 0


class DetectionExporter:
    """Batches detections into OTLP requests for the forwarders.

    An async context manager owning its batching task; :meth:`offer` never blocks.

    Args:
        sink: Takes each request (``Forwarders.offer``).
        max_batch: Detections per request at most; a full batch is sent at once.
        flush_seconds: Longest time a detection waits for its batch.
        max_pending: Detections held at most; the oldest is dropped beyond.
        service_name: ``service.name`` of the exported resource.
    """

    def __init__(
        self,
        sink: RequestSink,
        *,
        max_batch: int = 100,
        flush_seconds: float = 0.2,
        max_pending: int = 10_000,
        service_name: str = DETECTION_SERVICE,
    ) -> None:
        self._sink = sink
        self._service = service_name
        self._batcher: Batcher[Detection] = Batcher(
            self._send,
            max_items=max_batch,
            interval_seconds=flush_seconds,
            max_pending=max_pending,
            name="detection-otlp",
        )
        self._exported = 0
        self._requests = 0
        self._skipped = 0

    @property
    def stats(self) -> DetectionExporterStats:
        """A snapshot of the counters."""
        b = self._batcher
        return DetectionExporterStats(
            offered=b.added,
            exported=self._exported,
            requests=self._requests,
            skipped=self._skipped,
            dropped=b.dropped,
            pending=b.pending,
        )

    def offer(self, detection: Detection) -> None:
        """Queue a detection for export (never blocks).

        Args:
            detection: The detection.
        """
        self._batcher.add(detection)

    async def start(self) -> None:
        """Start the batching task.

        Raises:
            CollectorError: Already started.
        """
        await self._batcher.start()

    async def stop(self) -> None:
        """Send what is waiting and stop."""
        await self._batcher.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _send(self, batch: list[Detection]) -> None:
        request, spans = detections_request(batch, service_name=self._service)
        self._skipped += len(batch) - spans
        if spans:
            self._sink(request, spans)
            self._requests += 1
            self._exported += spans
