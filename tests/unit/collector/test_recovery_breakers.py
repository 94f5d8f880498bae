"""Circuit breakers: open → half-open → closed, or re-opened with a doubled cool-down (capped).

The state machine as pure functions, then driven end to end by the engine from detections and
from the model calls the pipeline feeds it (in-memory control document, hand-moved clock).
"""

from collections.abc import AsyncIterator

import pytest

from agentmesh.collector import Detection, SpanRecord
from agentmesh.collector.recovery import (
    Breaker,
    MemoryControlState,
    RecoveryEngine,
    RecoveryPolicy,
    closes,
    reopened,
    tripped,
)
from agentmesh.collector.testing import ManualClock, SpanFactory, cycle_of, failed

T0 = 1_800_000_000.0
Engine = tuple[RecoveryEngine, ManualClock[float]]
"""The engine under test and the clock it reads."""
SECOND_NS = 1_000_000_000


def test_trip_opens_for_the_first_cooldown_and_leaves_an_open_breaker_alone() -> None:
    first = tripped(None, now=T0, cooldown=30, cap=100, reason="r", detection_id="d1", provider="p")
    assert first == Breaker("open", T0 + 30, "r", "d1", "p", 30)
    assert tripped(first, now=T0 + 29, cooldown=30, cap=100, reason="r2", detection_id="d2") is None


def test_trip_of_a_half_open_breaker_doubles_up_to_the_cap() -> None:
    half = Breaker("half_open", T0, "r", "d1", "openai", 30)
    again = tripped(half, now=T0 + 1, cooldown=30, cap=100, reason="r2", detection_id="d2")
    assert again == Breaker("open", T0 + 61, "r2", "d2", "openai", 60)
    capped = tripped(again, now=T0 + 61, cooldown=30, cap=100, reason="r3", detection_id="d3")
    assert capped is not None
    assert (capped.cooldown_seconds, capped.until) == (100, T0 + 161)


def test_reopen_doubles_each_time_and_stops_at_the_cap() -> None:
    breaker: Breaker | None = Breaker("open", T0, "r", "d", None, 10)
    cooldowns: list[float] = []
    now = T0
    for _ in range(6):
        assert breaker is not None
        now = breaker.until + 1
        breaker = reopened(breaker, ended_at=now, now=now, cap=100, reason="probe failed")
        assert breaker is not None
        cooldowns.append(breaker.cooldown_seconds)
        assert breaker.until == now + breaker.cooldown_seconds
        assert breaker.state == "open"
        assert breaker.detection_id == "d"
    assert cooldowns == [20, 40, 80, 100, 100, 100]


def test_calls_that_ended_while_open_change_nothing() -> None:
    breaker = Breaker("open", T0 + 30, "r", "d", None, 30)
    assert not closes(breaker, ended_at=T0 + 29.9)
    assert reopened(breaker, ended_at=T0 + 29.9, now=T0 + 31, cap=600, reason="x") is None
    assert closes(breaker, ended_at=T0 + 30)
    assert closes(Breaker("half_open", T0 + 30, "r", "d"), ended_at=T0)
    assert not closes(None, ended_at=T0)
    assert reopened(None, ended_at=T0, now=T0, cap=600, reason="x") is None


# --- through the engine ----------------------------------------------------------------------


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    clock = ManualClock(T0)
    policy = RecoveryPolicy.parse(breaker_cooldown_seconds=30, breaker_max_cooldown_seconds=100)
    recovery = RecoveryEngine(
        MemoryControlState(), policy, clock=clock, expire_interval_seconds=3600
    )
    async with recovery:
        yield recovery, clock


def _outage(model: str | None = "gpt-4o", detection_type: str = "provider_outage") -> Detection:
    details = {} if model is None else {"model": model, "provider": "openai"}
    return Detection(
        f"det-{detection_type}",
        detection_type,
        "critical",
        "a" * 32,
        "run-1",
        None,
        (),
        "errors on gpt-4o across 5 runs",
        int(T0 * SECOND_NS),
        details,
    )


def _calls(
    model: str, ended_at: float, *, error: bool = False, status: int | None = None
) -> list[SpanRecord]:
    f = SpanFactory()
    root = f.workflow("w", run_id="probe")
    agent = f.agent("writer", parent=root)
    start = int((ended_at - 0.5) * SECOND_NS)
    chat = f.chat(parent=agent, model=model, start_ns=start)
    chat = chat if not error else failed(chat, "APIError", http_status=status)
    return [root, agent, chat]


async def _feed(engine: RecoveryEngine, spans: list[SpanRecord]) -> None:
    engine.observer.observe(cycle_of(spans))
    await engine.drain()


async def test_detection_opens_then_probe_success_closes(
    engine: Engine,
) -> None:
    recovery, clock = engine
    (opened,) = await recovery.apply(_outage())
    assert opened.kind == "open_breaker"
    breaker = recovery.control.current.breakers["gpt-4o"]
    assert breaker == Breaker(
        "open",
        T0 + 30,
        "provider_outage: errors on gpt-4o across 5 runs",
        "det-provider_outage",
        "openai",
        30,
    )
    # the same outage reported again (another detector, another collector) changes nothing
    assert await recovery.apply(_outage(detection_type="rate_limit_storm")) == []
    # a success that ended while open is an in-flight call from before: ignored
    await _feed(recovery, _calls("gpt-4o", T0 + 10))
    assert "gpt-4o" in recovery.control.current.breakers
    # time passes: the engine half-opens it
    clock.now = T0 + 31
    (half,) = await recovery.expire()
    assert (half.kind, half.model) == ("half_open_breaker", "gpt-4o")
    assert recovery.control.current.breakers["gpt-4o"].state == "half_open"
    # a call to another model says nothing about this one
    await _feed(recovery, _calls("claude-3-5-sonnet", T0 + 31))
    assert "gpt-4o" in recovery.control.current.breakers
    await _feed(recovery, _calls("gpt-4o", T0 + 31))
    assert recovery.control.current.breakers == {}
    assert [a.kind for a in recovery.actions] == [
        "open_breaker",
        "half_open_breaker",
        "close_breaker",
    ]
    assert recovery.actions[-1].detection_id == "det-provider_outage"


async def test_probe_failures_reopen_doubled_and_capped(
    engine: Engine,
) -> None:
    recovery, clock = engine
    await recovery.apply(_outage())
    untils: list[float] = []
    for _ in range(4):
        until = recovery.control.current.breakers["gpt-4o"].until
        clock.now = until + 1
        await _feed(recovery, _calls("gpt-4o", until + 0.5, error=True, status=503))
        breaker = recovery.control.current.breakers["gpt-4o"]
        assert breaker.state == "open"
        untils.append(breaker.until - clock.now)
        # a second failure of the same probing wave does not double again
        await _feed(recovery, _calls("gpt-4o", until + 0.7, error=True, status=429))
        assert recovery.control.current.breakers["gpt-4o"] == breaker
    assert untils == [60, 100, 100, 100]
    assert [a.kind for a in recovery.actions].count("reopen_breaker") == 4


async def test_a_bad_request_is_not_a_model_failure(engine: Engine) -> None:
    recovery, clock = engine
    await recovery.apply(_outage())
    clock.now = T0 + 40
    await _feed(recovery, _calls("gpt-4o", T0 + 35, error=True, status=400))
    assert recovery.control.current.breakers["gpt-4o"].until == T0 + 30  # untouched
    await _feed(recovery, _calls("gpt-4o", T0 + 36, error=True))  # no status: connection error
    assert recovery.control.current.breakers["gpt-4o"].until == T0 + 40 + 60


async def test_a_detection_on_a_half_open_breaker_reopens_it_doubled(
    engine: Engine,
) -> None:
    recovery, clock = engine
    await recovery.apply(_outage())
    clock.now = T0 + 30
    (action,) = await recovery.apply(_outage(detection_type="rate_limit_storm"))
    assert action.kind == "reopen_breaker"
    assert action.until == T0 + 30 + 60


async def test_a_detection_without_a_model_opens_nothing(
    engine: Engine,
) -> None:
    recovery, _ = engine
    assert await recovery.apply(_outage(model=None)) == []
    assert recovery.control.current.version == 0


async def test_an_unprobed_half_open_breaker_leaves_after_the_longest_cooldown(
    engine: Engine,
) -> None:
    recovery, clock = engine
    await recovery.apply(_outage())
    clock.now = T0 + 30 + 99
    await recovery.expire()
    assert recovery.control.current.breakers["gpt-4o"].state == "half_open"
    clock.now = T0 + 30 + 100
    (gone,) = await recovery.expire()
    assert (gone.kind, gone.model) == ("expire_breaker", "gpt-4o")
    assert recovery.control.current.breakers == {}
