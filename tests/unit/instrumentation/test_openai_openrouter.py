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
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

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
