"""The routing hook end to end: a real OpenAI SDK call, routed, against the fake provider.

The provider wrappers call :mod:`agentmesh.instrumentation.routing`; here a test-only wrapt
wrapper around ``Completions.create`` calls it exactly as they will (decide, attach the
decision to baggage, start the span with the route attributes, send, fall back on retryable
errors with a span event), so the hook is exercised with the real SDK and real HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam, ChatCompletionToolParam
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from agentmesh.core import semconv
from agentmesh.instrumentation import routing
from agentmesh.instrumentation._baggage_processor import BaggageSpanProcessor
from agentmesh.instrumentation._patching import PatchSet, Wrapper
from agentmesh.instrumentation.baggage import task_class
from agentmesh.instrumentation.control._slot import changes
from agentmesh.instrumentation.openai import OpenAIInstrumentor, _pricing
from agentmesh.instrumentation.route_table import (
    RouteTableClient,
    configure_route_table,
    shutdown_route_table,
)
from agentmesh.instrumentation.run_context import run_scope
from agentmesh.instrumentation.settings import InstrumentationSettings
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript
from agentmesh.router import (
    DecisionLog,
    FallbackChains,
    PassThroughPolicy,
    PinnedPolicy,
    Pins,
    RouteDecision,
    RouteMode,
    RouteRequest,
    RouteTable,
)
from agentmesh.router.catalog import reset_catalog

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider(shutdown_on_exit=False)
_PROVIDER.add_span_processor(BaggageSpanProcessor())
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
_TRACER = _PROVIDER.get_tracer("routing-test")

CHAINS = {"gpt-4o": ["gpt-4o-mini", "gpt-4.1"]}
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello?"}]


def _routed_create() -> Wrapper:
    """The wrapper a provider instrumentation builds, reduced to what routing needs."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        routed = routing.before_call("openai", kwargs)
        token = routed.attach()
        try:
            attributes = {
                semconv.GEN_AI_REQUEST_MODEL: routed.model or "",
                **routing.span_attributes(routed),
            }
            with _TRACER.start_as_current_span(
                "chat", kind=trace.SpanKind.CLIENT, attributes=attributes
            ) as span:
                while True:
                    headers: dict[str, str] = {}
                    propagate.inject(headers)
                    try:
                        return wrapped(*args, **{**routed.kwargs, "extra_headers": headers})
                    except Exception as exc:
                        retry = routing.on_error(routed, exc)
                        if retry is None:
                            raise
                        span.add_event(*routing.fallback_event(routed, exc, retry["model"]))
        finally:
            routing.detach(token)

    return wrapper


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    patches = PatchSet("routing-test")
    patches.add("openai.resources.chat.completions", "Completions.create", _routed_create)
    patches.apply()
    yield _EXPORTER
    patches.remove()
    routing.reset_routing()
    _EXPORTER.clear()


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(default_script=ModelScript(content="ok")) as provider:
        yield provider


def _client(fake: FakeProviderThread, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0, **options)


def _chat(
    fake: FakeProviderThread,
    model: str = "gpt-4o",
    tools: list[ChatCompletionToolParam] | None = None,
) -> ChatCompletion:
    completions = _client(fake).chat.completions
    if tools is None:
        return completions.create(model=model, messages=MESSAGES)
    return completions.create(model=model, messages=MESSAGES, tools=tools)


def _span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "chat"]
    return span


def _configure(mode: RouteMode, *, max_fallbacks: int = 2, **kw: Any) -> None:
    routing.configure_routing(
        mode=mode,
        policy=kw.pop("policy", PassThroughPolicy(FallbackChains(CHAINS))),
        max_fallbacks=max_fallbacks,
        log=kw.pop("log", DecisionLog()),
    )


def test_off_records_nothing_and_changes_nothing(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    _configure("off")
    reply = _chat(fake)
    assert reply.choices[0].message.content == "ok"
    attrs = dict(_span(spans).attributes or {})
    assert not [k for k in attrs if k.startswith("agentmesh.route.")]
    assert "baggage" not in fake.requests[-1].headers
    assert routing.decision_log().decisions() == []


def test_shadow_records_the_decision_and_keeps_the_model(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    _configure("shadow", policy=PinnedPolicy(Pins(models={"gpt-4o": "gpt-4o-mini"})))
    _chat(fake)
    assert [r.model for r in fake.requests] == ["gpt-4o"]
    attrs = dict(_span(spans).attributes or {})
    (decision,) = routing.decision_log().decisions()
    assert attrs[semconv.AGENTMESH_ROUTE_MODE] == "shadow"
    assert attrs[semconv.AGENTMESH_ROUTE_POLICY] == "pinned"
    assert attrs[semconv.AGENTMESH_ROUTE_REQUESTED_MODEL] == "gpt-4o"
    assert attrs[semconv.AGENTMESH_ROUTE_CHOSEN] == "gpt-4o-mini"
    assert attrs[semconv.AGENTMESH_ROUTE_CANDIDATES] == ("gpt-4o-mini", "gpt-4o")
    assert attrs[semconv.AGENTMESH_ROUTE_SCORES] == (1.0, 0.0)
    assert attrs[semconv.AGENTMESH_ROUTE_DECISION_ID] == decision.decision_id
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"


def test_enforce_replaces_the_model(spans: InMemorySpanExporter, fake: FakeProviderThread) -> None:
    _configure("enforce", policy=PinnedPolicy(Pins(task_classes={"triage": "gpt-4o-mini"})))
    with task_class("triage"):
        reply = _chat(fake)
    _chat(fake)  # no task class: no pin, the requested model
    assert [r.model for r in fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    assert reply.model.startswith("gpt-4o-mini")
    first, second = [dict(s.attributes or {}) for s in spans.get_finished_spans()]
    assert first[semconv.AGENTMESH_ROUTE_CHOSEN] == "gpt-4o-mini"
    assert first[semconv.AGENTMESH_ROUTE_MODE] == "enforce"
    assert first[semconv.AGENTMESH_RUN_TASK_CLASS] == "triage"
    assert second[semconv.AGENTMESH_ROUTE_CHOSEN] == "gpt-4o"
    (logged, _) = routing.decision_log().decisions()
    assert logged.task_class == "triage"
    assert logged.features.message_count == 1


@pytest.mark.parametrize("status", [503, 429])
def test_enforce_falls_back_on_a_retryable_error(
    spans: InMemorySpanExporter, fake: FakeProviderThread, status: int
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=status, retry_after=0)))
    _configure("enforce")
    reply = _chat(fake)
    assert reply.choices[0].message.content == "ok"
    assert [r.model for r in fake.requests] == ["gpt-4o", "gpt-4o-mini"]
    span = _span(spans)
    (event,) = span.events
    decision_id = dict(span.attributes or {})[semconv.AGENTMESH_ROUTE_DECISION_ID]
    assert event.name == semconv.EVENT_FALLBACK
    assert dict(event.attributes or {}) == {
        semconv.AGENTMESH_ROUTE_FALLBACK_FROM: "gpt-4o",
        semconv.AGENTMESH_ROUTE_FALLBACK_TO: "gpt-4o-mini",
        semconv.ERROR_TYPE: "InternalServerError" if status == 503 else "RateLimitError",
        semconv.AGENTMESH_ROUTE_DECISION_ID: decision_id,
    }


def test_fallbacks_are_bounded_and_the_last_error_reaches_the_app(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1"):
        fake.set_script(model, ModelScript(error=ErrorScript(status=503)))
    _configure("enforce", max_fallbacks=1)
    with pytest.raises(openai.InternalServerError):
        _chat(fake)
    assert [r.model for r in fake.requests] == ["gpt-4o", "gpt-4o-mini"]
    assert [e.name for e in _span(spans).events].count(semconv.EVENT_FALLBACK) == 1


def test_the_chain_ends_and_the_error_reaches_the_app(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1"):
        fake.set_script(model, ModelScript(error=ErrorScript(status=500)))
    _configure("enforce", max_fallbacks=5)
    with pytest.raises(openai.InternalServerError):
        _chat(fake)
    assert [r.model for r in fake.requests] == ["gpt-4o", "gpt-4o-mini", "gpt-4.1"]
    assert [e.name for e in _span(spans).events].count(semconv.EVENT_FALLBACK) == 2


def test_no_fallback_on_a_client_error_or_in_shadow_mode(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=400)))
    _configure("enforce")
    with pytest.raises(openai.BadRequestError):
        _chat(fake)
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    _configure("shadow")
    with pytest.raises(openai.InternalServerError):
        _chat(fake)
    assert [r.model for r in fake.requests] == ["gpt-4o", "gpt-4o"]
    names = [e.name for s in spans.get_finished_spans() for e in s.events]
    assert semconv.EVENT_FALLBACK not in names


def test_the_decision_id_rides_in_baggage_to_child_spans_and_outgoing_calls(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    _configure("shadow")
    seen: list[str | None] = []

    def http_child_span(request: httpx.Request) -> None:
        seen.append(routing.current_decision_id())
        _TRACER.start_span("http send").end()

    client = _client(fake, http_client=httpx.Client(event_hooks={"request": [http_child_span]}))
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (decision,) = routing.decision_log().decisions()
    assert seen == [decision.decision_id]
    (child,) = [s for s in spans.get_finished_spans() if s.name == "http send"]
    assert dict(child.attributes or {})[semconv.AGENTMESH_ROUTE_DECISION_ID] == (
        decision.decision_id
    )
    baggage_header = fake.requests[-1].headers["baggage"]
    assert f"{semconv.AGENTMESH_ROUTE_DECISION_ID}={decision.decision_id}" in baggage_header
    assert routing.current_decision_id() is None  # detached after the call


def test_a_failing_policy_lets_the_call_through_unchanged(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    class Broken:
        name = "broken"

        def decide(self, request: RouteRequest) -> RouteDecision:
            raise RuntimeError("policy bug")

    _configure("enforce", policy=Broken())
    with capture_logs() as logs:
        reply = _chat(fake)
    assert reply.choices[0].message.content == "ok"
    assert [r.model for r in fake.requests] == ["gpt-4o"]
    assert not [k for k in dict(_span(spans).attributes or {}) if k.startswith("agentmesh.route")]
    (error,) = [e for e in logs if e.get("where") == "routing.before_call"]
    assert error["error"] == "policy bug"


def test_every_decision_is_a_json_line_in_the_log_file(
    spans: InMemorySpanExporter, fake: FakeProviderThread, tmp_path: Path
) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path=path, flush_interval_s=60)
    _configure("shadow", log=log)
    with task_class("research"):
        _chat(fake, model="gpt-4o", tools=[{"type": "function", "function": {"name": "f"}}])
    _chat(fake, model="gpt-4o-mini")
    log.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    span_ids = [
        dict(s.attributes or {})[semconv.AGENTMESH_ROUTE_DECISION_ID]
        for s in spans.get_finished_spans()
    ]
    assert [r["decision_id"] for r in records] == span_ids
    assert [r["requested_model"] for r in records] == ["gpt-4o", "gpt-4o-mini"]
    assert records[0]["task_class"] == "research"
    assert records[0]["features"]["has_tools"] is True
    assert records[0]["candidates"] == ["gpt-4o", "gpt-4o-mini", "gpt-4.1"]
    assert routing.decision_log().lines() == path.read_text().splitlines()


def test_routing_is_configured_from_the_environment(
    spans: InMemorySpanExporter, fake: FakeProviderThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTMESH_ROUTING_MODE", "enforce")
    monkeypatch.setenv("AGENTMESH_ROUTING_FALLBACKS", json.dumps(CHAINS))
    monkeypatch.setenv("AGENTMESH_ROUTING_PINS", '{"task_class": {"triage": "gpt-4.1"}}')
    monkeypatch.setenv("AGENTMESH_ROUTING_MAX_FALLBACKS", "1")
    routing.reset_routing()
    config = routing.routing_config()
    assert (config.mode, config.max_fallbacks, config.policy.name) == ("enforce", 1, "pinned")
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    with task_class("triage"):
        _chat(fake)
    _chat(fake)
    assert [r.model for r in fake.requests] == ["gpt-4.1", "gpt-4o", "gpt-4o-mini"]


def test_invalid_settings_turn_routing_off_without_breaking_the_app(
    spans: InMemorySpanExporter, fake: FakeProviderThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTMESH_ROUTING_FALLBACKS", '{"gpt-4o": "not a list"}')
    routing.reset_routing()
    with capture_logs() as logs:
        _chat(fake)
    assert routing.routing_config().mode == "off"
    assert [r.model for r in fake.requests] == ["gpt-4o"]
    assert [e for e in logs if e.get("where") == "routing.configure"]


def test_routing_is_off_by_default() -> None:
    assert InstrumentationSettings.load().routing_mode == "off"
    assert InstrumentationSettings.load().routing_max_fallbacks == 2


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (openai.APIConnectionError(request=httpx.Request("POST", "http://x")), True),
        (openai.APITimeoutError(request=httpx.Request("POST", "http://x")), True),
        (httpx.ConnectError("refused"), True),
        (TimeoutError(), True),
        (ValueError("bad"), False),
    ],
)
def test_retryable_errors_are_recognised_without_importing_sdks(
    exc: BaseException, expected: bool
) -> None:
    assert routing.is_retryable(exc) is expected


def test_on_error_without_a_model_or_decision_returns_none() -> None:
    _configure("enforce")
    call = routing.before_call("openai", {"messages": MESSAGES})
    assert call.decision is None
    assert routing.on_error(call, TimeoutError()) is None
    assert routing.span_attributes(call) == {}
    assert call.attach() is None
    routing.reset_routing()


def test_an_unreadable_catalog_routes_with_the_bundled_one_and_says_so_once(
    spans: InMemorySpanExporter,
    fake: FakeProviderThread,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # it used to turn routing off, saying so only as a configuration error
    monkeypatch.setenv("AGENTMESH_ROUTER_CATALOG_PATH", str(tmp_path / "missing.json"))
    monkeypatch.setenv("AGENTMESH_ROUTING_MODE", "shadow")
    reset_catalog()
    _pricing.forget()
    routing.reset_routing()
    try:
        with capture_logs() as logs:
            reply = _chat(fake)
            _chat(fake)
    finally:
        monkeypatch.delenv("AGENTMESH_ROUTER_CATALOG_PATH")
        reset_catalog()
        _pricing.forget()
    assert reply.choices[0].message.content == "ok"
    assert routing.routing_config().mode == "shadow"
    assert len(routing.decision_log().decisions()) == 2  # routing carries on
    (error,) = [e for e in logs if "catalog override unusable" in e["event"]]  # once
    assert "AGENTMESH_ROUTER_CATALOG_PATH" in error["reason"]
    assert error["log_level"] == "error"
    routing.reset_routing()


def test_settings_that_turn_routing_off_say_so(
    hooked: OpenAIInstrumentor, fake: FakeProviderThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTMESH_ROUTING_MODE", "enforce")
    monkeypatch.setenv("AGENTMESH_ROUTING_PINS", '{"taskclass": {"triage": "gpt-4o-mini"}}')
    routing.reset_routing()
    with capture_logs() as logs:
        reply = _chat(fake)
    assert reply.choices[0].message.content == "ok"
    assert routing.routing_config().mode == "off"
    (error,) = [e for e in logs if e["event"] == "routing is off: its settings cannot be used"]
    assert "taskclass" in error["error"]
    routing.reset_routing()


@pytest.fixture
def hooked(openai_instrumented: OpenAIInstrumentor) -> Iterator[OpenAIInstrumentor]:
    from agentmesh.instrumentation.openai import _hooks

    # Instrumenting installs the provider hooks: routing needs nothing more than the mode.
    assert _hooks.current() is not None
    yield openai_instrumented
    routing.uninstall_provider_hooks()
    routing.reset_routing()


def test_the_openai_instrumentor_routes_through_the_provider_hooks(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    _configure("enforce")
    with run_scope("run-1"):
        reply = _chat(fake)
    assert reply.choices[0].message.content == "ok"
    assert [r.model for r in fake.requests] == ["gpt-4o", "gpt-4o-mini"]
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    (decision,) = routing.decision_log().decisions()
    assert attrs[semconv.AGENTMESH_ROUTE_DECISION_ID] == decision.decision_id
    assert attrs[semconv.AGENTMESH_ROUTE_CANDIDATES] == ("gpt-4o", "gpt-4o-mini", "gpt-4.1")
    assert attrs[semconv.AGENTMESH_ROUTE_MODE] == "enforce"
    fallbacks = [e for e in span.events if e.name == semconv.EVENT_FALLBACK]
    assert [dict(e.attributes or {})[semconv.AGENTMESH_ROUTE_FALLBACK_TO] for e in fallbacks] == [
        "gpt-4o-mini"
    ]
    # the span names the model that answered, as GenAI backends count it
    assert span.name == "chat gpt-4o-mini"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[semconv.AGENTMESH_ROUTE_REQUESTED_MODEL] == "gpt-4o"  # the app's
    for request in fake.requests:
        assert (
            f"{semconv.AGENTMESH_ROUTE_DECISION_ID}={decision.decision_id}"
            in (request.headers["baggage"])
        )


def test_a_span_names_the_model_enforce_sent(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    _configure("enforce", policy=PinnedPolicy(Pins(task_classes={"triage": "gpt-4o-mini"})))
    with task_class("triage"):
        _chat(fake)
    _chat(fake)
    sent, kept = exporter.get_finished_spans()
    assert (sent.name, kept.name) == ("chat gpt-4o-mini", "chat gpt-4o")
    assert dict(sent.attributes or {})[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert dict(kept.attributes or {})[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"


def test_the_provider_hooks_never_route_embeddings(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    _configure("enforce", policy=PinnedPolicy(Pins(models={"text-embedding-3-small": "x"})))
    with pytest.raises(openai.NotFoundError):  # the bundled fake serves no embeddings
        _client(fake).embeddings.create(model="text-embedding-3-small", input="hi")
    assert routing.decision_log().decisions() == []
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "text-embedding-3-small"
    assert semconv.AGENTMESH_ROUTE_DECISION_ID not in attrs


def _anthropic_reply(client: Any, how: str) -> Any:
    """One message through ``create``, or the ``stream()`` helper (sync or async)."""
    request: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Hello?"}],
    }
    if how == "create":
        return client.messages.create(**request)
    if how == "stream":
        with client.messages.stream(**request) as stream:
            return stream.get_final_message()
    import anthropic

    async def streamed() -> Any:
        async_client = anthropic.AsyncAnthropic(
            base_url=str(client.base_url), api_key="test", max_retries=0
        )
        async with async_client.messages.stream(**request) as stream:
            return await stream.get_final_message()

    return asyncio.run(streamed())


@pytest.mark.parametrize("how", ["create", "stream", "async stream"])
def test_the_anthropic_instrumentor_routes_through_the_provider_hooks(
    exporter: InMemorySpanExporter,
    tracer_provider: TracerProvider,
    fake: FakeProviderThread,
    how: str,
) -> None:
    # the stream() helper was neither routed nor fell back (it does not go through create)
    import anthropic

    from agentmesh.instrumentation.anthropic import AnthropicInstrumentor

    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    assert routing.install_provider_hooks()
    fake.set_script("claude-haiku-4-5", ModelScript(error=ErrorScript(status=529)))
    chains = {"claude-haiku-4-5": ["gpt-4o", "claude-opus-4-1"]}
    _configure("enforce", policy=PassThroughPolicy(FallbackChains(chains)))
    try:
        client = anthropic.Anthropic(
            base_url=fake.anthropic_base_url, api_key="test", max_retries=0
        )
        reply = _anthropic_reply(client, how)
    finally:
        routing.uninstall_provider_hooks()
        instrumentor.uninstrument()
        routing.reset_routing()
    assert reply.content[0].type == "text"
    assert [r.model for r in fake.requests] == ["claude-haiku-4-5", "claude-opus-4-1"]
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs[semconv.AGENTMESH_ROUTE_CANDIDATES] == ("claude-haiku-4-5", "claude-opus-4-1")
    (event,) = [e for e in span.events if e.name == semconv.EVENT_FALLBACK]
    # the SDK's class for a 529 (anthropic before 0.4x had none of its own)
    overloaded = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)
    assert dict(event.attributes or {})[semconv.ERROR_TYPE] == overloaded.__name__
    decision_id = attrs[semconv.AGENTMESH_ROUTE_DECISION_ID]
    assert fake.requests[0].headers["baggage"] == (
        f"{semconv.AGENTMESH_ROUTE_DECISION_ID}={decision_id}"
    )


def test_an_idle_hook_skips_its_work_until_routing_is_configured(
    hooked: OpenAIInstrumentor, exporter: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    _configure("off")
    for _ in range(2):  # the first call configures the control and route-table slots
        with pytest.raises(openai.InternalServerError):  # off: no fallback, nothing recorded
            _chat(fake)
    assert routing._idle_at == changes()  # pyright: ignore[reportPrivateUsage]

    _configure("enforce")  # a new configuration wakes the hook up
    assert routing._idle_at != changes()  # pyright: ignore[reportPrivateUsage]
    assert _chat(fake).choices[0].message.content == "ok"
    assert [r.model for r in fake.requests] == ["gpt-4o"] * 3 + ["gpt-4o-mini"]
    assert len(routing.decision_log().decisions()) == 1


@pytest.fixture
def follower() -> Iterator[RouteTableClient]:
    # A collector that never answers (port 9): tables are handed to the client by the test.
    client = RouteTableClient("http://127.0.0.1:9", wait_s=0.1)
    configure_route_table(client=client)
    yield client
    shutdown_route_table()


def test_a_followed_route_table_wakes_the_hook_when_it_sets_a_mode(
    hooked: OpenAIInstrumentor, fake: FakeProviderThread, follower: RouteTableClient
) -> None:
    # the app leaves its mode to the table (off by default)
    routing.configure_routing(policy=PassThroughPolicy(FallbackChains(CHAINS)), log=DecisionLog())
    for _ in range(2):  # the first call configures the control slot
        _chat(fake)
    assert routing._idle_at == changes()  # pyright: ignore[reportPrivateUsage] - no mode: idle

    follower._hold(RouteTable(version=1, default_mode="shadow"))  # pyright: ignore[reportPrivateUsage]
    assert routing._idle_at != changes()  # pyright: ignore[reportPrivateUsage] - a new table
    _chat(fake)
    assert len(routing.decision_log().decisions()) == 1  # the table's shadow mode applies
    _chat(fake)
    assert routing._idle_at != changes()  # pyright: ignore[reportPrivateUsage] - stays awake
    assert len(routing.decision_log().decisions()) == 2
    # the table's mode decided these calls, though the pass-through policy reads no table:
    # the decisions name its version (they said 0, the bundled defaults)
    assert [d.table_version for d in routing.decision_log().decisions()] == [1, 1]


def test_an_apps_own_mode_keeps_precedence_over_the_fleet_wide_mode(
    hooked: OpenAIInstrumentor, fake: FakeProviderThread, follower: RouteTableClient
) -> None:
    table = RouteTable(version=2, default_mode="shadow", modes={"triage": "enforce"})
    follower._hold(table)  # pyright: ignore[reportPrivateUsage]
    _configure("off")  # an explicit off is a hard opt-out: the table never turns it on
    with task_class("triage"):
        _chat(fake)
    _chat(fake)
    assert routing.decision_log().decisions() == []

    _configure("enforce")  # the table's "*" does not downgrade an app's explicit enforce...
    _chat(fake)
    assert [d.mode for d in routing.decision_log().decisions()] == ["enforce"]
    _configure("shadow")
    with capture_logs() as logs, task_class("triage"):  # ...but a task class it names wins
        _chat(fake)
        _chat(fake)
    _chat(fake)
    modes = [(d.task_class, d.mode) for d in routing.decision_log().decisions()]
    assert modes == [("triage", "enforce"), ("triage", "enforce"), (None, "shadow")]
    noted = [e for e in logs if e["event"] == "route table sets the routing mode of a task class"]
    assert [(e["task_class"], e["mode"], e["app_mode"]) for e in noted] == [
        ("triage", "enforce", "shadow")
    ]
