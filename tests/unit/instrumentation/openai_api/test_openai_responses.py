"""Responses API: ``chat {model}`` spans for create, stream=True, the stream helper and parse."""

from __future__ import annotations

import gc
import logging

import openai
import pytest
from _api_provider import RESPONSES_MODEL, ExtendedFakeProvider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    ERROR_TYPE,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from agentmesh.instrumentation.testing import ErrorScript, ModelScript, ToolCallScript

pytestmark = pytest.mark.usefixtures("openai_instrumented")


@pytest.fixture(autouse=True)
def no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")


def _one_span(exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    assert not [r for r in caplog.records if "end" in r.getMessage().lower()]
    return spans[0]


def _client(provider: ExtendedFakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=provider.openai_base_url, api_key="t", max_retries=0)


def _assert_usage(attrs: dict[str, object], response: openai.types.responses.Response) -> None:
    usage = response.usage
    assert usage is not None
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == usage.input_tokens
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == usage.output_tokens
    assert attrs[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2
    assert attrs[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 1
    assert isinstance(attrs[AGENTMESH_COST_USD], float)


def test_create(
    api_provider: ExtendedFakeProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = _client(api_provider).responses.create(
        model=RESPONSES_MODEL, input="Hi", temperature=0.5, max_output_tokens=64
    )

    assert response.output_text == "Hello from the fake."
    span = _one_span(exporter, caplog)
    assert span.name == "chat gpt-4o-mini"
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[GEN_AI_REQUEST_STREAM] is False
    assert attrs[GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert attrs[GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert attrs[GEN_AI_RESPONSE_ID] == response.id
    assert attrs[GEN_AI_RESPONSE_MODEL] == RESPONSES_MODEL
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    _assert_usage(attrs, response)


def test_incomplete_and_tool_call_finish_reasons(
    api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter
) -> None:
    client = _client(api_provider)
    api_provider.set_script("gpt-4.1", ModelScript(finish_reason="length"))
    api_provider.set_script(
        "gpt-4.1-mini", ModelScript(tool_calls=(ToolCallScript(name="search", arguments="{}"),))
    )

    client.responses.create(model="gpt-4.1", input="long")
    client.responses.create(model="gpt-4.1-mini", input="search")

    first, second = exporter.get_finished_spans()
    assert (first.attributes or {})[GEN_AI_RESPONSE_FINISH_REASONS] == ("max_output_tokens",)
    assert (second.attributes or {})[GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)


def test_stream_true(
    api_provider: ExtendedFakeProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = _client(api_provider).responses.create(model=RESPONSES_MODEL, input="Hi", stream=True)
    assert exporter.get_finished_spans() == ()

    events = list(stream)

    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1
    span = _one_span(exporter, caplog)
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_REQUEST_STREAM] is True
    assert isinstance(attrs[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    _assert_usage(attrs, completed[0].response)


def test_stream_closed_early_ends_the_span_once(
    api_provider: ExtendedFakeProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = _client(api_provider).responses.create(model=RESPONSES_MODEL, input="Hi", stream=True)
    first = next(iter(stream))
    assert first.type == "response.created"

    stream.close()
    stream.close()

    span = _one_span(exporter, caplog)
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_RESPONSE_ID] == first.response.id
    assert GEN_AI_USAGE_INPUT_TOKENS not in attrs  # never reached response.completed


def test_stream_helper(
    api_provider: ExtendedFakeProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _client(api_provider).responses.stream(model=RESPONSES_MODEL, input="Hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()

    assert text == "Hello from the fake."
    span = _one_span(exporter, caplog)
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini"
    assert attrs[GEN_AI_REQUEST_STREAM] is True
    _assert_usage(attrs, final)


def test_stream_helper_left_early_ends_the_span(
    api_provider: ExtendedFakeProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _client(api_provider).responses.stream(model=RESPONSES_MODEL, input="Hi") as stream:
        next(iter(stream))
        assert exporter.get_finished_spans() == ()

    span = _one_span(exporter, caplog)
    assert GEN_AI_USAGE_OUTPUT_TOKENS not in (span.attributes or {})
    del stream
    gc.collect()
    assert len(exporter.get_finished_spans()) == 1


async def test_async_stream_helper(
    api_provider: ExtendedFakeProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = openai.AsyncOpenAI(base_url=api_provider.openai_base_url, api_key="t", max_retries=0)
    async with client.responses.stream(model=RESPONSES_MODEL, input="Hi") as stream:
        final = await stream.get_final_response()

    span = _one_span(exporter, caplog)
    _assert_usage(dict(span.attributes or {}), final)


async def test_async_create(
    api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter
) -> None:
    client = openai.AsyncOpenAI(base_url=api_provider.openai_base_url, api_key="t", max_retries=0)

    response = await client.responses.create(model=RESPONSES_MODEL, input="Hi")

    (span,) = exporter.get_finished_spans()
    _assert_usage(dict(span.attributes or {}), response)


class Answer(BaseModel):
    text: str


def test_parse(api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter) -> None:
    api_provider.set_script(
        RESPONSES_MODEL, ModelScript(content='{"text": "ok"}', cached_tokens=2, reasoning_tokens=1)
    )

    parsed = _client(api_provider).responses.parse(
        model=RESPONSES_MODEL, input="Answer", text_format=Answer
    )

    assert parsed.output_parsed == Answer(text="ok")
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    _assert_usage(dict(span.attributes or {}), parsed)


def test_raw_response(api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter) -> None:
    raw = _client(api_provider).responses.with_raw_response.create(
        model=RESPONSES_MODEL, input="Hi"
    )

    (span,) = exporter.get_finished_spans()
    response = raw.parse()
    assert (span.attributes or {})[GEN_AI_RESPONSE_ID] == response.id
    _assert_usage(dict(span.attributes or {}), response)


def test_error(api_provider: ExtendedFakeProvider, exporter: InMemorySpanExporter) -> None:
    api_provider.set_script(RESPONSES_MODEL, ModelScript(error=ErrorScript(status=429)))

    with pytest.raises(openai.RateLimitError):
        _client(api_provider).responses.create(model=RESPONSES_MODEL, input="Hi")

    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "RateLimitError"
