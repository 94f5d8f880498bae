"""The receivers hand the forwarders only requests whose spans the collector accepted."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from structlog.testing import capture_logs

from agentmesh.collector.forward import Forwarder, Forwarders, ForwardingSink, ForwardTarget
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.receiver.ingest import Ingestor, ReceiverBusyError, RequestObserver
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.testing import SpanFactory, to_otlp_request


def _request(agents: int = 2) -> ExportTraceServiceRequest:
    f = SpanFactory()
    root = f.workflow("w")
    return to_otlp_request([root] + [f.agent(f"a{i}", parent=root) for i in range(agents)])


def _forwarders() -> tuple[Forwarders, Forwarder]:
    # Not started: an offered request is counted as offered, then dropped.
    forwarder = Forwarder(ForwardTarget("probe", "http://127.0.0.1:9/v1/traces"))
    return Forwarders([forwarder]), forwarder


async def test_accepted_requests_are_offered_with_their_span_count() -> None:
    forwarders, forwarder = _forwarders()
    accepted: list[int] = []

    def sink(spans: list[SpanRecord]) -> bool:
        accepted.append(len(spans))
        return True

    ingestor = Ingestor(ForwardingSink(sink, forwarders), DecodeLimits())
    await ingestor.ingest(_request(agents=2))
    assert accepted == [3]
    assert (forwarder.stats.offered_requests, forwarder.stats.dropped_spans) == (1, 3)


async def test_refused_requests_are_not_forwarded() -> None:
    forwarders, forwarder = _forwarders()
    ingestor = Ingestor(ForwardingSink(lambda spans: False, forwarders), DecodeLimits())
    with pytest.raises(ReceiverBusyError):
        await ingestor.ingest(_request())
    assert forwarder.stats.offered_requests == 0


async def test_requests_without_valid_spans_are_not_forwarded() -> None:
    forwarders, forwarder = _forwarders()
    request = _request()
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.trace_id = b"short"
    ingestor = Ingestor(ForwardingSink(lambda spans: True, forwarders), DecodeLimits())
    result = await ingestor.ingest(request)
    assert result.rejected == 3
    assert forwarder.stats.offered_requests == 0


async def test_a_failing_observer_does_not_change_the_answer() -> None:
    class Broken:
        def __call__(self, spans: list[SpanRecord], /) -> bool:
            return True

        def request_accepted(self, request: ExportTraceServiceRequest, spans: int, /) -> None:
            raise RuntimeError("observer bug")

    sink = Broken()
    assert isinstance(sink, RequestObserver)
    ingestor = Ingestor(sink, DecodeLimits())
    with capture_logs() as logs:
        result = await ingestor.ingest(_request())
    assert len(result.spans) == 3
    assert ingestor.stats.spans_accepted == 3
    assert [e["event"] for e in logs] == ["request observer failed"]


def test_a_plain_function_sink_is_not_an_observer() -> None:
    def sink(spans: list[SpanRecord]) -> bool:
        return True

    assert not isinstance(sink, RequestObserver)
