"""The SDK's helpers: ``chat.completions.stream``, ``parse``, ``with_raw_response``; tool calls."""

from __future__ import annotations

import gc
import logging

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from agentmesh.core.semconv import (
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript, ToolCallScript

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MODEL = "gpt-4o-mini"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Hello?"}
]


@pytest.fixture(autouse=True)
def no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")


def _one_span(exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    assert not [r for r in caplog.records if "end" in r.getMessage().lower()]
    return spans[0]


def _client(fp: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)


def test_stream_helper_to_the_end(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _client(fake_provider).chat.completions.stream(
        model=MODEL, messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "content.delta")
        final = stream.get_final_completion()

    assert text == "Hello from the fake."
    span = _one_span(exporter, caplog)
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini"
    assert attrs[GEN_AI_REQUEST_STREAM] is True
    assert attrs[GEN_AI_RESPONSE_ID] == final.id
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert final.usage is not None
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == final.usage.prompt_tokens
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.completion_tokens
    assert attrs[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2
    assert attrs[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 1
    assert isinstance(attrs[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)


def test_stream_helper_left_early_ends_the_span_at_exit(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_provider.set_script(MODEL, ModelScript(content=" ".join(["word"] * 50)))
    with _client(fake_provider).chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        next(iter(stream))
        assert exporter.get_finished_spans() == ()

    span = _one_span(exporter, caplog)  # ended at exit, not at garbage collection
    assert GEN_AI_RESPONSE_FINISH_REASONS not in (span.attributes or {})
    del stream
    gc.collect()
    assert len(exporter.get_finished_spans()) == 1


async def test_async_stream_helper(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)
    async with client.chat.completions.stream(
        model=MODEL, messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        final = await stream.get_final_completion()

    span = _one_span(exporter, caplog)
    assert final.usage is not None
    assert (span.attributes or {})[GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.completion_tokens


async def test_async_stream_helper_left_early(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_provider.set_script(MODEL, ModelScript(content=" ".join(["word"] * 50)))
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)
    async with client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        async for _ in stream:
            break

    _one_span(exporter, caplog)


class Weather(BaseModel):
    city: str
    celsius: int


def test_parse_structured_output(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    fake_provider.set_script(MODEL, ModelScript(content='{"city": "Paris", "celsius": 21}'))

    completion = _client(fake_provider).chat.completions.parse(
        model=MODEL, messages=MESSAGES, response_format=Weather
    )

    assert completion.choices[0].message.parsed == Weather(city="Paris", celsius=21)
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini"
    assert attrs[GEN_AI_RESPONSE_ID] == completion.id
    assert completion.usage is not None
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == completion.usage.prompt_tokens


async def test_async_parse(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    fake_provider.set_script(MODEL, ModelScript(content='{"city": "Oslo", "celsius": 3}'))
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)

    completion = await client.chat.completions.parse(
        model=MODEL, messages=MESSAGES, response_format=Weather
    )

    assert completion.choices[0].message.parsed == Weather(city="Oslo", celsius=3)
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[GEN_AI_RESPONSE_ID] == completion.id


def test_raw_response_span_has_response_attributes(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    raw = _client(fake_provider).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES
    )

    (span,) = exporter.get_finished_spans()  # ended when create returned
    completion = raw.parse()
    assert raw.parse() is completion  # the SDK's cache: parsing once more costs nothing
    assert raw.headers["x-request-id"].startswith("req_fake")
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_RESPONSE_ID] == completion.id
    assert completion.usage is not None
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == completion.usage.completion_tokens


def test_raw_streamed_response_ends_its_span_with_the_stream(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = _client(fake_provider).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert exporter.get_finished_spans() == ()

    chunks = list(raw.parse())

    span = _one_span(exporter, caplog)
    usage = chunks[-1].usage
    assert usage is not None
    assert (span.attributes or {})[GEN_AI_USAGE_INPUT_TOKENS] == usage.prompt_tokens


async def test_async_raw_response(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)

    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[GEN_AI_RESPONSE_ID] == raw.parse().id


def test_tool_calls_finish_reason(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    fake_provider.set_script(
        MODEL,
        ModelScript(
            tool_calls=(
                ToolCallScript(name="get_weather", arguments='{"city": "Paris"}'),
                ToolCallScript(name="get_time", arguments='{"tz": "CET"}'),
            )
        ),
    )
    client = _client(fake_provider)

    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    for _ in stream:
        pass

    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert len(calls) == 2
    plain, streamed = exporter.get_finished_spans()
    assert (plain.attributes or {})[GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert (streamed.attributes or {})[GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
