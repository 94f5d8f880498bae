"""One span per Anthropic call: suppression keys pass through, a peer's span hosts ours."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from opentelemetry import context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import AGENTMESH_COST_USD
from agentmesh.instrumentation import _dedupe
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

MODEL = "claude-haiku-4-5"
MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hello?"}]


@pytest.fixture(autouse=True)
def anthropic_instrumented(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[None]:
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_content=False)
    yield
    instrumentor.uninstrument()


@pytest.fixture
def client() -> Iterator[anthropic.Anthropic]:
    with FakeProviderThread({MODEL: ModelScript(content="Hi.")}) as fp:
        yield anthropic.Anthropic(base_url=fp.anthropic_base_url, api_key="t", max_retries=0)


@pytest.mark.parametrize("key", [_dedupe.SUPPRESS_KEY, _dedupe.LLM_SUPPRESS_KEY])
def test_suppressed_create_and_stream_helper_pass_through(
    exporter: InMemorySpanExporter, client: anthropic.Anthropic, key: str
) -> None:
    token = context.attach(context.set_value(key, True))
    try:
        reply = client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
        with client.messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
    finally:
        context.detach(token)

    assert reply.content[0].type == "text"
    assert text == "Hi."
    assert exporter.get_finished_spans() == ()


def test_under_a_peer_span_ours_is_a_guest(
    exporter: InMemorySpanExporter, client: anthropic.Anthropic, tracer_provider: TracerProvider
) -> None:
    peer = tracer_provider.get_tracer("openinference.instrumentation.anthropic")
    with peer.start_as_current_span("Messages"):
        client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    assert span.name == "Messages"
    assert isinstance((span.attributes or {})[AGENTMESH_COST_USD], float)
