"""Baggage: run id and task class stamped onto every span, across asyncio tasks, thread pools,
LangGraph's parallel nodes, and from incoming HTTP headers (``continue_from``).

Spans go through a provider of this module's own that has the baggage span processor (the one
``init()`` and the zero-code configurator install); the real OpenAI SDK talks to the fake
provider, which records the ``baggage`` header each call carried.
"""

from __future__ import annotations

import asyncio
import contextvars
import operator
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, TypedDict

import openai
import pytest
from langgraph.graph import START, StateGraph
from langgraph.types import Send
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_ROUTE_DECISION_ID,
    AGENTMESH_RUN_BUDGET_USD,
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_TASK_CLASS,
)
from agentmesh.instrumentation import (
    continue_from,
    current_run_id,
    current_task_class,
    extract_context,
    run_scope,
    task_class,
)
from agentmesh.instrumentation._baggage_processor import BaggageSpanProcessor
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, RecordedRequest

MODEL = "gpt-4o-mini"

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider(shutdown_on_exit=False)
_PROVIDER.add_span_processor(BaggageSpanProcessor())
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
_TRACER = _PROVIDER.get_tracer("test")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def instrumented(spans: InMemorySpanExporter) -> Iterator[None]:
    instrumentors = [OpenAIInstrumentor(), LangGraphInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=_PROVIDER)
    yield
    for instrumentor in instrumentors:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _baggage_of(request: RecordedRequest) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in request.headers.get("baggage", "").split(","))
    return {k.strip(): v.strip() for k, v in (p for p in pairs if len(p) == 2)}


def test_processor_stamps_agentmesh_baggage_typed_and_keeps_explicit_values(
    spans: InMemorySpanExporter,
) -> None:
    ctx = baggage.set_baggage(AGENTMESH_RUN_ID, "run-1")
    ctx = baggage.set_baggage(AGENTMESH_RUN_TASK_CLASS, "research", ctx)
    ctx = baggage.set_baggage(AGENTMESH_RUN_BUDGET_USD, "0.25", ctx)
    ctx = baggage.set_baggage(AGENTMESH_ROUTE_DECISION_ID, "d-1", ctx)
    ctx = baggage.set_baggage("user.id", "secret", ctx)

    _TRACER.start_span("plain", context=ctx).end()
    _TRACER.start_span("explicit", context=ctx, attributes={AGENTMESH_RUN_ID: "mine"}).end()
    bad = baggage.set_baggage(AGENTMESH_RUN_BUDGET_USD, "lots")
    _TRACER.start_span("bad budget", context=bad).end()

    plain, explicit, bad_budget = spans.get_finished_spans()
    assert _attrs(plain) == {
        AGENTMESH_RUN_ID: "run-1",
        AGENTMESH_RUN_TASK_CLASS: "research",
        AGENTMESH_RUN_BUDGET_USD: 0.25,
        AGENTMESH_ROUTE_DECISION_ID: "d-1",
    }
    assert _attrs(explicit)[AGENTMESH_RUN_ID] == "mine"
    assert _attrs(bad_budget) == {}


def test_task_class_as_context_manager_and_decorator() -> None:
    @task_class("summarise")
    def summarise() -> str | None:
        return current_task_class()

    @task_class("translate")
    async def translate() -> str | None:
        await asyncio.sleep(0)
        return current_task_class()

    async def both() -> list[str | None]:
        return list(await asyncio.gather(translate(), asyncio.to_thread(summarise)))

    with task_class("research") as name:
        assert name == "research"
        assert current_task_class() == "research"
        assert summarise() == "summarise"
        assert current_task_class() == "research"  # restored after the call
        assert asyncio.run(both()) == ["translate", "summarise"]
    assert current_task_class() is None


async def test_asyncio_gather_of_agent_steps_keeps_each_steps_baggage(
    instrumented: None, fake_provider: FakeProviderThread, spans: InMemorySpanExporter
) -> None:
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)

    async def step(name: str) -> None:
        with task_class(name), _TRACER.start_as_current_span(f"invoke_agent {name}"):
            await asyncio.sleep(0)  # let the other steps interleave
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": name}]
            )

    with run_scope() as run_id:
        await asyncio.gather(step("research"), step("review"), step("triage"))

    by_id = {s.context.span_id: s for s in spans.get_finished_spans()}
    chats = [s for s in by_id.values() if s.name == f"chat {MODEL}"]
    assert len(chats) == 3
    for chat in chats:
        assert chat.parent is not None
        agent = by_id[chat.parent.span_id]
        name = agent.name.removeprefix("invoke_agent ")
        assert _attrs(chat)[AGENTMESH_RUN_TASK_CLASS] == name
        assert _attrs(chat)[AGENTMESH_RUN_ID] == run_id
        assert _attrs(agent)[AGENTMESH_RUN_ID] == run_id
    sent = sorted(
        (b[AGENTMESH_RUN_ID], b[AGENTMESH_RUN_TASK_CLASS])
        for b in map(_baggage_of, fake_provider.requests)
    )
    assert sent == [(run_id, "research"), (run_id, "review"), (run_id, "triage")]


def test_thread_pool_with_copied_context_keeps_the_baggage(
    instrumented: None, fake_provider: FakeProviderThread, spans: InMemorySpanExporter
) -> None:
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)

    def call(text: str) -> str | None:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
        return current_run_id()

    with run_scope("run-pool"), task_class("batch"), ThreadPoolExecutor(4) as pool:
        copied = [pool.submit(contextvars.copy_context().run, call, f"q{i}") for i in range(4)]
        results = [f.result() for f in copied]

    assert results == ["run-pool"] * 4
    chats = spans.get_finished_spans()
    assert len(chats) == 4
    for chat in chats:
        assert _attrs(chat)[AGENTMESH_RUN_ID] == "run-pool"
        assert _attrs(chat)[AGENTMESH_RUN_TASK_CLASS] == "batch"
    assert all(_baggage_of(r)[AGENTMESH_RUN_ID] == "run-pool" for r in fake_provider.requests)


class Fan(TypedDict):
    notes: Annotated[list[str], operator.add]


def test_langgraph_parallel_nodes_carry_the_task_class(
    instrumented: None, fake_provider: FakeProviderThread, spans: InMemorySpanExporter
) -> None:
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)

    def worker(packet: dict[str, str]) -> Fan:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": packet["q"]}]
        )
        return {"notes": [packet["q"]]}

    graph = StateGraph(Fan)
    graph.add_node("worker", worker)
    graph.add_conditional_edges(START, lambda s: [Send("worker", {"q": q}) for q in "abc"])
    compiled = graph.compile(name="fan")

    with task_class("research"):
        compiled.invoke({"notes": []})
    first = list(spans.get_finished_spans())
    spans.clear()
    with task_class("research"):  # the run's own config metadata wins
        compiled.invoke({"notes": []}, {"metadata": {"agentmesh_task_class": "audit"}})
    second = list(spans.get_finished_spans())

    for found, expected in ((first, "research"), (second, "audit")):
        assert sorted(s.name for s in found) == sorted(
            ["invoke_workflow fan"] + ["invoke_agent worker", f"chat {MODEL}"] * 3
        )
        run_ids = {_attrs(s)[AGENTMESH_RUN_ID] for s in found}
        assert len(run_ids) == 1
        assert {_attrs(s)[AGENTMESH_RUN_TASK_CLASS] for s in found} == {expected}
    classes = [_baggage_of(r)[AGENTMESH_RUN_TASK_CLASS] for r in fake_provider.requests]
    assert classes == ["research"] * 3 + ["audit"] * 3


def test_continue_from_incoming_headers_joins_the_callers_trace_and_run(
    instrumented: None, fake_provider: FakeProviderThread, spans: InMemorySpanExporter
) -> None:
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="t", max_retries=0)
    with run_scope("run-upstream"), task_class("research"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    (caller,) = spans.get_finished_spans()
    (request,) = fake_provider.requests
    headers = {name.title(): value for name, value in request.headers.items()}  # any case

    with continue_from(headers):
        assert current_run_id() == "run-upstream"
        _TRACER.start_span("invoke_agent downstream").end()
    assert current_run_id() is None
    _, downstream = spans.get_finished_spans()

    assert downstream.context.trace_id == caller.context.trace_id
    assert downstream.parent is not None
    assert downstream.parent.span_id == caller.context.span_id
    assert downstream.parent.is_remote
    assert _attrs(downstream) == {
        AGENTMESH_RUN_ID: "run-upstream",
        AGENTMESH_RUN_TASK_CLASS: "research",
    }
    extracted = extract_context(list(headers.items()))
    assert trace.get_current_span(extracted).get_span_context().trace_id == caller.context.trace_id
    assert extract_context({}) is not None
    assert baggage.get_all(extract_context({"baggage": "%%%"})) == {}


def test_init_adds_the_baggage_processor_to_the_apps_own_provider() -> None:
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import agentmesh.instrumentation as am

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        assert am.init() is provider
        with am.run_scope("run-own"), am.task_class("triage"):
            trace.get_tracer("app").start_span("step").end()
        (span,) = exporter.get_finished_spans()
        print(span.attributes["agentmesh.run.id"], span.attributes["agentmesh.run.task_class"])
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "run-own triage"
