"""A foreign call's cost: the response model, else the model sent, else no cost.

Spans of OpenTelemetry GenAI and OpenLLMetry instrumentations go through the receiver's
normalisation (OTLP request in, contract spans out), which prices the calls that carry no
``agentmesh.cost.usd`` from the model catalog.
"""

from __future__ import annotations

import dataclasses

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.batch import SpanBatch
from agentmesh.collector.model import AttributeValue, SpanRecord
from agentmesh.collector.receiver.ingest import Ingestor
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.testing import to_otlp_request
from agentmesh.core import semconv
from agentmesh.router.catalog import usable_catalog

UNKNOWN = "acme-support-finetune-7"
"""A model the catalog does not know (a fine-tune, a self-hosted model)."""


class Sink:
    """Keeps the spans the receiver hands on."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []

    def __call__(self, spans: list[SpanRecord] | SpanBatch, /) -> bool:
        self.spans.extend(spans.records() if isinstance(spans, SpanBatch) else spans)
        return True

    def request_accepted(self, request: ExportTraceServiceRequest, spans: int, /) -> None:
        del request, spans


def _price(model: str) -> float:
    cost = usable_catalog().cost_usd(model, 1000, 200)
    assert cost is not None
    return cost


def _otel_genai(request: str | None, response: str | None) -> SpanRecord:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
    }
    if request is not None:
        attributes["gen_ai.request.model"] = request
    if response is not None:
        attributes["gen_ai.response.model"] = response
    return SpanRecord(
        trace_id="ab" * 16,
        span_id="cd" * 8,
        parent_span_id=None,
        name=f"chat {request}",
        kind="client",
        start_ns=1,
        end_ns=2,
        attributes=attributes,
        scope_name="opentelemetry.instrumentation.openai_v2",
    )


def _openllmetry(request: str, response: str) -> SpanRecord:
    return SpanRecord(
        trace_id="ab" * 16,
        span_id="ef" * 8,
        parent_span_id=None,
        name="openai.chat",
        kind="client",
        start_ns=1,
        end_ns=2,
        attributes={
            "gen_ai.system": "openai",
            "llm.request.type": "chat",
            "gen_ai.request.model": request,
            "gen_ai.response.model": response,
            "gen_ai.usage.prompt_tokens": 1000,
            "gen_ai.usage.completion_tokens": 200,
        },
        scope_name="opentelemetry.instrumentation.openai.v1",
    )


async def _ingested(span: SpanRecord) -> SpanRecord:
    sink = Sink()
    await Ingestor(sink, DecodeLimits()).ingest(to_otlp_request([span]))
    (out,) = sink.spans
    assert out.operation == semconv.Operation.CHAT
    return out


@pytest.mark.parametrize(
    ("request_model", "response_model", "priced_at"),
    [
        ("gpt-4o", "gpt-4o-mini", "gpt-4o-mini"),  # the model that answered
        ("gpt-4o-mini", UNKNOWN, "gpt-4o-mini"),  # the answer names a model the catalog lacks
        ("gpt-4o-mini", None, "gpt-4o-mini"),  # no response model recorded
        (UNKNOWN, "gpt-4o-mini", "gpt-4o-mini"),
        (UNKNOWN, UNKNOWN + "-v2", None),  # neither known: no cost
        (None, UNKNOWN, None),
    ],
)
async def test_an_otel_genai_call_is_priced_at_the_first_known_of_response_then_request(
    request_model: str | None, response_model: str | None, priced_at: str | None
) -> None:
    span = await _ingested(_otel_genai(request_model, response_model))
    cost = span.float_attr(semconv.AGENTMESH_COST_USD)
    if priced_at is None:
        assert cost is None
    else:
        assert cost == pytest.approx(_price(priced_at))


async def test_an_openllmetry_call_answered_by_an_unknown_model_is_priced_at_the_model_sent() -> (
    None
):
    span = await _ingested(_openllmetry("gpt-4o", UNKNOWN))
    assert span.float_attr(semconv.AGENTMESH_COST_USD) == pytest.approx(_price("gpt-4o"))


async def test_a_cost_the_span_carries_is_kept() -> None:
    foreign = _otel_genai("gpt-4o-mini", UNKNOWN)
    carried = dataclasses.replace(
        foreign, attributes={**foreign.attributes, semconv.AGENTMESH_COST_USD: 0.5}
    )
    span = await _ingested(carried)
    assert span.float_attr(semconv.AGENTMESH_COST_USD) == 0.5
