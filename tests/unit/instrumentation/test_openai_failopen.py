"""Errors: the application's are recorded and re-raised unchanged; ours never reach it."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from structlog.testing import capture_logs

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    ERROR_TYPE,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from agentmesh.instrumentation.openai import _attributes, _pricing
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript
from agentmesh.router.catalog import default_catalog

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MODEL = "gpt-4o-mini"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def test_rate_limit_is_recorded_and_reraised_unchanged(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread({MODEL: ModelScript(error=ErrorScript(status=429))}) as fp:
        client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert type(caught.value) is openai.RateLimitError
    assert caught.value.status_code == 429
    assert "429" in str(caught.value)
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "RateLimitError"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {})["exception.type"].endswith("RateLimitError")  # type: ignore[union-attr]


async def test_async_server_error_is_recorded_and_reraised(exporter: InMemorySpanExporter) -> None:
    with FakeProviderThread({MODEL: ModelScript(error=ErrorScript(status=503))}) as fp:
        client = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert caught.value.status_code == 503
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "InternalServerError"


def test_connection_error_is_recorded(exporter: InMemorySpanExporter) -> None:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="t", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[ERROR_TYPE] == "APIConnectionError"


def _boom(*args: object, **kwargs: object) -> object:
    raise RuntimeError("bug in AgentMesh")


def test_bug_in_response_extraction_does_not_reach_the_app(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_attributes, "response_attributes", _boom)
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)

    response = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert response.choices[0].message.content == "Hello from the fake."
    (span,) = exporter.get_finished_spans()  # still ended
    assert span.status.status_code is StatusCode.UNSET
    assert GEN_AI_RESPONSE_ID not in (span.attributes or {})


def test_bug_in_chunk_handling_does_not_break_the_stream(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_attributes.ResponseSummary, "absorb", _boom)
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)

    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert text == "Hello from the fake."
    (span,) = exporter.get_finished_spans()
    assert GEN_AI_USAGE_INPUT_TOKENS not in (span.attributes or {})


def test_bug_in_request_reading_skips_the_span_not_the_call(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_attributes, "read_request", _boom)
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)

    response = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert response.choices[0].message.content == "Hello from the fake."
    assert exporter.get_finished_spans() == ()


def test_provider_name_and_server_from_the_base_url() -> None:
    client = openai.OpenAI(base_url="https://openrouter.ai/api/v1", api_key="t")
    request = _attributes.read_request(client.chat.completions, {"model": "openai/gpt-4o"})

    assert request.span_name == "chat openai/gpt-4o"
    assert request.attributes[GEN_AI_PROVIDER_NAME] == "openrouter"
    assert request.attributes[SERVER_ADDRESS] == "openrouter.ai"
    assert request.attributes[SERVER_PORT] == 443


def test_a_catalog_override_that_cannot_be_read_costs_only_the_override(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # it used to raise inside the response attributes: the span lost model, id and tokens too
    monkeypatch.setenv("AGENTMESH_ROUTER_CATALOG_PATH", str(tmp_path / "missing.json"))
    default_catalog.cache_clear()
    _pricing.forget()
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)
    try:
        with capture_logs() as logs:
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        default_catalog.cache_clear()
        _pricing.forget()
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    attributes = dict(spans[-1].attributes or {})
    assert attributes[GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert attributes[GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert attributes[AGENTMESH_COST_USD] > 0  # priced by the bundled catalog
    warned = [log for log in logs if "catalog override unusable" in log["event"]]
    assert len(warned) == 1  # once, not on every call
    assert "missing.json" in warned[0]["reason"]
