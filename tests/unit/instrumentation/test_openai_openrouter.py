"""OpenRouter through the OpenAI SDK: provider ``openrouter``, the upstream model and provider.

The client calls ``https://openrouter.ai/api/v1`` as a real app would; a transport sends the
requests to the fake provider on loopback instead (the only thing it changes is the address).
"""

from __future__ import annotations

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    AGENTMESH_UPSTREAM_PROVIDER,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    SERVER_ADDRESS,
)
from agentmesh.instrumentation import routing
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript
from agentmesh.router import DecisionLog, FallbackChains, PassThroughPolicy
from agentmesh.router.catalog import default_catalog

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MODEL = "meta-llama/llama-3.1-70b-instruct"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


class _ToLoopback(httpx.BaseTransport):
    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api")
        url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self._port, path=path)
        forwarded = httpx.Request(
            request.method, url, headers=request.headers, content=request.read()
        )
        return self._inner.handle_request(forwarded)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def openrouter() -> FakeProviderThread:
    with FakeProviderThread({MODEL: ModelScript(content="Hi from Llama.")}) as fp:
        yield fp  # type: ignore[misc]


def _client(fp: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="https://openrouter.ai/api/v1",
        api_key="t",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(transport=_ToLoopback(fp.port)),
    )


def test_openrouter_upstream_model_and_provider(
    openrouter: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    completion = _client(openrouter).chat.completions.create(model=MODEL, messages=MESSAGES)

    assert completion.choices[0].message.content == "Hi from Llama."
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == f"chat {MODEL}"
    assert attrs[GEN_AI_PROVIDER_NAME] == "openrouter"
    assert attrs[SERVER_ADDRESS] == "openrouter.ai"
    assert attrs[GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[GEN_AI_RESPONSE_MODEL] == completion.model
    assert attrs[AGENTMESH_UPSTREAM_PROVIDER] == "Meta"
    assert isinstance(attrs[AGENTMESH_COST_USD], float)


def test_openrouter_stream_upstream_provider(
    openrouter: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    stream = _client(openrouter).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass

    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_PROVIDER_NAME] == "openrouter"
    assert attrs[AGENTMESH_UPSTREAM_PROVIDER] == "Meta"
    assert attrs[GEN_AI_RESPONSE_MODEL] == MODEL


@pytest.mark.parametrize(
    ("model", "catalog_name"),
    [
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("anthropic/claude-haiku-4.5", "claude-haiku-4-5"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
    ],
)
def test_openrouter_prices_a_vendors_model_by_its_dotted_name(
    exporter: InMemorySpanExporter, model: str, catalog_name: str
) -> None:
    script = ModelScript(content="Hi.", input_tokens=1000, output_tokens=500)
    with FakeProviderThread({model: script}) as fp:
        completion = _client(fp).chat.completions.create(model=model, messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_RESPONSE_MODEL] == completion.model == model
    assert attrs[AGENTMESH_COST_USD] == pytest.approx(
        default_catalog().cost_usd(catalog_name, 1000, 500)
    )


def test_an_openrouter_fallback_is_priced_at_the_vendor_model_that_answered(
    exporter: InMemorySpanExporter,
) -> None:
    scripts = {
        "openai/gpt-4o": ModelScript(error=ErrorScript(status=503)),
        "anthropic/claude-haiku-4.5": ModelScript(input_tokens=1000, output_tokens=500),
    }
    chains = FallbackChains({"openai/gpt-4o": ["anthropic/claude-haiku-4.5"]})
    routing.configure_routing(mode="enforce", policy=PassThroughPolicy(chains), log=DecisionLog())
    try:
        with FakeProviderThread(scripts) as fp:
            _client(fp).chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)
            assert [r.model for r in fp.requests] == ["openai/gpt-4o", "anthropic/claude-haiku-4.5"]
    finally:
        routing.uninstall_provider_hooks()
        routing.reset_routing()

    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[GEN_AI_REQUEST_MODEL] == "anthropic/claude-haiku-4.5"
    assert attrs[AGENTMESH_COST_USD] == pytest.approx(
        default_catalog().cost_usd("claude-haiku-4-5", 1000, 500)
    )
