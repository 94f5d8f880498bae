"""OpenAI chat-completions spans, plain (sync and async), with the real SDK and fake provider."""

from __future__ import annotations

import openai
import pytest
import wrapt
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    AGENTMESH_RUN_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from agentmesh.instrumentation import with_run_id
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript
from agentmesh.router import default_catalog

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MODEL = "gpt-4o-mini"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say hello."}
]


def _client(fp: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=fp.openai_base_url, api_key="test", max_retries=0)


def _aclient(fp: FakeProviderThread) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="test", max_retries=0)


def test_sync_chat_span_has_the_contract_attributes(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    response = _client(fake_provider).chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0.25, top_p=0.5, max_tokens=64
    )

    assert response.choices[0].message.content == "Hello from the fake."
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes or {})
    usage = response.usage
    assert usage is not None
    expected_cost = default_catalog().cost_usd(
        MODEL, usage.prompt_tokens, usage.completion_tokens, 2
    )
    assert expected_cost is not None
    assert attrs == {
        GEN_AI_OPERATION_NAME: "chat",
        GEN_AI_PROVIDER_NAME: "openai",
        GEN_AI_REQUEST_MODEL: MODEL,
        GEN_AI_REQUEST_STREAM: False,
        GEN_AI_REQUEST_TEMPERATURE: 0.25,
        GEN_AI_REQUEST_TOP_P: 0.5,
        GEN_AI_REQUEST_MAX_TOKENS: 64,
        SERVER_ADDRESS: fake_provider.host,
        SERVER_PORT: fake_provider.port,
        GEN_AI_RESPONSE_MODEL: response.model,
        GEN_AI_RESPONSE_ID: response.id,
        GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        GEN_AI_USAGE_INPUT_TOKENS: usage.prompt_tokens,
        GEN_AI_USAGE_OUTPUT_TOKENS: usage.completion_tokens,
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 2,
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 1,
        AGENTMESH_COST_USD: pytest.approx(expected_cost),  # pyright: ignore[reportUnknownMemberType]
    }


async def test_async_chat_span_matches_the_sync_one(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    response = await _aclient(fake_provider).chat.completions.create(model=MODEL, messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[GEN_AI_REQUEST_STREAM] is False
    assert attrs[GEN_AI_RESPONSE_ID] == response.id
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.completion_tokens  # type: ignore[union-attr]
    assert GEN_AI_REQUEST_TEMPERATURE not in attrs  # not given, not recorded
    assert GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attrs  # only for streams


def test_unknown_model_has_no_cost(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread({"my-private-model": ModelScript(content="hi")}) as fp:
        _client(fp).chat.completions.create(model="my-private-model", messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat my-private-model"
    assert GEN_AI_USAGE_INPUT_TOKENS in attrs
    assert AGENTMESH_COST_USD not in attrs


def test_run_id_from_baggage_is_on_the_span_and_in_outgoing_headers(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    token = otel_context.attach(with_run_id("run-42"))
    try:
        _client(fake_provider).chat.completions.create(model=MODEL, messages=MESSAGES)
    finally:
        otel_context.detach(token)

    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[AGENTMESH_RUN_ID] == "run-42"
    headers = fake_provider.requests[-1].headers
    assert "agentmesh.run.id=run-42" in headers["baggage"]
    assert f"{span.context.trace_id:032x}" in headers["traceparent"]


def test_user_headers_win_over_injected_ones(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    _client(fake_provider).chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers={"traceparent": "mine", "x-app": "1"}
    )

    headers = fake_provider.requests[-1].headers
    assert headers["traceparent"] == "mine"
    assert headers["x-app"] == "1"


def test_no_run_id_without_baggage(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    _client(fake_provider).chat.completions.create(model=MODEL, messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    assert AGENTMESH_RUN_ID not in (span.attributes or {})


def test_uninstrument_removes_the_patch(
    openai_instrumented: OpenAIInstrumentor,
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
) -> None:
    from openai.resources.chat.completions import AsyncCompletions, Completions

    assert isinstance(vars(Completions)["create"], wrapt.FunctionWrapper)
    assert isinstance(vars(AsyncCompletions)["create"], wrapt.FunctionWrapper)
    openai_instrumented.uninstrument()

    assert not isinstance(vars(Completions)["create"], wrapt.ObjectProxy)
    assert not isinstance(vars(AsyncCompletions)["create"], wrapt.ObjectProxy)
    _client(fake_provider).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert exporter.get_finished_spans() == ()
