"""Anthropic ``messages.create``: plain, ``stream=True``, errors, tool use, raw, beta."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import anthropic
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    ERROR_TYPE,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_K,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
from agentmesh.instrumentation.anthropic._attributes import read_request
from agentmesh.instrumentation.testing import (
    ErrorScript,
    FakeProviderThread,
    ModelScript,
    ToolCallScript,
)
from agentmesh.router.catalog import default_catalog

MODEL = "claude-haiku-4-5"
MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hello?"}]
SCRIPT = ModelScript(
    content="Hello from Claude.", input_tokens=20, cached_tokens=12, cache_creation_tokens=3
)


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
    with FakeProviderThread({MODEL: SCRIPT}) as fp:
        yield fp


@pytest.fixture(autouse=True)
def no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")


pytestmark = pytest.mark.usefixtures("anthropic_instrumented")


def _client(fp: FakeProviderThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fp.anthropic_base_url, api_key="t", max_retries=0)


def _one_span(exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    assert not [r for r in caplog.records if "end" in r.getMessage().lower()]
    return spans[0]


def _assert_usage(attrs: dict[str, object]) -> None:
    # Anthropic reports input_tokens = 20 - 12 - 3 = 5; the span counts all 20.
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == 20
    assert attrs[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 12
    assert attrs[GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 3
    output = int(str(attrs[GEN_AI_USAGE_OUTPUT_TOKENS]))
    # claude-haiku-4-5 per million: input $1, cache reads $0.10, cache writes $1.25, output $5
    expected = (5 * 1.0 + 12 * 0.1 + 3 * 1.25 + output * 5.0) / 1_000_000
    assert attrs[AGENTMESH_COST_USD] == pytest.approx(expected)
    assert expected == pytest.approx(default_catalog().cost_usd(MODEL, 20, output, 12, 3))


def test_create(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    message = _client(claude).messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)

    assert message.usage.input_tokens == 5
    span = _one_span(exporter, caplog)
    assert span.name == "chat claude-haiku-4-5"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[GEN_AI_REQUEST_MAX_TOKENS] == 100
    assert attrs[GEN_AI_REQUEST_STREAM] is False
    assert attrs[SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[SERVER_PORT] == claude.port
    assert attrs[GEN_AI_RESPONSE_MODEL] == message.model
    assert attrs[GEN_AI_RESPONSE_ID] == message.id
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens
    _assert_usage(attrs)


async def test_async_create(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=claude.anthropic_base_url, api_key="t", max_retries=0
    )

    message = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)

    span = _one_span(exporter, caplog)
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_RESPONSE_ID] == message.id
    _assert_usage(attrs)


def test_stream_true_to_exhaustion(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    stream = _client(claude).messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    assert isinstance(stream, anthropic.Stream)
    assert exporter.get_finished_spans() == ()

    events = list(stream)

    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "Hello from Claude."
    span = _one_span(exporter, caplog)
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_REQUEST_STREAM] is True
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert isinstance(attrs[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    final = next(e for e in events if e.type == "message_delta")
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    _assert_usage(attrs)


async def test_async_stream_true(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=claude.anthropic_base_url, api_key="t", max_retries=0
    )
    stream = await client.messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    async for _ in stream:
        pass

    _assert_usage(dict(_one_span(exporter, caplog).attributes or {}))


def test_stream_closed_early(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    stream = _client(claude).messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    first = next(iter(stream))
    assert first.type == "message_start"

    stream.close()
    stream.close()

    attrs = dict(_one_span(exporter, caplog).attributes or {})
    assert attrs[GEN_AI_RESPONSE_ID] == first.message.id
    assert GEN_AI_RESPONSE_FINISH_REASONS not in attrs  # message_delta never arrived


def test_stream_garbage_collected(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    stream = _client(claude).messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    next(iter(stream))
    assert exporter.get_finished_spans() == ()

    del stream
    gc.collect()

    _one_span(exporter, caplog)


def test_rate_limit_with_retry_after_is_reraised_unchanged(
    exporter: InMemorySpanExporter,
) -> None:
    with (
        FakeProviderThread(
            {MODEL: ModelScript(error=ErrorScript(status=429, retry_after=7))}
        ) as fp,
        pytest.raises(anthropic.RateLimitError) as caught,
    ):
        _client(fp).messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)

    assert type(caught.value) is anthropic.RateLimitError
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "RateLimitError"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert str((event.attributes or {})["exception.type"]).endswith("RateLimitError")


async def test_async_server_error(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread({MODEL: ModelScript(error=ErrorScript(status=500))}) as fp:
        client = anthropic.AsyncAnthropic(
            base_url=fp.anthropic_base_url, api_key="t", max_retries=0
        )
        with pytest.raises(anthropic.InternalServerError) as caught:
            await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)

    assert caught.value.status_code == 500
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[ERROR_TYPE] == "InternalServerError"


def test_tool_use(claude: FakeProviderThread, exporter: InMemorySpanExporter) -> None:
    claude.set_script(
        MODEL, ModelScript(tool_calls=(ToolCallScript(name="get_weather", arguments='{"c": 1}'),))
    )

    message = _client(claude).messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)

    assert message.stop_reason == "tool_use"
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)


def test_raw_response(claude: FakeProviderThread, exporter: InMemorySpanExporter) -> None:
    raw = _client(claude).messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=MESSAGES
    )

    (span,) = exporter.get_finished_spans()
    message = raw.parse()
    assert raw.parse() is message
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_RESPONSE_ID] == message.id
    _assert_usage(attrs)


async def test_async_raw_response(
    claude: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=claude.anthropic_base_url, api_key="t", max_retries=0
    )

    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=MESSAGES
    )

    (span,) = exporter.get_finished_spans()
    message = await raw.parse()
    assert (span.attributes or {})[GEN_AI_RESPONSE_ID] == message.id


def test_beta_messages(claude: FakeProviderThread, exporter: InMemorySpanExporter) -> None:
    message = _client(claude).beta.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat claude-haiku-4-5"
    assert attrs[GEN_AI_RESPONSE_ID] == message.id
    _assert_usage(attrs)


def test_sampling_parameters_of_older_sdks_are_read() -> None:
    # anthropic 2.x dropped temperature, top_p and top_k; 0.x and 1.x send them.
    client = anthropic.Anthropic(base_url="https://api.anthropic.com", api_key="t")
    request = read_request(
        client.messages,
        {"model": MODEL, "max_tokens": 5, "temperature": 0.3, "top_p": 0.9, "top_k": 40},
    )

    assert request.span_name == "chat claude-haiku-4-5"
    assert request.attributes[GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert request.attributes[GEN_AI_REQUEST_TOP_P] == 0.9
    assert request.attributes[GEN_AI_REQUEST_TOP_K] == 40.0
    assert request.attributes[SERVER_ADDRESS] == "api.anthropic.com"
    assert request.attributes[SERVER_PORT] == 443


def test_uninstrument_restores_the_sdk(
    claude: FakeProviderThread,
    exporter: InMemorySpanExporter,
    anthropic_instrumented: AnthropicInstrumentor,
) -> None:
    anthropic_instrumented.uninstrument()

    _client(claude).messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)

    assert exporter.get_finished_spans() == ()
    anthropic_instrumented.instrument()  # the fixture uninstruments again


class City(BaseModel):
    city: str


def test_parse_structured_output(
    claude: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    claude.set_script(MODEL, ModelScript(content='{"city": "Paris"}'))

    message = _client(claude).messages.parse(
        model=MODEL, max_tokens=100, messages=MESSAGES, output_format=City
    )

    assert message.parsed_output == City(city="Paris")
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat claude-haiku-4-5"
    assert (span.attributes or {})[GEN_AI_RESPONSE_ID] == message.id


def test_sdk_own_tracing_is_silenced_while_instrumented(
    anthropic_instrumented: AnthropicInstrumentor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    # One span per call: the SDK's own spans (anthropic >= 2) are switched off by default ...
    assert os.environ.get("ANTHROPIC_OPEN_TELEMETRY") == "false"
    anthropic_instrumented.uninstrument()
    assert "ANTHROPIC_OPEN_TELEMETRY" not in os.environ
    # ... and an explicit choice of the application is left alone.
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "true")
    anthropic_instrumented.instrument(capture_content=False)
    assert os.environ["ANTHROPIC_OPEN_TELEMETRY"] == "true"
    anthropic_instrumented.uninstrument()
    assert os.environ["ANTHROPIC_OPEN_TELEMETRY"] == "true"
    anthropic_instrumented.instrument(capture_content=False)
