"""Trace headers go to gateways and our own services, not to public model APIs (unless asked)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import AGENTMESH_RUN_ID, SERVER_ADDRESS
from agentmesh.instrumentation import with_run_id
from agentmesh.instrumentation._provider_hosts import is_public_provider
from agentmesh.instrumentation.openai import OpenAIInstrumentor

_BODY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def _call(base_url: str) -> httpx.Headers:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=json.dumps(_BODY).encode())

    client = openai.OpenAI(
        base_url=base_url,
        api_key="test",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    token = otel_context.attach(with_run_id("run-7"))
    try:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
    finally:
        otel_context.detach(token)
    return sent[-1].headers


@pytest.mark.parametrize(
    ("host", "public"),
    [
        ("api.openai.com", True),
        ("API.Anthropic.com", True),
        ("openrouter.ai", True),
        ("team.openai.azure.com", True),
        ("llm-gateway.internal", False),
        ("127.0.0.1", False),
        (None, False),
    ],
)
def test_public_hosts(host: str | None, public: bool) -> None:
    assert is_public_provider(host) is public


@pytest.mark.usefixtures("openai_instrumented")
def test_no_trace_headers_to_a_public_api_but_the_span_is_complete(
    exporter: InMemorySpanExporter,
) -> None:
    headers = _call("https://api.openai.com/v1")
    assert "traceparent" not in headers
    assert "baggage" not in headers
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes or {}
    assert attrs[SERVER_ADDRESS] == "api.openai.com"
    assert attrs[AGENTMESH_RUN_ID] == "run-7"  # recorded on our span all the same


@pytest.mark.usefixtures("openai_instrumented")
def test_trace_headers_to_a_gateway(exporter: InMemorySpanExporter) -> None:
    headers = _call("https://llm-gateway.internal/v1")
    (span,) = exporter.get_finished_spans()
    assert f"{span.context.trace_id:032x}" in headers["traceparent"]
    assert "agentmesh.run.id=run-7" in headers["baggage"]


def test_the_setting_sends_them_to_public_apis_too(
    monkeypatch: pytest.MonkeyPatch,
    exporter: InMemorySpanExporter,
    tracer_provider: TracerProvider,
) -> None:
    monkeypatch.setenv("AGENTMESH_PROPAGATE_TO_PUBLIC_PROVIDERS", "true")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        headers = _call("https://api.openai.com/v1")
    finally:
        instrumentor.uninstrument()
    assert "agentmesh.run.id=run-7" in headers["baggage"]
    assert "traceparent" in headers
