"""Streamed chat completions: the proxy behaves like the SDK stream and ends the span once."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_USAGE_ESTIMATED,
    ERROR_TYPE,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MODEL = "gpt-4o-mini"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Stream please."}
]
LONG = ModelScript(content=" ".join(f"word{i}" for i in range(40)))


@pytest.fixture(autouse=True)
def no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    """Ending a span twice makes the SDK log a warning: none may appear."""
    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")


def _assert_ended_once(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    assert not [r for r in caplog.records if "end" in r.getMessage().lower()]
    return spans[0]


def _client(fp: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=fp.openai_base_url, api_key="test", max_retries=0)


def test_sync_stream_to_exhaustion(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = _client(fake_provider).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)
    assert exporter.get_finished_spans() == ()  # open while the stream is

    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert text == "Hello from the fake."
    span = _assert_ended_once(exporter, caplog)
    assert span.name == "chat gpt-4o-mini"
    attrs = dict(span.attributes or {})
    usage = chunks[-1].usage
    assert usage is not None
    assert attrs[GEN_AI_REQUEST_STREAM] is True
    assert attrs[GEN_AI_RESPONSE_ID] == chunks[0].id
    assert attrs[GEN_AI_RESPONSE_MODEL] == chunks[0].model
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == usage.prompt_tokens
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == usage.completion_tokens
    assert attrs[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2
    ttfc = attrs[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttfc, float)
    assert 0 < ttfc < (span.end_time - span.start_time) / 1e9  # type: ignore[operator]


def test_sync_stream_context_manager_and_attribute_passthrough(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _client(fake_provider).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True
    ) as stream:
        assert stream.response.status_code == 200
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
    span = _assert_ended_once(exporter, caplog)
    assert GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in (span.attributes or {})
    assert stream.response.is_closed


def test_sync_stream_break_then_close_ends_once(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeProviderThread({MODEL: LONG}) as fp:
        stream = _client(fp).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        for _ in stream:
            break
        assert exporter.get_finished_spans() == ()
        stream.close()
        stream.close()

    span = _assert_ended_once(exporter, caplog)
    assert span.status.status_code is StatusCode.UNSET
    # Only the first chunk (the role, no content) was read: nothing to count or estimate.
    assert GEN_AI_USAGE_INPUT_TOKENS not in (span.attributes or {})
    assert AGENTMESH_USAGE_ESTIMATED not in (span.attributes or {})


def test_sync_stream_dropped_is_ended_by_gc(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeProviderThread({MODEL: LONG}) as fp:
        stream = _client(fp).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        next(iter(stream))
        del stream
        gc.collect()
        _assert_ended_once(exporter, caplog)
        gc.collect()

    _assert_ended_once(exporter, caplog)


async def test_async_stream_to_exhaustion(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)
    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.AsyncStream)
    chunks = [chunk async for chunk in stream]

    span = _assert_ended_once(exporter, caplog)
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_REQUEST_STREAM] is True
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens  # type: ignore[union-attr]
    assert GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs


async def test_async_stream_break_then_close_ends_once(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeProviderThread({MODEL: LONG}) as fp:
        client = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
        async with await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        ) as stream:
            async for _ in stream:
                break
            assert exporter.get_finished_spans() == ()
            await stream.close()
        await stream.close()

    _assert_ended_once(exporter, caplog)


def _raised(call: Callable[[], object]) -> Exception:
    """The exception ``call`` raises (httpx's, or httpx2's on openai 3: no common class)."""
    try:
        call()
    except Exception as exc:
        return exc
    pytest.fail("no exception")


SLOW = ModelScript(content=" ".join(f"word{i}" for i in range(20)), chunk_delay=0.5)


def test_sync_stream_that_fails_midway_is_an_error_span(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    # The SDK's generator closes the response in its `finally` before its error reaches the
    # reader: the span used to end there, UNSET, and the error was never recorded.
    with FakeProviderThread({MODEL: SLOW}) as fp:
        stream = _client(fp).chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, timeout=0.1
        )
        error = _raised(lambda: list(stream))  # the app's error, untouched
    assert "Timeout" in type(error).__name__  # the HTTP client's read timeout
    span = _assert_ended_once(exporter, caplog)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == type(error).__name__


async def test_async_stream_that_fails_midway_is_an_error_span(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeProviderThread({MODEL: SLOW}) as fp:
        client = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="test", max_retries=0)
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, timeout=0.1
        )
        try:
            _ = [chunk async for chunk in stream]
        except Exception as exc:
            error: Exception = exc
        else:
            pytest.fail("the stream did not time out")
    assert "Timeout" in type(error).__name__
    span = _assert_ended_once(exporter, caplog)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == type(error).__name__
