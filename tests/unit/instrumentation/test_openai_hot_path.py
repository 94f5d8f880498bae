"""What the per-call shortcuts keep: streams read in place, cached attribute sets, metrics keys."""

from __future__ import annotations

import gc

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_RUN_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    METRIC_CLIENT_TOKEN_USAGE,
    SERVER_ADDRESS,
)
from agentmesh.instrumentation._metrics import GenAIMetrics
from agentmesh.instrumentation.openai import _attributes, _fields, _stream
from agentmesh.instrumentation.run_context import run_scope
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

MODEL = "gpt-4o-mini"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Stream please."}]
WORDS = 3 * _stream._BATCH  # pyright: ignore[reportPrivateUsage] - more chunks than a batch


def _client(fp: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=fp.openai_base_url, api_key="test", max_retries=0)


@pytest.mark.usefixtures("openai_instrumented")
def test_a_long_stream_is_the_sdk_stream_and_every_batch_is_read(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    content = " ".join(f"w{i}" for i in range(WORDS))
    fake_provider.set_script(MODEL, ModelScript(content=content, chunk_size=3))
    stream = _client(fake_provider).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert type(stream) is openai.Stream  # instrumented in place, not proxied

    chunks = list(stream)

    assert len(chunks) > 2 * _stream._BATCH  # pyright: ignore[reportPrivateUsage]
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    usage = chunks[-1].usage
    assert usage is not None
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == usage.prompt_tokens
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == usage.completion_tokens


@pytest.mark.usefixtures("openai_instrumented")
def test_a_long_stream_without_usage_counts_every_content_chunk(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    content = " ".join(f"w{i}" for i in range(WORDS))
    fake_provider.set_script(MODEL, ModelScript(content=content, chunk_size=3))

    chunks = list(
        _client(fake_provider).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    )

    content_chunks = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    assert content_chunks > 2 * _stream._BATCH  # pyright: ignore[reportPrivateUsage]
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {})[GEN_AI_USAGE_OUTPUT_TOKENS] == content_chunks


@pytest.mark.usefixtures("openai_instrumented")
def test_a_stream_never_iterated_ends_its_span_when_dropped(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    stream = _client(fake_provider).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True
    )
    assert exporter.get_finished_spans() == ()

    del stream
    gc.collect()

    (span,) = exporter.get_finished_spans()
    assert GEN_AI_RESPONSE_FINISH_REASONS not in (span.attributes or {})


def test_base_attributes_are_fresh_copies_with_the_current_run_id() -> None:
    first = _fields.base_attributes("chat", "openai", MODEL, "api.openai.com", 443)
    first["extra"] = 1
    with run_scope("run-1"):
        second = _fields.base_attributes("chat", "openai", MODEL, "api.openai.com", 443)

    assert "extra" not in second
    assert second[AGENTMESH_RUN_ID] == "run-1"
    assert AGENTMESH_RUN_ID not in _fields.base_attributes(
        "chat", "openai", MODEL, "api.openai.com", 443
    )
    assert _fields.span_name("chat", MODEL) == f"chat {MODEL}"


def _completions(base_url: str) -> object:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0).chat.completions


def test_request_attributes_are_shared_only_by_calls_that_read_the_same() -> None:
    local = _completions("http://127.0.0.1:9/v1")
    other = _completions("https://openrouter.ai/api/v1")
    plain = {"model": MODEL, "messages": MESSAGES, "temperature": 0.2, "max_tokens": 64}

    first = _attributes.read_request(local, plain)
    again = _attributes.read_request(
        local, {**plain, "messages": [{"role": "user", "content": "x"}]}
    )
    with run_scope("run-7"):
        in_run = _attributes.read_request(local, plain)
    hotter = _attributes.read_request(local, {**plain, "temperature": 0.9})
    routed = _attributes.read_request(other, plain)
    streamed = _attributes.read_request(local, {**plain, "stream": True})

    assert first.attributes == again.attributes
    assert first.attributes is not again.attributes  # a copy per call: callers extend it
    first.attributes["extra"] = 1
    assert "extra" not in _attributes.read_request(local, plain).attributes
    assert AGENTMESH_RUN_ID not in first.attributes
    assert in_run.attributes[AGENTMESH_RUN_ID] == "run-7"
    assert hotter.attributes["gen_ai.request.temperature"] == 0.9
    assert routed.attributes[GEN_AI_PROVIDER_NAME] == "openrouter"
    assert routed.attributes[SERVER_ADDRESS] == "openrouter.ai"
    assert (streamed.stream, streamed.attributes["gen_ai.request.stream"]) == (True, True)
    assert streamed.prompt_chars is not None  # a stream without usage: counted per call
    assert first.span_name == f"chat {MODEL}"


def test_request_values_that_would_collide_in_a_cache_key_are_read_in_full() -> None:
    local = _completions("http://127.0.0.1:9/v1")
    base = {"model": MODEL, "messages": MESSAGES}

    one = _attributes.read_request(local, {**base, "max_tokens": 1, "temperature": 1})
    flag = _attributes.read_request(local, {**base, "max_tokens": True, "temperature": True})
    odd = _attributes.read_request(local, {**base, "temperature": [0.1]})  # unhashable
    as_int = _attributes.read_request(local, {**base, "stream": 1})

    assert one.attributes["gen_ai.request.max_tokens"] == 1
    assert one.attributes["gen_ai.request.temperature"] == 1.0
    assert "gen_ai.request.max_tokens" not in flag.attributes  # a bool is not a number
    assert "gen_ai.request.temperature" not in flag.attributes
    assert "gen_ai.request.temperature" not in odd.attributes
    assert as_int.stream is False  # only True streams


def test_usage_fields_are_read_from_the_sdk_models_and_from_plain_objects() -> None:
    from openai.types.completion_usage import (
        CompletionTokensDetails,
        CompletionUsage,
        PromptTokensDetails,
    )

    class Details:
        def __init__(self) -> None:
            self.cached_tokens = 7

    class Usage:
        prompt_tokens = 30  # a class attribute: not in the instance's __dict__
        completion_tokens = 4
        prompt_tokens_details = Details()
        completion_tokens_details = None

    model = CompletionUsage(
        prompt_tokens=24,
        completion_tokens=5,
        total_tokens=29,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=16),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=3),
    )
    from_model = _attributes.ResponseSummary()
    from_model._absorb_usage(model)  # pyright: ignore[reportPrivateUsage]
    from_object = _attributes.ResponseSummary()
    from_object._absorb_usage(Usage())  # pyright: ignore[reportPrivateUsage]

    assert (from_model.input_tokens, from_model.output_tokens) == (24, 5)
    assert (from_model.cached_input_tokens, from_model.reasoning_tokens) == (16, 3)
    assert (from_object.input_tokens, from_object.output_tokens) == (30, 4)
    assert (from_object.cached_input_tokens, from_object.reasoning_tokens) == (7, None)


def test_usage_details_newer_than_the_sdk_are_read_from_its_extras() -> None:
    """openai 1.40's usage model has no ``*_tokens_details``: they arrive as extras (dicts)."""
    from pydantic import BaseModel, ConfigDict

    class OldUsage(BaseModel):
        model_config = ConfigDict(extra="allow")
        prompt_tokens: int
        completion_tokens: int
        total_tokens: int

    old = OldUsage.model_validate(
        {
            "prompt_tokens": 24,
            "completion_tokens": 5,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 16},
            "completion_tokens_details": {"reasoning_tokens": 3},
        }
    )
    summary = _attributes.ResponseSummary()
    summary._absorb_usage(old)  # pyright: ignore[reportPrivateUsage]
    assert (summary.input_tokens, summary.output_tokens) == (24, 5)
    assert (summary.cached_input_tokens, summary.reasoning_tokens) == (16, 3)


def test_record_call_builds_each_attribute_set_once_and_leaves_out_unknowns() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = GenAIMetrics.create(provider, "test")
    known = ("chat", "openai", MODEL, "gpt-4o-mini-2024-07-18", "api.openai.com")
    unknown = ("chat", "openai", MODEL, None, None)

    metrics.record_call(known, 0.5, 10, 2)
    metrics.record_call(known, 0.5, 30, 4)
    metrics.record_call(unknown, 0.5, 1, None)

    data = reader.get_metrics_data()
    assert data is not None
    points = [
        p
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == METRIC_CLIENT_TOKEN_USAGE
        for p in m.data.data_points
        if isinstance(p, HistogramDataPoint)
    ]
    by_attrs = {tuple(sorted(dict(p.attributes or {}).items())): p for p in points}
    base = {
        GEN_AI_OPERATION_NAME: "chat",
        GEN_AI_PROVIDER_NAME: "openai",
        GEN_AI_REQUEST_MODEL: MODEL,
    }
    full = {**base, GEN_AI_RESPONSE_MODEL: known[3], SERVER_ADDRESS: known[4]}
    inputs = by_attrs[tuple(sorted({**full, GEN_AI_TOKEN_TYPE: "input"}.items()))]
    assert (inputs.count, inputs.sum) == (2, 40)
    bare = by_attrs[tuple(sorted({**base, GEN_AI_TOKEN_TYPE: "input"}.items()))]
    assert (bare.count, bare.sum) == (1, 1)
    assert len(points) == 3  # full input, full output, bare input
    provider.shutdown()


def _messages(base_url: str) -> object:
    import anthropic

    return anthropic.Anthropic(base_url=base_url, api_key="test", max_retries=0).messages


def test_anthropic_request_attributes_are_shared_the_same_way() -> None:
    from agentmesh.instrumentation.anthropic import _attributes as anthropic_attributes

    read = anthropic_attributes.read_request
    local = _messages("http://127.0.0.1:9")
    other = _messages("http://127.0.0.2:9")
    plain = {"model": "claude-x", "messages": MESSAGES, "max_tokens": 64, "top_k": 5}

    first = read(local, plain)
    again = read(local, {**plain, "messages": [{"role": "user", "content": "x"}]})
    with run_scope("run-8"):
        in_run = read(local, plain)
    assert first.attributes == again.attributes
    assert first.attributes is not again.attributes  # a copy per call: callers extend it
    first.attributes["extra"] = 1
    assert "extra" not in read(local, plain).attributes
    assert AGENTMESH_RUN_ID not in first.attributes
    assert in_run.attributes[AGENTMESH_RUN_ID] == "run-8"
    assert read(local, {**plain, "top_k": 9}).attributes["gen_ai.request.top_k"] == 9
    assert read(other, plain).attributes[SERVER_ADDRESS] == "127.0.0.2"
    assert read(local, {**plain, "stream": True}).attributes["gen_ai.request.stream"] is True
    flag = read(local, {**plain, "max_tokens": True})
    assert "gen_ai.request.max_tokens" not in flag.attributes  # not the entry cached for 1
    assert read(local, {**plain, "max_tokens": 1}).attributes["gen_ai.request.max_tokens"] == 1
    odd = read(local, {**plain, "temperature": [0.1]})  # unhashable: read in full
    assert "gen_ai.request.temperature" not in odd.attributes
    assert first.span_name == "chat claude-x"
