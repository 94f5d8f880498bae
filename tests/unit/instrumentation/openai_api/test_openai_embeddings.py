"""Embeddings: an ``embeddings {model}`` span with input tokens and the dimension count."""

from __future__ import annotations

import openai
import pytest
from _api_provider import DIMENSIONS, EMBEDDING_MODEL, ExtendedFakeProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    ERROR_TYPE,
    GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from agentmesh.instrumentation.testing import ErrorScript, ModelScript

pytestmark = pytest.mark.usefixtures("openai_instrumented")


def test_sync_embeddings_span(
    api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter
) -> None:
    client = openai.OpenAI(base_url=api_provider.openai_base_url, api_key="t", max_retries=0)

    result = client.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"])

    assert len(result.data) == 2
    assert len(result.data[0].embedding) == DIMENSIONS
    (span,) = exporter.get_finished_spans()
    assert span.name == "embeddings text-embedding-3-small"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[GEN_AI_REQUEST_MODEL] == EMBEDDING_MODEL
    assert attrs[GEN_AI_RESPONSE_MODEL] == EMBEDDING_MODEL
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert attrs[GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == DIMENSIONS
    assert GEN_AI_USAGE_OUTPUT_TOKENS not in attrs
    assert GEN_AI_USAGE_OUTPUT_TOKENS not in attrs


async def test_async_embeddings_with_dimensions_and_cost(
    api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter
) -> None:
    api_provider.set_script("gpt-4o-mini", ModelScript(input_tokens=1_000_000))
    client = openai.AsyncOpenAI(base_url=api_provider.openai_base_url, api_key="t", max_retries=0)

    result = await client.embeddings.create(
        model="gpt-4o-mini", input="priced", dimensions=4, encoding_format="float"
    )

    assert len(result.data[0].embedding) == 4
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "embeddings gpt-4o-mini"
    assert attrs[GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 4
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == 1_000_000
    assert attrs[AGENTMESH_COST_USD] == pytest.approx(0.15)  # catalog: $0.15 per M input


def test_embeddings_error_is_recorded_and_reraised(
    api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter
) -> None:
    api_provider.set_script(EMBEDDING_MODEL, ModelScript(error=ErrorScript(status=500)))
    client = openai.OpenAI(base_url=api_provider.openai_base_url, api_key="t", max_retries=0)

    with pytest.raises(openai.InternalServerError) as caught:
        client.embeddings.create(model=EMBEDDING_MODEL, input="x")

    assert caught.value.status_code == 500
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "InternalServerError"


def test_raw_embeddings_response_gets_response_attributes(
    api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter
) -> None:
    client = openai.OpenAI(base_url=api_provider.openai_base_url, api_key="t", max_retries=0)

    raw = client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input="x")

    (span,) = exporter.get_finished_spans()  # ended before the app parses
    assert (span.attributes or {})[GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert raw.parse() is raw.parse()
    assert len(raw.parse().data[0].embedding) == DIMENSIONS
