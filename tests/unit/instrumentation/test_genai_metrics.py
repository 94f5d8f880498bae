"""GenAI client metrics: token usage and operation duration, with the advised buckets."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    ERROR_TYPE,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_TYPE,
    METRIC_CLIENT_OPERATION_DURATION,
    METRIC_CLIENT_TOKEN_USAGE,
    OPERATION_DURATION_BUCKETS,
    SERVER_ADDRESS,
    TOKEN_USAGE_BUCKETS,
)
from agentmesh.instrumentation import routing
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript
from agentmesh.router import DecisionLog, FallbackChains, PassThroughPolicy

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
BROKEN = "gpt-4.1"


@pytest.fixture
def reader(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[InMemoryMetricReader]:
    metric_reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metric_reader])
    instrumentors = (OpenAIInstrumentor(), AnthropicInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield metric_reader
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    meter_provider.shutdown()


@pytest.fixture
def fp() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(
        {
            GPT: ModelScript(content="Hi.", input_tokens=30, output_tokens=5),
            CLAUDE: ModelScript(content="Hi.", input_tokens=40, output_tokens=6, cached_tokens=10),
            BROKEN: ModelScript(error=ErrorScript(status=500)),
        }
    ) as provider:
        yield provider


def _points(reader: InMemoryMetricReader, name: str) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    points: list[HistogramDataPoint] = []
    if data is None:
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    points.extend(
                        p for p in metric.data.data_points if isinstance(p, HistogramDataPoint)
                    )
    return points


def _units(reader: InMemoryMetricReader) -> dict[str, str]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        m.name: m.unit for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
    }


def test_openai_chat_records_tokens_and_duration(
    reader: InMemoryMetricReader, fp: FakeProviderThread
) -> None:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
    client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "Hi"}])

    base = {
        GEN_AI_OPERATION_NAME: "chat",
        GEN_AI_PROVIDER_NAME: "openai",
        GEN_AI_REQUEST_MODEL: GPT,
        GEN_AI_RESPONSE_MODEL: GPT,
        SERVER_ADDRESS: "127.0.0.1",
    }
    tokens = {
        str((p.attributes or {})[GEN_AI_TOKEN_TYPE]): p
        for p in _points(reader, METRIC_CLIENT_TOKEN_USAGE)
    }
    assert set(tokens) == {"input", "output"}
    assert tokens["input"].sum == 30
    assert tokens["output"].sum == 5
    assert dict(tokens["input"].attributes or {}) == {**base, GEN_AI_TOKEN_TYPE: "input"}
    assert tokens["input"].explicit_bounds == TOKEN_USAGE_BUCKETS
    (duration,) = _points(reader, METRIC_CLIENT_OPERATION_DURATION)
    assert duration.count == 1
    assert duration.sum > 0
    assert dict(duration.attributes or {}) == base
    assert duration.explicit_bounds == OPERATION_DURATION_BUCKETS
    assert _units(reader) == {
        METRIC_CLIENT_TOKEN_USAGE: "{token}",
        METRIC_CLIENT_OPERATION_DURATION: "s",
    }


def test_streamed_call_is_recorded_when_the_stream_ends(
    reader: InMemoryMetricReader, fp: FakeProviderThread
) -> None:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
    stream = client.chat.completions.create(
        model=GPT,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert _points(reader, METRIC_CLIENT_OPERATION_DURATION) == []

    for _ in stream:
        pass

    assert len(_points(reader, METRIC_CLIENT_OPERATION_DURATION)) == 1
    assert sorted(p.sum for p in _points(reader, METRIC_CLIENT_TOKEN_USAGE)) == [5, 30]


def test_anthropic_counts_all_input_tokens(
    reader: InMemoryMetricReader, fp: FakeProviderThread
) -> None:
    client = anthropic.Anthropic(base_url=fp.anthropic_base_url, api_key="t", max_retries=0)
    client.messages.create(
        model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
    )

    tokens = {
        str((p.attributes or {})[GEN_AI_TOKEN_TYPE]): p
        for p in _points(reader, METRIC_CLIENT_TOKEN_USAGE)
    }
    assert tokens["input"].sum == 40
    assert tokens["output"].sum == 6
    assert (tokens["input"].attributes or {})[GEN_AI_PROVIDER_NAME] == "anthropic"
    (duration,) = _points(reader, METRIC_CLIENT_OPERATION_DURATION)
    assert (duration.attributes or {})[GEN_AI_REQUEST_MODEL] == CLAUDE


def test_failed_call_records_duration_with_the_error_type(
    reader: InMemoryMetricReader, fp: FakeProviderThread
) -> None:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=BROKEN, messages=[{"role": "user", "content": "Hi"}])

    (duration,) = _points(reader, METRIC_CLIENT_OPERATION_DURATION)
    attrs = dict(duration.attributes or {})
    assert attrs[ERROR_TYPE] == "InternalServerError"
    assert attrs[GEN_AI_REQUEST_MODEL] == BROKEN
    assert GEN_AI_RESPONSE_MODEL not in attrs
    assert _points(reader, METRIC_CLIENT_TOKEN_USAGE) == []


def test_a_routed_call_is_counted_under_the_model_sent(
    reader: InMemoryMetricReader, fp: FakeProviderThread
) -> None:
    # enforce: BROKEN answers 500, the fallback GPT answers; the span names GPT as sent
    routing.configure_routing(
        mode="enforce",
        policy=PassThroughPolicy(FallbackChains({BROKEN: [GPT]})),
        max_fallbacks=1,
        log=DecisionLog(),
    )
    try:
        client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)
        client.chat.completions.create(model=BROKEN, messages=[{"role": "user", "content": "Hi"}])
    finally:
        routing.uninstall_provider_hooks()
        routing.reset_routing()
    (duration,) = _points(reader, METRIC_CLIENT_OPERATION_DURATION)
    attributes = dict(duration.attributes or {})
    assert (attributes[GEN_AI_REQUEST_MODEL], attributes[GEN_AI_RESPONSE_MODEL]) == (GPT, GPT)
