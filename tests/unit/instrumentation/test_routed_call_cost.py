"""The cost of a routed call: the model that answered, else the model sent, never the app's.

Enforce mode and fallbacks replace the model the application asked for; the span's
``gen_ai.request.model`` names the model sent and ``agentmesh.route.requested_model`` the
application's. A call sent to a model the catalog does not know gets no
``agentmesh.cost.usd``: pricing it at the application's model would record another model's
price. Real ``openai`` and ``anthropic`` SDKs, instrumented, against the fake provider.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core import semconv
from agentmesh.instrumentation import routing
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript
from agentmesh.router import DecisionLog, FallbackChains, PassThroughPolicy, PinnedPolicy, Pins
from agentmesh.router.catalog import default_catalog

UNKNOWN = "my-local-model"
"""A model the catalog does not know (a self-hosted one, say)."""

USAGE: dict[str, Any] = {"input_tokens": 1000, "output_tokens": 500}
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello?"}]


def _price(model: str) -> float:
    cost = default_catalog().cost_usd(model, USAGE["input_tokens"], USAGE["output_tokens"])
    assert cost is not None
    return cost


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    scripts = {
        "gpt-4o": ModelScript(error=ErrorScript(status=503)),
        "claude-sonnet-4-5": ModelScript(error=ErrorScript(status=529)),
    }
    with FakeProviderThread(scripts, default_script=ModelScript(content="ok", **USAGE)) as fp:
        yield fp


@pytest.fixture
def hooked(openai_instrumented: OpenAIInstrumentor) -> Iterator[OpenAIInstrumentor]:
    # Instrumenting installs the provider hooks: routing needs nothing more than its mode.
    yield openai_instrumented
    routing.uninstall_provider_hooks()
    routing.reset_routing()


def _route(chains: dict[str, list[str]], pins: Pins | None = None) -> None:
    fallbacks = FallbackChains(chains)
    policy = PassThroughPolicy(fallbacks)
    routing.configure_routing(
        mode="enforce",
        policy=policy if pins is None else PinnedPolicy(pins, fallbacks),
        max_fallbacks=2,
        log=DecisionLog(),
    )


def _client(fake: FakeProviderThread, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0, **options)


def _chat(fake: FakeProviderThread, how: str, model: str = "gpt-4o") -> None:
    if how == "async create":

        async def created() -> None:
            client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0)
            await client.chat.completions.create(model=model, messages=MESSAGES)

        asyncio.run(created())
        return
    completions = _client(fake).chat.completions
    if how == "create":
        completions.create(model=model, messages=MESSAGES)
        return
    options: dict[str, Any] = {}
    if how == "stream":
        options["stream_options"] = {"include_usage": True}
    for _ in completions.create(model=model, messages=MESSAGES, stream=True, **options):
        pass


def _attributes(exporter: InMemorySpanExporter) -> dict[str, Any]:
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


@pytest.mark.parametrize("how", ["create", "async create", "stream", "stream without usage"])
def test_a_fallback_to_a_model_the_catalog_does_not_know_is_not_priced(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread, how: str
) -> None:
    _route({"gpt-4o": [UNKNOWN]})
    _chat(fake, how)
    assert [r.model for r in fake.requests] == ["gpt-4o", UNKNOWN]
    attrs = _attributes(exporter)
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == UNKNOWN
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == UNKNOWN
    assert attrs[semconv.AGENTMESH_ROUTE_REQUESTED_MODEL] == "gpt-4o"
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS in attrs  # usage known, the model is not
    assert semconv.AGENTMESH_COST_USD not in attrs  # not gpt-4o's price


def test_enforce_to_a_model_the_catalog_does_not_know_is_not_priced(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    _route({}, Pins(models={"gpt-4o-mini": UNKNOWN}))
    _chat(fake, "create", model="gpt-4o-mini")
    assert [r.model for r in fake.requests] == [UNKNOWN]
    attrs = _attributes(exporter)
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == UNKNOWN
    assert attrs[semconv.AGENTMESH_ROUTE_REQUESTED_MODEL] == "gpt-4o-mini"
    assert semconv.AGENTMESH_COST_USD not in attrs


def test_enforce_to_a_known_model_is_priced_at_it(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    _route({}, Pins(models={UNKNOWN: "gpt-4o-mini"}))
    _chat(fake, "create", model=UNKNOWN)
    attrs = _attributes(exporter)
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[semconv.AGENTMESH_COST_USD] == pytest.approx(_price("gpt-4o-mini"))


class _AnswerAs(httpx.BaseTransport):
    """Names another model in every chat completion (a deployment the catalog cannot know)."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if response.status_code != 200:
            return response
        body = json.loads(response.read())
        response.close()
        return httpx.Response(200, json={**body, "model": self._model}, request=request)

    def close(self) -> None:
        self._inner.close()


def test_the_model_sent_prices_a_call_whose_answer_names_an_unknown_model(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    _route({"gpt-4o": ["gpt-4o-mini"]})
    http_client = openai.DefaultHttpxClient(transport=_AnswerAs("house-deployment-7"))
    _client(fake, http_client=http_client).chat.completions.create(
        model="gpt-4o", messages=MESSAGES
    )
    attrs = _attributes(exporter)
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == "house-deployment-7"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[semconv.AGENTMESH_COST_USD] == pytest.approx(_price("gpt-4o-mini"))


def test_calls_routing_leaves_alone_keep_their_price(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    routing.configure_routing(mode="off", log=DecisionLog())
    for model in ("gpt-4o-mini", UNKNOWN):
        _chat(fake, "create", model=model)
    known, unknown = [dict(s.attributes or {}) for s in exporter.get_finished_spans()]
    assert known[semconv.AGENTMESH_COST_USD] == pytest.approx(_price("gpt-4o-mini"))
    assert semconv.AGENTMESH_COST_USD not in unknown


def _anthropic_reply(fake: FakeProviderThread, how: str) -> None:
    import anthropic

    request: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Hello?"}],
    }
    client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="t", max_retries=0)
    if how == "create":
        client.messages.create(**request)
    else:
        with client.messages.stream(**request) as stream:
            stream.get_final_message()


@pytest.fixture
def anthropic_hooked(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[None]:
    from agentmesh.instrumentation.anthropic import AnthropicInstrumentor

    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert routing.install_provider_hooks()
    yield
    routing.uninstall_provider_hooks()
    instrumentor.uninstrument()
    routing.reset_routing()


@pytest.mark.parametrize("how", ["create", "stream"])
@pytest.mark.parametrize("fallback", ["claude-local", "claude-haiku-4-5"])
@pytest.mark.usefixtures("anthropic_hooked")
def test_an_anthropic_fallback_is_priced_at_the_model_that_answered(
    exporter: InMemorySpanExporter, fake: FakeProviderThread, how: str, fallback: str
) -> None:
    _route({"claude-sonnet-4-5": [fallback]})
    _anthropic_reply(fake, how)
    assert [r.model for r in fake.requests] == ["claude-sonnet-4-5", fallback]
    attrs = _attributes(exporter)
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == fallback
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS in attrs
    if fallback == "claude-local":
        assert semconv.AGENTMESH_COST_USD not in attrs  # not Sonnet's price
    else:
        assert attrs[semconv.AGENTMESH_COST_USD] == pytest.approx(_price(fallback))
