"""Streams that report no usage still get token counts and a cost, marked as estimated."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    AGENTMESH_USAGE_ESTIMATED,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript
from agentmesh.router import default_catalog

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MODEL = "gpt-4o-mini"
PROMPT = "Explain Rayleigh scattering in one paragraph, please."
PROMPT_TOKENS = (len(PROMPT) + 3) // 4  # about four characters a token, rounded up


def _client(fp: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=fp.openai_base_url, api_key="test", max_retries=0)


def test_stream_without_usage_is_estimated(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    fake_provider.set_script(MODEL, ModelScript(content="one two three four five", chunk_size=4))
    stream = _client(fake_provider).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    chunks = list(stream)
    # The app sees exactly what the provider sent: no usage chunk was asked for on its behalf.
    assert all(chunk.usage is None for chunk in chunks)
    assert "stream_options" not in fake_provider.requests[-1].body
    content_chunks = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[AGENTMESH_USAGE_ESTIMATED] is True
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS == 14
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == content_chunks
    assert content_chunks > 1
    expected = default_catalog().cost_usd(MODEL, PROMPT_TOKENS, content_chunks)
    assert attrs[AGENTMESH_COST_USD] == pytest.approx(expected)


def test_stream_with_usage_is_exact(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    fake_provider.set_script(MODEL, ModelScript(content="exact", output_tokens=7, input_tokens=9))
    stream = _client(fake_provider).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert AGENTMESH_USAGE_ESTIMATED not in attrs
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == 9
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == 7


def test_plain_call_is_never_estimated(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    _client(fake_provider).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}]
    )
    (span,) = exporter.get_finished_spans()
    assert AGENTMESH_USAGE_ESTIMATED not in dict(span.attributes or {})
