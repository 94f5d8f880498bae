"""Local cooldowns: the table on its own, then routing with the real OpenAI SDK and fake provider.

The table tests drive a manual clock. The routing tests instrument the real ``openai`` SDK
(the provider hooks route every call), send real HTTP to the bundled fake provider, and count
what reached it from its request log: after the first failure, no request goes to the failing
model until its cooldown has passed, then exactly one probe does.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from agentmesh.core import semconv
from agentmesh.core.errors import ConfigError
from agentmesh.instrumentation import routing
from agentmesh.instrumentation._cooldowns import CooldownTable, retry_after_seconds
from agentmesh.instrumentation.baggage import task_class
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.settings import InstrumentationSettings
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript
from agentmesh.router import (
    DecisionLog,
    FallbackChains,
    PassThroughPolicy,
    RouteDecision,
    RouteMode,
    RouteRequest,
    RouteTable,
    UtilityPolicy,
)
from agentmesh.router.learned.predictor import Predictor
from agentmesh.router.learned.quality import QualityModel

CHAINS = {"gpt-4o": ["gpt-4o-mini", "gpt-4.1"]}
REASON = semconv.AGENTMESH_ROUTE_REASON


class Clock:
    """A manual monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = httpx.Headers(headers)


class _ProviderError(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("provider error")
        self.response = _Response(headers)


# --- retry-after ----------------------------------------------------------------------------


def test_retry_after_is_read_from_an_openai_sdk_error() -> None:
    response = httpx.Response(
        429,
        headers={"Retry-After": "2"},
        request=httpx.Request("POST", "http://fake/v1/chat/completions"),
    )
    exc = openai.RateLimitError("slow down", response=response, body=None)
    assert retry_after_seconds(exc) == 2.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # milliseconds win
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),  # a date, 10 s after now
        ({"retry-after": "not a date"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds(_ProviderError(headers), now=now) == expected


def test_retry_after_as_an_http_date_against_the_real_clock() -> None:
    later = datetime.now(UTC).timestamp() + 120
    header = format_datetime(datetime.fromtimestamp(later, UTC), usegmt=True)
    seconds = retry_after_seconds(_ProviderError({"retry-after": header}))
    assert seconds is not None
    assert 100 < seconds <= 120


def test_errors_without_headers_have_no_retry_after() -> None:
    assert retry_after_seconds(TimeoutError()) is None
    refused = openai.APIConnectionError(request=httpx.Request("GET", "http://x"))
    assert retry_after_seconds(refused) is None


# --- the table ------------------------------------------------------------------------------


def test_a_failure_cools_the_model_down_for_retry_after_within_bounds() -> None:
    clock = Clock()
    table = CooldownTable(30.0, min_s=1.0, max_s=300.0, clock=clock)
    assert table.record_failure("a", retry_after_s=0.01) == 1.0  # raised to the minimum
    assert table.record_failure("b", retry_after_s=10_000) == 300.0  # capped
    assert table.record_failure("c", retry_after_s=-5) == 1.0  # an HTTP date in the past
    assert table.record_failure("d") == 30.0  # no retry-after: the default
    assert table.avoid() == {"a", "b", "c", "d"}
    clock.now += 1.0
    assert table.avoid() == {"b", "d"}
    assert not table.admit("b")
    assert table.admit("unknown")


def test_half_open_lets_exactly_one_probe_through_until_its_outcome() -> None:
    clock = Clock()
    table = CooldownTable(30.0, probe_timeout_s=60.0, clock=clock)
    table.record_failure("m", retry_after_s=2.0)
    clock.now += 2.0
    assert table.avoid() == frozenset()  # half-open, no probe yet: a call may choose it
    assert table.admit("m")  # this call probes
    assert table.avoid() == {"m"}  # the others keep avoiding it
    assert not table.admit("m")
    state = table.state("m")
    assert state is not None
    assert (state.half_open, state.probing, state.remaining_s) == (True, True, 0.0)
    clock.now += 60.0  # the probe never reported: its lease lapses, another may go
    assert table.admit("m")
    assert table.record_success("m")
    assert table.state("m") is None
    assert table.avoid() == frozenset()
    assert not table.record_success("m")


def test_a_failed_probe_doubles_the_cooldown_up_to_the_cap() -> None:
    clock = Clock()
    table = CooldownTable(30.0, max_s=10.0, clock=clock)
    assert table.record_failure("m", retry_after_s=3.0) == 3.0
    lengths: list[float | None] = []
    for _ in range(4):
        clock.now += 20.0  # past any cooldown: half-open
        assert table.admit("m")
        lengths.append(table.record_failure("m"))
    assert lengths == [6.0, 10.0, 10.0, 10.0]
    state = table.state("m")
    assert state is not None
    assert (state.failures, state.probing, state.half_open) == (5, False, False)


def test_a_late_failure_while_cooling_extends_without_doubling() -> None:
    clock = Clock()
    table = CooldownTable(30.0, clock=clock)
    table.record_failure("m", retry_after_s=4.0)
    clock.now += 3.0
    assert table.record_failure("m") == 4.0  # a call sent before the cooldown began
    state = table.state("m")
    assert state is not None
    assert state.remaining_s == pytest.approx(4.0)
    assert state.failures == 2


def test_zero_disables_the_table() -> None:
    table = CooldownTable(0.0)
    assert not table.enabled
    assert table.record_failure("m", retry_after_s=5.0) is None
    assert table.avoid() == frozenset()
    assert table.admit("m")
    assert len(table) == 0


def test_the_table_is_bounded() -> None:
    clock = Clock()
    table = CooldownTable(30.0, capacity=2, clock=clock)
    table.record_failure("long", retry_after_s=100.0)
    table.record_failure("short", retry_after_s=5.0)
    table.record_failure("new", retry_after_s=50.0)  # the one ending soonest goes
    assert table.avoid() == {"long", "new"}
    assert len(table) == 2


def test_invalid_bounds_are_refused() -> None:
    with pytest.raises(ConfigError):
        CooldownTable(30.0, min_s=10.0, max_s=5.0)
    with pytest.raises(ConfigError):
        CooldownTable(-1.0)


def test_concurrent_callers_get_one_probe_and_consistent_counts() -> None:
    clock = Clock()
    table = CooldownTable(30.0, clock=clock)
    start = threading.Barrier(16)
    admitted: list[bool] = []
    lock = threading.Lock()

    def fail_many() -> None:
        start.wait()
        for i in range(200):
            table.record_failure(f"model-{i % 10}")
            table.avoid()

    threads = [threading.Thread(target=fail_many) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(table) == 10
    assert sum(s.failures for i in range(10) if (s := table.state(f"model-{i}"))) == 16 * 200

    clock.now += 31.0  # every model half-open: 16 callers race for the probe of one
    start = threading.Barrier(16)

    def probe() -> None:
        start.wait()
        ok = table.admit("model-3")
        with lock:
            admitted.append(ok)

    threads = [threading.Thread(target=probe) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 1


def test_the_settings_configure_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    assert InstrumentationSettings.load().routing_cooldown_s == 30.0
    monkeypatch.setenv("AGENTMESH_ROUTING_COOLDOWN_S", "0")
    config = routing.configure_routing(mode="enforce", log=DecisionLog())
    try:
        assert not config.cooldowns.enabled
    finally:
        routing.reset_routing()
    monkeypatch.setenv("AGENTMESH_ROUTING_COOLDOWN_S", "5")
    monkeypatch.setenv("AGENTMESH_ROUTING_COOLDOWN_MAX_S", "8")
    config = routing.configure_routing(mode="enforce", log=DecisionLog())
    try:
        assert config.cooldowns.record_failure("m") == 5.0
        assert config.cooldowns.record_failure("n", retry_after_s=60) == 8.0
    finally:
        routing.reset_routing()


# --- routing with the real SDK ----------------------------------------------------------------

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider(shutdown_on_exit=False)
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=_PROVIDER)  # installs the routing hooks
    yield _EXPORTER
    routing.uninstall_provider_hooks()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    routing.reset_routing()
    _EXPORTER.clear()


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(default_script=ModelScript(content="ok")) as provider:
        yield provider


def _configure(mode: RouteMode, clock: Clock | None = None) -> CooldownTable:
    table = CooldownTable(30.0, clock=clock or Clock())
    routing.configure_routing(
        mode=mode,
        policy=PassThroughPolicy(FallbackChains(CHAINS)),
        max_fallbacks=2,
        log=DecisionLog(),
        cooldowns=table,
    )
    return table


def _chat(fake: FakeProviderThread) -> str:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello?"}]
    )
    return reply.model


def _sent(fake: FakeProviderThread) -> list[str | None]:
    return [r.model for r in fake.requests if r.route == "/v1/chat/completions"]


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def test_after_a_429_the_next_calls_go_straight_to_the_fallback(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=429, retry_after=2)))
    table = _configure("enforce")
    answered = [_chat(fake) for _ in range(6)]
    assert all(model.startswith("gpt-4o-mini") for model in answered)
    # One failed attempt on gpt-4o, then none at all: every call went straight to the fallback.
    assert _sent(fake) == ["gpt-4o", *["gpt-4o-mini"] * 6]
    state = table.state("gpt-4o")
    assert state is not None
    assert state.cooldown_s == 2.0  # the provider's retry-after
    first, *rest = spans.get_finished_spans()
    assert [e.name for e in first.events].count(semconv.EVENT_FALLBACK) == 1
    assert _attrs(first)[semconv.AGENTMESH_ROUTE_REASON] == "requested model"
    for span in rest:
        attrs = _attrs(span)
        assert not span.events
        assert attrs[semconv.AGENTMESH_ROUTE_CHOSEN] == "gpt-4o-mini"
        assert attrs[semconv.AGENTMESH_ROUTE_REASON] == "cooldown for gpt-4o"
        assert attrs[semconv.AGENTMESH_ROUTE_CANDIDATES] == ("gpt-4o-mini", "gpt-4.1", "gpt-4o")
    logged = routing.decision_log().decisions()
    assert [d.avoided for d in logged] == [(), *[("gpt-4o",)] * 5]


def test_after_the_cooldown_one_probe_goes_and_its_success_ends_the_cooldown(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503, retry_after=2)))
    clock = Clock()
    table = _configure("enforce", clock)
    _chat(fake)
    _chat(fake)
    assert _sent(fake) == ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]
    fake.set_script("gpt-4o", None)  # the provider is back
    clock.now += 2.5  # half-open
    assert _chat(fake).startswith("gpt-4o")  # the probe
    state = table.state("gpt-4o")
    assert state is not None
    assert state.probing  # its span has ended; the next decision reads the outcome
    _chat(fake)
    assert table.state("gpt-4o") is None
    assert _sent(fake)[3:] == ["gpt-4o", "gpt-4o"]
    assert [e.name for s in spans.get_finished_spans() for e in s.events].count(
        semconv.EVENT_FALLBACK
    ) == 1


def test_a_failed_probe_doubles_the_cooldown_and_costs_one_request(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503, retry_after=2)))
    clock = Clock()
    table = _configure("enforce", clock)
    _chat(fake)
    clock.now += 2.5
    _chat(fake)  # the probe fails and falls back
    _chat(fake)
    _chat(fake)
    assert _sent(fake) == ["gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini", *["gpt-4o-mini"] * 2]
    state = table.state("gpt-4o")
    assert state is not None
    assert (state.cooldown_s, state.failures) == (4.0, 2)
    assert len(spans.get_finished_spans()) == 4


def test_shadow_mode_records_the_cooldown_and_changes_nothing(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    table = _configure("shadow")
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            _chat(fake)
    assert _sent(fake) == ["gpt-4o"] * 3  # the calls as the app made them
    state = table.state("gpt-4o")
    assert state is not None
    assert (state.cooldown_s, state.failures) == (30.0, 3)
    first, *rest = [_attrs(s) for s in spans.get_finished_spans()]
    assert first[semconv.AGENTMESH_ROUTE_CHOSEN] == "gpt-4o"
    for attrs in rest:  # what enforce mode would have done
        assert attrs[semconv.AGENTMESH_ROUTE_MODE] == "shadow"
        assert attrs[semconv.AGENTMESH_ROUTE_CHOSEN] == "gpt-4o-mini"
        assert attrs[semconv.AGENTMESH_ROUTE_REASON] == "cooldown for gpt-4o"


def test_a_client_error_starts_no_cooldown(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=400)))
    table = _configure("enforce")
    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            _chat(fake)
    assert _sent(fake) == ["gpt-4o", "gpt-4o"]
    assert len(table) == 0
    assert len(spans.get_finished_spans()) == 2


def test_a_broken_cooldown_table_lets_calls_through(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    class Broken(CooldownTable):
        def avoid(self) -> frozenset[str]:
            raise RuntimeError("cooldown bug")

    routing.configure_routing(
        mode="enforce",
        policy=PassThroughPolicy(FallbackChains(CHAINS)),
        log=DecisionLog(),
        cooldowns=Broken(),
    )
    with capture_logs() as logs:
        assert _chat(fake).startswith("gpt-4o")
    assert _sent(fake) == ["gpt-4o"]
    assert [e for e in logs if e.get("where") == "routing.before_call"]
    assert len(spans.get_finished_spans()) == 1


def test_a_failing_cooldown_table_does_not_cost_the_fallback(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    class Broken(CooldownTable):
        def record_failure(self, model: str, retry_after_s: float | None = None) -> float | None:
            raise RuntimeError("cooldown bug")

        def admit(self, model: str) -> bool:
            raise RuntimeError("cooldown bug")

    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    routing.configure_routing(
        mode="enforce",
        policy=PassThroughPolicy(FallbackChains(CHAINS)),
        log=DecisionLog(),
        cooldowns=Broken(),
    )
    with capture_logs() as logs:
        assert _chat(fake).startswith("gpt-4o-mini")
    assert _sent(fake) == ["gpt-4o", "gpt-4o-mini"]
    where = {e.get("where") for e in logs}
    assert {"routing.cooldown", "routing.cooldown_admit"} <= where
    assert len(spans.get_finished_spans()) == 1


def _utility_policy() -> UtilityPolicy:
    quality = QualityModel()
    for _ in range(20):
        quality.update("chat", 0, "gpt-4o", 0.95, cost_usd=0.004, latency_s=1.0)
        quality.update("chat", 0, "gpt-4o-mini", 0.90, cost_usd=0.0003, latency_s=1.0)
    table = RouteTable(version=3, predictor=Predictor(quality).to_dict())
    return UtilityPolicy(
        lambda: table,
        candidates={"*": ("gpt-4o", "gpt-4o-mini", "gpt-4.1")},
        fallbacks=FallbackChains(CHAINS),
        exploration=0.0,
    )


def test_a_utility_decision_names_the_model_it_passed_over_for_a_cooldown(
    spans: InMemorySpanExporter, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=429, retry_after=2)))
    table = CooldownTable(30.0, clock=Clock())
    routing.configure_routing(
        mode="enforce", policy=_utility_policy(), log=DecisionLog(), cooldowns=table
    )
    with task_class("chat"):
        answered = [_chat(fake) for _ in range(3)]
    assert all(model.startswith("gpt-4o-mini") for model in answered)
    assert _sent(fake) == ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini"]
    first, *rest = [_attrs(s) for s in spans.get_finished_spans()]
    assert re.fullmatch(r"best utility 0\.9\d\d \([^;]*\)", str(first[REASON]))
    for attrs in rest:  # gpt-4o, the best, cools down: the reason says so, as pass-through's
        assert attrs[semconv.AGENTMESH_ROUTE_POLICY] == "utility"
        assert attrs[semconv.AGENTMESH_ROUTE_CHOSEN] == "gpt-4o-mini"
        assert re.fullmatch(r"best utility [^;]*; cooldown for gpt-4o", str(attrs[REASON]))


def test_cooling_models_are_told_apart_from_open_circuits_in_any_policy_reason() -> None:
    class Skipping:
        """A policy naming the models it left out, as the utility policy does."""

        name = "custom"

        def decide(self, request: RouteRequest) -> RouteDecision:
            reason = "my pick; circuit open for gpt-4o, gpt-4.1, o3; 2 more skipped"
            return RouteDecision.new(
                request, self.name, ("gpt-4o-mini",), (1.0,), "gpt-4o-mini", reason
            )

    table = CooldownTable(30.0, clock=Clock())
    table.record_failure("gpt-4o")
    table.record_failure("o3")
    routing.configure_routing(mode="shadow", policy=Skipping(), log=DecisionLog(), cooldowns=table)
    try:
        decision = routing.before_call("openai", {"model": "gpt-4o", "messages": []}).decision
    finally:
        routing.reset_routing()
    assert decision is not None
    assert decision.reason == (
        "my pick; cooldown for gpt-4o, o3; circuit open for gpt-4.1; 2 more skipped"
    )
