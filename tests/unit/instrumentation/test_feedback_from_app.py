"""Feedback from the app: the routed call it just made is named, and its score reaches a real
collector's ``POST /v1/feedback`` from the background sender, joined to the call's span."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.core import ConfigError, semconv
from agentmesh.instrumentation import routing
from agentmesh.instrumentation.feedback import RouteRef, last_route, send_feedback
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript
from agentmesh.router import DecisionLog, FallbackChains, PassThroughPolicy

_FEEDBACK = "agentmesh.feedback"


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(default_script=ModelScript(content="ok")) as provider:
        yield provider


@pytest.fixture
def shadow(openai_instrumented: OpenAIInstrumentor) -> Iterator[None]:
    routing.configure_routing(
        mode="shadow", policy=PassThroughPolicy(FallbackChains()), log=DecisionLog()
    )
    yield
    routing.reset_routing()


def _chat(fake: FakeProviderThread) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.usefixtures("shadow")
async def test_a_score_for_the_call_just_made_reaches_the_collector(
    fake: FakeProviderThread, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, store="memory", router_training=False
    )
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
        assert route.span_id == f"{call.context.span_id:016x}"
        assert route.model == "gpt-4o"
        assert send_feedback(0.75, comment="user accepted")
        deadline = time.monotonic() + 20
        stored = []
        while not stored and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await collector.drain()
            stored = [s for s in await store.spans(route.trace_id) if s.name == _FEEDBACK]
        (feedback,) = stored
        assert feedback.parent_span_id == route.span_id
        assert feedback.attributes[semconv.AGENTMESH_ROUTE_DECISION_ID] == route.decision_id
        assert feedback.attributes[semconv.AGENTMESH_FEEDBACK_SCORE] == 0.75


def test_bad_scores_are_refused_and_nothing_to_score_is_said() -> None:
    for score in (1.5, -0.1, float("nan"), True, "1"):
        with pytest.raises(ConfigError, match="a feedback score is a number from 0 to 1"):
            send_feedback(score)  # pyright: ignore[reportArgumentType]
    with capture_logs() as logs:
        assert not send_feedback(1.0)  # no routed call in this context
    assert any("no routed call in this context" in e["event"] for e in logs)


def test_an_unreachable_collector_costs_the_app_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_CONTROL_URL", "http://127.0.0.1:9")
    route = RouteRef("d-1", "ab" * 16, "cd" * 8, "gpt-4o")
    started = time.perf_counter()
    assert send_feedback(0.5, route=route)  # queued; the sender thread does the waiting
    assert time.perf_counter() - started < 0.5
