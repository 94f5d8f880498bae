"""Feedback from the app: the routed call it just made is named, and its score reaches a real
collector's ``POST /v1/feedback`` from the background sender, joined to the call's span."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.core import semconv
from agentmesh.instrumentation import feedback, routing
from agentmesh.instrumentation.feedback import last_route, send_feedback
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript
from agentmesh.router import DecisionLog, FallbackChains, PassThroughPolicy

_FEEDBACK = "agentmesh.feedback"


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(default_script=ModelScript(content="ok")) as provider:
        yield provider


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    routing.configure_routing(
        mode="shadow", policy=PassThroughPolicy(FallbackChains()), log=DecisionLog()
    )
    token = feedback._LAST.set(None)  # pyright: ignore[reportPrivateUsage] - a clean context
    yield spans
    feedback._LAST.reset(token)  # pyright: ignore[reportPrivateUsage]
    routing.reset_routing()
    routing.uninstall_provider_hooks()
    instrumentor.uninstrument()


def _chat(fake: FakeProviderThread) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


async def test_a_score_for_the_call_just_made_reaches_the_collector(
    fake: FakeProviderThread, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    settings = CollectorSettings.load(grpc_port=0, http_port=0, store="memory")
    async with Collector(settings, store) as collector:
        monkeypatch.setenv("AGENTMESH_CONTROL_URL", collector.http_endpoint)
        await asyncio.to_thread(_chat, fake)  # another context: its route stays there
        assert last_route() is None
        _chat(fake)
        route = last_route()
        assert route is not None
        call = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")][-1]
        attrs = dict(call.attributes or {})
        assert route.decision_id == attrs[semconv.AGENTMESH_ROUTE_DECISION_ID]
        assert call.context is not None
        assert route.span_id == f"{call.context.span_id:016x}"
        assert route.model == "gpt-4o"
        assert send_feedback(0.75, comment="user accepted")
        deadline = time.monotonic() + 20
        stored = []
        while not stored and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await collector.drain()
            stored = [s for s in await store.spans(route.trace_id) if s.name == _FEEDBACK]
        (scored,) = stored
        assert scored.parent_span_id == route.span_id
        assert scored.attributes[semconv.AGENTMESH_ROUTE_DECISION_ID] == route.decision_id
        assert scored.attributes[semconv.AGENTMESH_FEEDBACK_SCORE] == 0.75
