"""Fixtures of the instrumentation tests: in-memory spans, instrumentors, the fake provider.

Spans go to an ``InMemorySpanExporter`` through a ``SimpleSpanProcessor`` on a provider of
their own (the global provider is never touched). Each instrumentor fixture instruments with
that provider and uninstruments afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider(shutdown_on_exit=False)
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))

MODEL = "gpt-4o-mini"


@pytest.fixture
def tracer_provider() -> TracerProvider:
    return _PROVIDER


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def openai_instrumented(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[OpenAIInstrumentor]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def langgraph_instrumented(
    openai_instrumented: OpenAIInstrumentor, tracer_provider: TracerProvider
) -> Iterator[LangGraphInstrumentor]:
    instrumentor = LangGraphInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def fake_provider() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(
        {MODEL: ModelScript(content="Hello from the fake.", cached_tokens=2, reasoning_tokens=1)}
    ) as provider:
        yield provider
