"""The control loop as the app sees it: real SDK calls change behaviour on the collector's word.

A real local HTTP server serves control documents with the collector's long-poll semantics; the
app's control client follows it; real ``openai`` / ``anthropic`` SDK calls, instrumented by our
instrumentors, go to the fake provider over real HTTP. A stopped run's calls raise
``RunStoppedError`` and never reach the provider; an open circuit breaker sends enforce-mode
calls to the fallback model until its cool-down is over; shadow mode only records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core import semconv
from agentmesh.core.errors import RunStoppedError
from agentmesh.instrumentation import control, routing
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
from agentmesh.instrumentation.control import ControlClient
from agentmesh.instrumentation.control.testing import ControlServerThread
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.run_context import run_scope
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript
from agentmesh.router import DecisionLog, FallbackChains, PassThroughPolicy, RouteMode

WAIT = 10.0
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Plan the trip."}]
CHAINS = {"gpt-4o": ["gpt-4o-mini", "gpt-4.1"]}
STOP = {
    "action": "stop",
    "detection_id": "det-loop",
    "type": "handoff_loop",
    "explanation": "planner → booker → planner → booker",
    "resume_checkpoint_id": None,
    "at": 1_700_000_000.0,
}

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider(shutdown_on_exit=False)
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    openai_instr, anthropic_instr = OpenAIInstrumentor(), AnthropicInstrumentor()
    openai_instr.instrument(tracer_provider=_PROVIDER)
    anthropic_instr.instrument(tracer_provider=_PROVIDER)
    yield _EXPORTER
    openai_instr.uninstrument()
    anthropic_instr.uninstrument()
    routing.reset_routing()
    _EXPORTER.clear()


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(default_script=ModelScript(content="ok")) as provider:
        yield provider


@pytest.fixture
def collector() -> Iterator[ControlServerThread]:
    with ControlServerThread() as server:
        yield server


@pytest.fixture
def client(collector: ControlServerThread) -> Iterator[ControlClient]:
    installed = control.configure_control(url=collector.base_url)
    assert installed is not None
    yield installed
    control.shutdown_control()
    assert not installed.running


def _publish(collector: ControlServerThread, client: ControlClient, **document: object) -> None:
    version = collector.publish(**document)  # pyright: ignore[reportArgumentType]
    assert client.wait_for_version(version, WAIT)


def _openai(fake: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)


def _chat_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]


def _breaker(until: float, state: str = "open") -> dict[str, object]:
    return {
        "state": state,
        "until": until,
        "reason": "provider_outage: 5xx",
        "detection_id": "det-outage",
        "provider": "openai",
    }


# --- stopped runs -------------------------------------------------------------------------------


def test_stopped_run_raises_out_of_the_sdk_call_and_the_span_records_it(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    sdk = _openai(fake)
    with run_scope() as run_id:
        assert sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        _publish(collector, client, runs={run_id: STOP})
        with pytest.raises(RunStoppedError) as raised:
            sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert raised.value.run_id == run_id
    assert raised.value.detection_type == "handoff_loop"
    assert raised.value.detection_id == "det-loop"
    assert len(fake.requests) == 1  # the stopped call never reached the provider

    ok, stopped = _chat_spans(spans)
    assert ok.status.status_code is StatusCode.UNSET
    assert stopped.status.status_code is StatusCode.ERROR
    assert (stopped.attributes or {})[semconv.ERROR_TYPE] == "RunStoppedError"
    assert any(e.name == "exception" for e in stopped.events)

    with run_scope():  # another run goes on
        assert sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    assert len(fake.requests) == 2


def test_stopped_run_async_and_anthropic_calls(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    with run_scope() as run_id:
        _publish(collector, client, runs={run_id: STOP})

        async def call_async() -> None:
            sdk = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0)
            try:
                await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            finally:
                await sdk.close()

        with pytest.raises(RunStoppedError):
            asyncio.run(call_async())
        claude = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="t", max_retries=0)
        prompt: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hi"}]
        with pytest.raises(RunStoppedError):
            claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=prompt)
        with pytest.raises(RunStoppedError):
            claude.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=prompt)
        with pytest.raises(RunStoppedError):
            control.check_current_run()  # what framework wrappers call at each step start
    assert fake.requests == []
    ended = _chat_spans(spans)
    assert len(ended) == 3  # openai async, anthropic create, anthropic stream helper
    assert [(s.attributes or {})[semconv.ERROR_TYPE] for s in ended] == ["RunStoppedError"] * 3
    assert all(s.status.status_code is StatusCode.ERROR for s in ended)


def test_warned_run_goes_on(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    with run_scope() as run_id:
        _publish(collector, client, runs={run_id: {**STOP, "action": "warn"}})
        assert _openai(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    assert [r.model for r in fake.requests] == ["gpt-4o"]


# --- circuit breakers ---------------------------------------------------------------------------


def _route(mode: RouteMode) -> DecisionLog:
    log = DecisionLog()
    routing.configure_routing(
        mode=mode, policy=PassThroughPolicy(FallbackChains(CHAINS)), max_fallbacks=2, log=log
    )
    return log


def test_open_breaker_sends_enforce_calls_to_the_fallback_until_its_cool_down_ends(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    log = _route("enforce")
    sdk = _openai(fake)
    _publish(collector, client, breakers={"gpt-4o": _breaker(time.time() + 3600)})
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [r.model for r in fake.requests] == ["gpt-4o-mini"]
    (decision,) = log.decisions()
    assert decision.chosen == "gpt-4o-mini"
    assert decision.reason == "circuit open for gpt-4o"
    assert decision.avoided == ("gpt-4o",)
    (span,) = _chat_spans(spans)
    attrs = span.attributes or {}
    assert attrs[semconv.AGENTMESH_ROUTE_REASON] == "circuit open for gpt-4o"
    assert attrs[semconv.AGENTMESH_ROUTE_CHOSEN] == "gpt-4o-mini"

    # The cool-down is over (``until`` passed): the breaker is half-open, gpt-4o is tried again.
    _publish(collector, client, breakers={"gpt-4o": _breaker(time.time() - 1)})
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    # The collector marks it half-open explicitly: allowed too.
    _publish(collector, client, breakers={"gpt-4o": _breaker(time.time() + 3600, "half_open")})
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [r.model for r in fake.requests] == ["gpt-4o-mini", "gpt-4o", "gpt-4o"]
    assert [d.reason for d in log.decisions()[1:]] == ["requested model", "requested model"]


def test_open_breaker_is_skipped_by_error_fallbacks(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    _route("enforce")
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    _publish(collector, client, breakers={"gpt-4o-mini": _breaker(time.time() + 3600)})
    _openai(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    # gpt-4o fails (503); the next candidate, gpt-4o-mini, is open: gpt-4.1 is tried.
    assert [r.model for r in fake.requests] == ["gpt-4o", "gpt-4.1"]


def test_shadow_mode_records_the_breaker_and_changes_nothing(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    log = _route("shadow")
    _publish(collector, client, breakers={"gpt-4o": _breaker(time.time() + 3600)})
    _openai(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [r.model for r in fake.requests] == ["gpt-4o"]
    (decision,) = log.decisions()
    assert decision.mode == "shadow"
    assert decision.chosen == "gpt-4o-mini"  # what enforce mode would have done
    assert decision.reason == "circuit open for gpt-4o"
    (span,) = _chat_spans(spans)
    attrs = span.attributes or {}
    assert attrs[semconv.AGENTMESH_ROUTE_REASON] == "circuit open for gpt-4o"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"


def test_collector_down_keeps_breakers_and_calls_never_fail(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    _route("enforce")
    _publish(collector, client, breakers={"gpt-4o": _breaker(time.time() + 3600)})
    collector.stop()
    deadline = time.monotonic() + WAIT
    while client.stats.failures == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.stats.failures >= 1
    _openai(fake).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [r.model for r in fake.requests] == ["gpt-4o-mini"]  # the last document still holds


def test_zero_config_follows_the_collector_named_in_the_environment(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    collector: ControlServerThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No configure_control: the first provider call reads the settings and starts the client.
    monkeypatch.setenv("AGENTMESH_CONTROL_URL", collector.base_url)
    monkeypatch.delenv("AGENTMESH_CONTROL_ENABLED", raising=False)
    control.shutdown_control()
    try:
        sdk = _openai(fake)
        with run_scope() as run_id:
            sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            started = control.control_client()
            assert started is not None
            assert started.base_url == collector.base_url
            _publish(collector, started, runs={run_id: STOP})
            with pytest.raises(RunStoppedError):
                sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(fake.requests) == 1
    finally:
        control.shutdown_control()
