"""Anthropic fail-open: our bugs never reach the app; raw bodies the app streams stay unread."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_ID,
    GEN_AI_USAGE_INPUT_TOKENS,
)
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor, _stream_manager
from agentmesh.instrumentation.anthropic._attributes import MessageSummary
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

MODEL = "claude-haiku-4-5"
MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hi"}]


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
    with FakeProviderThread({MODEL: ModelScript(content="Hello from Claude.")}) as fp:
        yield fp


pytestmark = pytest.mark.usefixtures("anthropic_instrumented")


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("bug in AgentMesh")


def _client(fp: FakeProviderThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fp.anthropic_base_url, api_key="t", max_retries=0)


def test_bug_in_event_handling_does_not_break_the_stream(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MessageSummary, "absorb", _boom)

    with _client(claude).messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)

    assert text == "Hello from Claude."
    (span,) = exporter.get_finished_spans()
    assert GEN_AI_USAGE_INPUT_TOKENS not in (span.attributes or {})


def test_bug_in_proxying_the_helper_stream_still_ends_the_span_at_exit(
    claude: FakeProviderThread, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_stream_manager, "_swap_raw_stream", _boom)

    with _client(claude).messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
        message = stream.get_final_message()

    assert message.content[0].type == "text"
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[GEN_AI_REQUEST_MODEL] == MODEL


def test_streaming_response_body_is_left_to_the_app(
    claude: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    with _client(claude).messages.with_streaming_response.create(
        model=MODEL, max_tokens=50, messages=MESSAGES
    ) as response:
        assert response.http_response.is_closed is False  # we did not read it
        body = json.loads("".join(response.iter_lines()))

    assert body["content"][0]["text"] == "Hello from Claude."
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_REQUEST_MODEL] == MODEL
    assert GEN_AI_RESPONSE_ID not in attrs
