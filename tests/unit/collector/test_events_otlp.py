"""Detections as OTLP spans: the span's shape, the request, and the batching exporter."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agentmesh.collector.detection import Detection, detection_id
from agentmesh.collector.events import (
    Batcher,
    DetectionExporter,
    detection_span,
    detection_span_id,
    detections_request,
)
from agentmesh.core import semconv

TRACE = "0af7651916cd43dd8448eb211c80319c"
AT = 1_800_000_000_123_456_789


def _detection(
    key: str = "supervisor|researcher",
    *,
    type_: str = "handoff_loop",
    severity: str = "error",
    trace_id: str = TRACE,
    agent: str | None = "supervisor",
    span_ids: tuple[str, ...] = ("b7ad6b7169203331", "00f067aa0ba902b7"),
) -> Detection:
    return Detection(
        id=detection_id(type_, trace_id, key),
        type=type_,
        severity=severity,  # pyright: ignore[reportArgumentType]
        trace_id=trace_id,
        run_id="run-42",
        agent=agent,
        span_ids=span_ids,
        explanation="agent cycle supervisor → researcher → supervisor repeated 4 times",
        detected_at_ns=AT,
        details={"repetitions": 4},
    )


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(items: list[KeyValue]) -> dict[str, object]:
    return {kv.key: _value(kv.value) for kv in items}


def _spans(request: ExportTraceServiceRequest) -> list[Span]:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_span_is_in_the_detection_trace_under_its_first_span() -> None:
    d = _detection()
    span = detection_span(d)
    assert span.trace_id.hex() == TRACE
    assert span.parent_span_id.hex() == "b7ad6b7169203331"
    assert span.span_id.hex() == detection_span_id(d)
    assert span.name == "agentmesh.detection handoff_loop"
    assert span.kind == Span.SPAN_KIND_INTERNAL
    assert span.start_time_unix_nano == span.end_time_unix_nano == AT
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.status.message == d.explanation
    expected: dict[str, object] = {
        semconv.AGENTMESH_DETECTION_ID: d.id,
        semconv.AGENTMESH_DETECTION_TYPE: "handoff_loop",
        semconv.AGENTMESH_DETECTION_SEVERITY: "error",
        semconv.AGENTMESH_DETECTION_AGENT: "supervisor",
        semconv.AGENTMESH_DETECTION_SPAN_IDS: ["b7ad6b7169203331", "00f067aa0ba902b7"],
        semconv.AGENTMESH_DETECTION_EXPLANATION: d.explanation,
        semconv.AGENTMESH_RUN_ID: "run-42",
    }
    assert _attributes(list(span.attributes)) == expected
    (event,) = span.events
    assert event.name == semconv.EVENT_DETECTION
    assert event.time_unix_nano == AT
    assert _attributes(list(event.attributes)) == expected


def test_warning_without_agent_or_spans_is_a_root_span_with_unset_status() -> None:
    d = _detection(severity="warning", agent=None, span_ids=())
    span = detection_span(d)
    assert span.parent_span_id == b""
    assert span.status.code == Status.STATUS_CODE_UNSET
    attributes = _attributes(list(span.attributes))
    assert semconv.AGENTMESH_DETECTION_AGENT not in attributes
    assert attributes[semconv.AGENTMESH_DETECTION_SPAN_IDS] == []


def test_malformed_first_span_id_falls_back_to_the_next() -> None:
    span = detection_span(_detection(span_ids=("not-a-span", "0" * 16, "00f067aa0ba902b7")))
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"


def test_span_id_is_stable_and_distinct_per_detection() -> None:
    one, two = _detection("a"), _detection("b")
    assert detection_span(one).span_id == detection_span(one).span_id
    assert detection_span_id(one) != detection_span_id(two)
    assert len(bytes.fromhex(detection_span_id(one))) == 8


def test_invalid_trace_id_is_refused_and_left_out_of_requests() -> None:
    bad = _detection(trace_id="run-without-trace")
    with pytest.raises(ValueError, match="invalid trace id"):
        detection_span(bad)
    request, spans = detections_request([bad, _detection("ok")])
    assert spans == 1
    assert [s.name for s in _spans(request)] == ["agentmesh.detection handoff_loop"]
    empty, none = detections_request([bad])
    assert none == 0
    assert len(empty.resource_spans) == 0


def test_request_has_a_collector_resource_and_round_trips() -> None:
    detections = [_detection(str(i)) for i in range(3)]
    request, spans = detections_request(detections, service_name="collector-eu")
    assert spans == 3
    parsed = ExportTraceServiceRequest.FromString(request.SerializeToString())
    (resource_spans,) = parsed.resource_spans
    assert _attributes(list(resource_spans.resource.attributes)) == {
        semconv.SERVICE_NAME: "collector-eu"
    }
    assert resource_spans.scope_spans[0].scope.name == "agentmesh.collector.detection"
    assert [s.span_id.hex() for s in _spans(parsed)] == [detection_span_id(d) for d in detections]


async def test_exporter_sends_full_batches_at_once_and_the_rest_on_stop() -> None:
    sent: list[tuple[ExportTraceServiceRequest, int]] = []
    exporter = DetectionExporter(lambda r, n: sent.append((r, n)), max_batch=3, flush_seconds=60)
    async with exporter:
        for i in range(7):
            exporter.offer(_detection(str(i)))
        async with asyncio.timeout(10):
            while len(sent) < 2:  # noqa: ASYNC110 - the sink is a plain list
                await asyncio.sleep(0.005)
        assert [n for _, n in sent] == [3, 3]  # the 7th waits for its batch (60 s)
    assert [n for _, n in sent] == [3, 3, 1]
    names = [s.span_id.hex() for r, _ in sent for s in _spans(r)]
    assert names == [detection_span_id(_detection(str(i))) for i in range(7)]
    stats = exporter.stats
    assert (stats.offered, stats.exported, stats.requests, stats.dropped) == (7, 7, 3, 0)


async def test_exporter_flushes_a_partial_batch_after_the_interval() -> None:
    sent: list[int] = []
    async with DetectionExporter(lambda r, n: sent.append(n), flush_seconds=0.02) as exporter:
        exporter.offer(_detection())
        async with asyncio.timeout(10):
            while not sent:  # noqa: ASYNC110 - the sink is a plain list
                await asyncio.sleep(0.005)
        assert sent == [1]
        assert exporter.stats.pending == 0


async def test_a_failing_sink_loses_the_batch_not_the_exporter() -> None:
    calls: list[int] = []

    def sink(request: ExportTraceServiceRequest, spans: int) -> None:
        calls.append(spans)
        if len(calls) == 1:
            raise RuntimeError("forwarders broke")

    async with DetectionExporter(sink, max_batch=1, flush_seconds=60) as exporter:
        exporter.offer(_detection("a"))
        exporter.offer(_detection("b"))
    assert calls == [1, 1]
    assert (exporter.stats.exported, exporter.stats.dropped) == (1, 1)


async def test_batcher_drops_the_oldest_when_full_and_after_stop() -> None:
    batches: list[list[int]] = []
    batcher: Batcher[int] = Batcher(batches.append, max_items=10, max_pending=3)
    for item in range(5):
        batcher.add(item)  # not started: held, the two oldest pushed out
    await batcher.start()
    await batcher.stop()
    batcher.add(99)
    assert batches == [[2, 3, 4]]
    assert (batcher.added, batcher.flushed, batcher.dropped) == (6, 3, 3)
