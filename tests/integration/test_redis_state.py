"""One behaviour, two backends: the hot state contract on real Redis and in memory.

Then what only Redis has (key layout, times to live, a second collector on the same server,
a dead server in plain words) and the fail-open wrapper the pipeline uses.
"""

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from agentmesh.collector import (
    Detection,
    GraphBuilder,
    MemoryStore,
    PingPongRule,
    Pipeline,
    RunGraph,
)
from agentmesh.collector.hot_state import (
    FailOpenHotState,
    HotState,
    MemoryHotState,
    RedisHotState,
    RunState,
    detection_from_json,
    detection_to_json,
    make_hot_state,
)
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.testing import ManualClock, SpanFactory, failed, with_attributes
from agentmesh.core import StoreError, semconv

FINISHED_TTL = 60
IDLE_TTL = 600
T0 = 1_800_000_000_000_000_000
SECOND = 1_000_000_000


@dataclass
class Harness:
    hot: HotState
    clock: ManualClock[int]
    expire_finished: Callable[[], Awaitable[None]]  # what the finished-run TTL does


async def _scan(client: aioredis.Redis, pattern: str) -> list[str]:
    return [key async for key in client.scan_iter(match=pattern)]


@pytest.fixture
def redis_url(redis_address: tuple[str, int]) -> str:
    host, port = redis_address
    return f"redis://{host}:{port}/0"


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"agentmesh-test-{secrets.token_hex(4)}:"


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Harness]:
    clock = ManualClock(T0)
    if request.param == "memory":
        memory = MemoryHotState(
            finished_ttl_seconds=FINISHED_TTL, idle_ttl_seconds=IDLE_TTL, clock_ns=clock
        )

        async def advance() -> None:
            clock.now += (FINISHED_TTL + 1) * SECOND

        yield Harness(await memory.open(), clock, advance)
        await memory.close()
        return
    url: str = request.getfixturevalue("redis_url")
    raw = aioredis.Redis.from_url(url, decode_responses=True)
    hot = RedisHotState(
        url,
        prefix=prefix,
        finished_ttl_seconds=FINISHED_TTL,
        idle_ttl_seconds=IDLE_TTL,
        clock_ns=clock,
    )

    async def expire_finished() -> None:
        for key in await _scan(raw, f"{prefix}run:*"):
            if 0 < await raw.ttl(key) <= FINISHED_TTL:
                await raw.delete(key)

    yield Harness(await hot.open(), clock, expire_finished)
    await hot.close()
    keys = await _scan(raw, f"{prefix}*")
    if keys:
        await raw.delete(*keys)
    await raw.aclose()


def _graph(
    f: SpanFactory, *, complete: bool = True, loops: int = 1, paused: bool = False
) -> RunGraph:
    root = f.workflow("research", run_id=f"run-{f.trace_id[:6]}")
    spans = [root]
    for _ in range(loops):
        s = f.agent("supervisor", parent=root)
        r = f.agent("researcher", parent=root, handoff_from="supervisor")
        spans += [s, r, f.chat(parent=r, input_tokens=10, output_tokens=5, cost_usd=0.1)]
    if paused:  # its last step stopped to wait for input
        spans[-1] = with_attributes(spans[-1], {semconv.AGENTMESH_RUN_PAUSED: True})
    if not complete:
        spans = spans[1:]  # without its root span the run is still running
    builder = GraphBuilder()
    builder.add(spans)
    graph = builder.get(f.trace_id)
    assert graph is not None
    return graph


def _detection(n: int = 1, **changes: object) -> Detection:
    detection = Detection(
        id=f"det-{n}",
        type="handoff_loop",
        severity="error",
        trace_id="ab" * 16,
        run_id="run-1",
        agent="supervisor",
        span_ids=("0000000000000001", "0000000000000002"),
        explanation="agent cycle supervisor → researcher repeated 4 times",
        detected_at_ns=T0 + n,
        details={"cycle": ["supervisor", "researcher"], "repetitions": 4, "ratio": 0.5},
    )
    return replace(detection, **changes)  # type: ignore[arg-type]


async def _next(detections: AsyncIterator[Detection]) -> Detection:
    async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
        return await anext(detections)


# --- the contract -------------------------------------------------------------------------


async def test_state_round_trips_exactly(harness: Harness) -> None:
    hot = harness.hot
    graph = _graph(SpanFactory(), loops=2)
    state = RunState.from_graph(graph, seen_ns=T0)
    assert (state.status, state.agents, state.handoffs) == (
        "complete",
        ("researcher", "supervisor"),
        2,
    )
    await hot.update_run(state)
    assert await hot.run(graph.trace_id) == state
    odd = replace(state, trace_id="cd" * 16, workflow_name=None, agents=("naïve ✓",))
    await hot.update_run(odd)
    assert await hot.run(odd.trace_id) == odd
    threaded = replace(state, trace_id="ab" * 16, conversation_id="thread-7", resumed_from="r-1")
    await hot.update_run(threaded)
    assert await hot.run(threaded.trace_id) == threaded
    assert await hot.run("ef" * 16) is None


async def test_an_update_replaces_the_whole_state(harness: Harness) -> None:
    f = SpanFactory()
    running = RunState.from_graph(_graph(f, complete=False), seen_ns=T0)
    assert running.status == "running"
    await harness.hot.update_run(running)
    done = RunState.from_graph(_graph(f, loops=3), seen_ns=T0 + SECOND)
    await harness.hot.update_run(done)
    assert await harness.hot.run(f.trace_id) == done


async def test_live_index_is_ordered_by_last_update(harness: Harness) -> None:
    hot = harness.hot
    graphs = [_graph(SpanFactory(), complete=False) for _ in range(4)]
    for i, graph in enumerate(graphs):
        await hot.update_run(RunState.from_graph(graph, seen_ns=T0 + i * SECOND))
    ids = [s.trace_id for s in await hot.live_runs()]
    assert ids == [g.trace_id for g in reversed(graphs)]
    await hot.update_run(RunState.from_graph(graphs[0], seen_ns=T0 + 10 * SECOND))
    assert [s.trace_id for s in await hot.live_runs(limit=2)] == [
        graphs[0].trace_id,
        graphs[3].trace_id,
    ]
    with pytest.raises(StoreError, match="limit"):
        await hot.live_runs(limit=0)


async def test_finished_runs_expire_and_leave_the_index(harness: Harness) -> None:
    hot = harness.hot
    done, live = _graph(SpanFactory()), _graph(SpanFactory(), complete=False)
    await hot.update_run(RunState.from_graph(done, seen_ns=T0 + SECOND))
    await hot.update_run(RunState.from_graph(live, seen_ns=T0))
    assert [s.trace_id for s in await hot.live_runs()] == [done.trace_id, live.trace_id]
    await harness.expire_finished()
    assert await hot.run(done.trace_id) is None
    assert [s.trace_id for s in await hot.live_runs(limit=5)] == [live.trace_id]
    assert [s.trace_id for s in await hot.live_runs()] == [live.trace_id]


async def test_a_paused_run_says_so_and_expires_like_a_finished_one(harness: Harness) -> None:
    hot = harness.hot
    paused = _graph(SpanFactory(), complete=False, paused=True)
    live = _graph(SpanFactory(), complete=False)
    state = RunState.from_graph(paused, seen_ns=T0 + SECOND)
    assert state.status == "paused"
    await hot.update_run(state)
    await hot.update_run(RunState.from_graph(live, seen_ns=T0))
    assert await hot.run(paused.trace_id) == state
    await harness.expire_finished()
    assert await hot.run(paused.trace_id) is None
    assert [s.trace_id for s in await hot.live_runs()] == [live.trace_id]


async def test_a_failed_run_says_so_and_expires_like_a_finished_one(harness: Harness) -> None:
    hot = harness.hot
    f = SpanFactory()
    root = f.workflow("research", run_id="run-broken")
    builder = GraphBuilder()
    builder.add([failed(root, "RateLimitError"), failed(f.agent("writer", parent=root))])
    broken = builder.get(f.trace_id)
    assert broken is not None
    live = _graph(SpanFactory(), complete=False)
    state = RunState.from_graph(broken, seen_ns=T0 + SECOND)
    assert state.status == "failed"
    await hot.update_run(state)
    await hot.update_run(RunState.from_graph(live, seen_ns=T0))
    assert await hot.run(broken.trace_id) == state  # read back as failed
    await harness.expire_finished()
    assert await hot.run(broken.trace_id) is None
    assert [s.trace_id for s in await hot.live_runs()] == [live.trace_id]


async def test_idle_runs_leave_the_index(harness: Harness) -> None:
    hot = harness.hot
    idle, busy = _graph(SpanFactory(), complete=False), _graph(SpanFactory(), complete=False)
    await hot.update_run(RunState.from_graph(idle, seen_ns=harness.clock.now))
    harness.clock.now += (IDLE_TTL + 1) * SECOND
    await hot.update_run(RunState.from_graph(busy, seen_ns=harness.clock.now))
    assert [s.trace_id for s in await hot.live_runs()] == [busy.trace_id]


async def test_detections_reach_every_subscriber(harness: Harness) -> None:
    hot = harness.hot
    assert await hot.publish_detection(_detection(0)) == 0  # nobody listens yet
    async with hot.subscribe_detections() as first, hot.subscribe_detections() as second:
        a, b = aiter(first), aiter(second)
        assert await hot.publish_detection(_detection(1)) == 2
        assert await hot.publish_detection(_detection(2, agent=None, details={})) == 2
        assert await _next(a) == _detection(1)
        assert await _next(a) == _detection(2, agent=None, details={})
        assert await _next(b) == _detection(1)
    assert await hot.publish_detection(_detection(3)) == 0  # both left


async def test_closed_hot_state_refuses_calls(harness: Harness) -> None:
    await harness.hot.close()
    await harness.hot.close()
    with pytest.raises(StoreError, match="closed"):
        await harness.hot.live_runs()
    with pytest.raises(StoreError, match="closed"):
        await harness.hot.update_run(RunState.from_graph(_graph(SpanFactory())))


# --- Redis only ---------------------------------------------------------------------------


async def test_redis_keys_layout_and_times_to_live(
    redis_url: str, raw_redis: aioredis.Redis, prefix: str
) -> None:
    done, live = _graph(SpanFactory()), _graph(SpanFactory(), complete=False)
    async with RedisHotState(
        redis_url, prefix=prefix, finished_ttl_seconds=FINISHED_TTL, idle_ttl_seconds=IDLE_TTL
    ) as hot:
        await hot.update_run(RunState.from_graph(done))
        await hot.update_run(RunState.from_graph(live))
        keys = set(await _scan(raw_redis, f"{prefix}*"))
        assert keys == {
            f"{prefix}runs:live",
            f"{prefix}run:{done.trace_id}",
            f"{prefix}run:{live.trace_id}",
        }
        assert hot.channel == f"{prefix}detections"
        assert 0 < await raw_redis.ttl(f"{prefix}run:{done.trace_id}") <= FINISHED_TTL
        assert FINISHED_TTL < await raw_redis.ttl(f"{prefix}run:{live.trace_id}") <= IDLE_TTL
        fields = await raw_redis.hgetall(f"{prefix}run:{done.trace_id}")
        assert fields["status"] == "complete"
        assert fields["agents"] == '["researcher", "supervisor"]'
        assert float(fields["cost_usd"]) == done.cost_usd
        assert int(fields["last_span_ns"]) == done.end_ns
        assert await raw_redis.type(f"{prefix}runs:live") == "zset"
    await raw_redis.delete(*keys)


async def test_a_second_collector_sees_the_same_state_and_events(
    redis_url: str, raw_redis: aioredis.Redis, prefix: str
) -> None:
    graph = _graph(SpanFactory())
    async with (
        RedisHotState(redis_url, prefix=prefix) as one,
        RedisHotState(redis_url, prefix=prefix) as two,
    ):
        await one.update_run(RunState.from_graph(graph, seen_ns=T0))
        assert await two.run(graph.trace_id) == RunState.from_graph(graph, seen_ns=T0)
        async with two.subscribe_detections() as detections:
            await raw_redis.publish(f"{prefix}detections", "not a detection")  # skipped
            assert await one.publish_detection(_detection(7)) == 1
            with capture_logs() as logs:
                assert await _next(aiter(detections)) == _detection(7)
        assert any("not a detection" in entry["event"] for entry in logs)
    await raw_redis.delete(*await _scan(raw_redis, f"{prefix}*"))


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_dead_redis_is_a_clear_store_error() -> None:
    port = _dead_port()
    hot = RedisHotState(f"redis://:secret@127.0.0.1:{port}/0", timeout_seconds=0.5)
    expected = f"cannot reach Redis at 127.0.0.1:{port}: connection refused"
    with pytest.raises(StoreError) as info:
        await hot.open()
    assert str(info.value) == expected
    assert "secret" not in str(info.value)
    with pytest.raises(StoreError, match="connection refused"):
        await hot.update_run(RunState.from_graph(_graph(SpanFactory())))
    with pytest.raises(StoreError, match="connection refused"):
        async with hot.subscribe_detections():
            pass
    await hot.close()


# --- fail-open ----------------------------------------------------------------------------


class OutageHotState(MemoryHotState):
    """The memory hot state, with an outage switched on and off by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def update_run(self, state: RunState) -> None:
        if self.down:
            raise StoreError("cannot reach Redis at 127.0.0.1:6379: connection refused")
        await super().update_run(state)


async def test_fail_open_carries_on_backs_off_and_recovers() -> None:
    now = [0.0]
    inner = OutageHotState()
    hot = FailOpenHotState(inner, retry_after_seconds=5.0, clock=lambda: now[0])
    states = [RunState.from_graph(_graph(SpanFactory()), seen_ns=T0 + i * SECOND) for i in range(4)]
    await hot.update_run(states[0])
    inner.down = True
    with capture_logs() as logs:
        await hot.update_run(states[1])  # fails: logged, counted, not raised
        await hot.update_run(states[2])  # inside the back-off: not even tried
    assert hot.health.failures == 1
    assert hot.health.skipped == 1
    assert not hot.health.available
    assert hot.health.last_error == "cannot reach Redis at 127.0.0.1:6379: connection refused"
    assert [entry["log_level"] for entry in logs] == ["warning"]
    inner.down = False
    now[0] = 6.0
    await hot.update_run(states[3])
    assert hot.health.available
    assert [s.seen_ns for s in await hot.live_runs()] == [T0 + 3 * SECOND, T0]


async def test_fail_open_on_a_dead_redis_never_raises() -> None:
    now = [0.0]
    dead = RedisHotState(f"redis://127.0.0.1:{_dead_port()}/0", timeout_seconds=0.5)
    hot = FailOpenHotState(dead, retry_after_seconds=1.0, clock=lambda: now[0])
    assert await hot.open() is hot
    for step in range(3):
        now[0] = 2.0 + step * 2.0  # past the back-off: the first call is tried, fails again
        await hot.update_run(RunState.from_graph(_graph(SpanFactory())))
        assert await hot.live_runs() == []
        assert await hot.run("ab" * 16) is None
        assert await hot.publish_detection(_detection()) == 0
    assert hot.health.failures == 4  # the open, then one call per back-off period
    assert hot.health.calls == 4
    assert hot.health.skipped == 9  # the other calls of each period
    assert "connection refused" in (hot.health.last_error or "")
    await hot.close()


def test_detection_json_rejects_what_is_not_a_detection() -> None:
    assert detection_from_json(detection_to_json(_detection())) == _detection()
    for text in ("[]", "{}", "not json", '{"severity": "fatal"}'):
        with pytest.raises(ValueError, match="not a detection"):
            detection_from_json(text)


def test_make_hot_state_follows_the_settings() -> None:
    assert make_hot_state(CollectorSettings.load()) is None
    hot = make_hot_state(
        CollectorSettings.load(redis_url="redis://cache:6380/1", redis_prefix="am:")
    )
    assert isinstance(hot, FailOpenHotState)
    assert isinstance(hot.inner, RedisHotState)
    assert (hot.inner.address, hot.inner.channel) == ("cache:6380", "am:detections")


async def test_pipeline_detections_reach_a_redis_subscriber(redis_url: str, prefix: str) -> None:
    """The wiring the collector uses today: the pipeline's ``on_detection`` hook publishes."""
    f = SpanFactory()
    root = f.workflow("research", run_id="run-loop")
    spans = [root]
    for _ in range(5):  # supervisor → researcher five times: past the bound of 3
        spans += [
            f.agent("supervisor", parent=root),
            f.agent("researcher", parent=root, handoff_from="supervisor"),
        ]
    async with (
        FailOpenHotState(RedisHotState(redis_url, prefix=prefix)) as hot,
        hot.subscribe_detections() as detections,
    ):
        pipeline = Pipeline(
            MemoryStore(), rules=[PingPongRule()], on_detection=hot.publish_detection
        )
        async with pipeline:
            assert pipeline.offer(spans)
            await pipeline.drain()
        received = await _next(aiter(detections))
        assert (received.type, received.run_id, received.trace_id) == (
            "ping_pong",
            "run-loop",
            f.trace_id,
        )
        assert hot.health.failures == 0
