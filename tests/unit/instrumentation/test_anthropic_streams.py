"""Anthropic's ``messages.stream(...)`` helper, sync and async, beta too: one span, ended once."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import anthropic
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    ERROR_TYPE,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript

MODEL = "claude-haiku-4-5"
MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Stream please."}]
LONG = " ".join(f"word{i}" for i in range(40))


@pytest.fixture
def anthropic_instrumented(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[AnthropicInstrumentor]:
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_content=False)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def claude() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(
        {MODEL: ModelScript(content="Hello from Claude.", input_tokens=10, cached_tokens=4)}
    ) as fp:
        yield fp


@pytest.fixture(autouse=True)
def no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")


pytestmark = pytest.mark.usefixtures("anthropic_instrumented")


def _client(fp: FakeProviderThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fp.anthropic_base_url, api_key="t", max_retries=0)


def _async_client(fp: FakeProviderThread) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fp.anthropic_base_url, api_key="t", max_retries=0)


def _one_span(exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    assert not [r for r in caplog.records if "end" in r.getMessage().lower()]
    return spans[0]


def test_stream_helper_to_the_end(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with _client(claude).messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Hello from Claude."
    span = _one_span(exporter, caplog)
    assert span.name == "chat claude-haiku-4-5"
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_REQUEST_STREAM] is True
    assert attrs[GEN_AI_RESPONSE_ID] == final.id
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == 10
    assert attrs[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 4
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert isinstance(attrs[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)


def test_the_request_carries_the_span_as_trace_parent(
    claude: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    with _client(claude).messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        stream.until_done()

    (span,) = exporter.get_finished_spans()
    (request,) = claude.requests
    span_id = f"{span.context.span_id:016x}"
    assert request.headers["traceparent"].split("-")[2] == span_id


def test_stream_helper_left_early_ends_at_exit(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    claude.set_script(MODEL, ModelScript(content=LONG))
    with _client(claude).messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        next(iter(stream))
        assert exporter.get_finished_spans() == ()

    span = _one_span(exporter, caplog)
    assert GEN_AI_RESPONSE_FINISH_REASONS not in (span.attributes or {})
    del stream
    gc.collect()
    assert len(exporter.get_finished_spans()) == 1


def test_stream_helper_closed_inside_the_block(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    claude.set_script(MODEL, ModelScript(content=LONG))
    with _client(claude).messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        next(iter(stream))
        stream.close()
        assert len(exporter.get_finished_spans()) == 1

    _one_span(exporter, caplog)


def test_manager_never_entered_ends_its_span_when_collected(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    manager = _client(claude).messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert exporter.get_finished_spans() == ()

    del manager
    gc.collect()

    _one_span(exporter, caplog)
    assert claude.requests == []  # the request is only made on entering


def test_error_on_entering_is_recorded_and_reraised(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread({MODEL: ModelScript(error=ErrorScript(status=529))}) as fp:
        manager = _client(fp).messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES)
        with pytest.raises(anthropic.APIStatusError) as caught:
            manager.__enter__()

    assert caught.value.status_code == 529
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == type(caught.value).__name__


def test_app_error_inside_the_block_is_recorded(
    claude: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    def consume() -> None:
        with _client(claude).messages.stream(
            model=MODEL, max_tokens=10, messages=MESSAGES
        ) as stream:
            next(iter(stream))
            raise KeyError("app bug")

    with pytest.raises(KeyError):
        consume()

    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[ERROR_TYPE] == "KeyError"


async def test_async_stream_helper(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    async with _async_client(claude).messages.stream(
        model=MODEL, max_tokens=100, messages=MESSAGES
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()

    assert text == "Hello from Claude."
    attrs = dict(_one_span(exporter, caplog).attributes or {})
    assert attrs[GEN_AI_RESPONSE_ID] == final.id
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == 10


async def test_async_stream_helper_left_early(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    claude.set_script(MODEL, ModelScript(content=LONG))
    async with _async_client(claude).messages.stream(
        model=MODEL, max_tokens=100, messages=MESSAGES
    ) as stream:
        async for _ in stream:
            break

    _one_span(exporter, caplog)


def test_beta_stream_helper(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with _client(claude).beta.messages.stream(
        model=MODEL, max_tokens=100, messages=MESSAGES
    ) as stream:
        final = stream.get_final_message()

    attrs = dict(_one_span(exporter, caplog).attributes or {})
    assert attrs[GEN_AI_RESPONSE_ID] == final.id
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == 10


async def test_async_beta_stream_helper(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    async with _async_client(claude).beta.messages.stream(
        model=MODEL, max_tokens=100, messages=MESSAGES
    ) as stream:
        final = await stream.get_final_message()

    attrs = dict(_one_span(exporter, caplog).attributes or {})
    assert attrs[GEN_AI_RESPONSE_ID] == final.id
