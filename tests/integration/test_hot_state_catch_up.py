"""Redis comes back after an outage: the run states that changed meanwhile are re-published.

``FailOpenHotState`` drops the calls it cannot make (the pipeline never waits for Redis), but
it keeps the latest state of each run whose update was lost and writes them once Redis
answers again, so neither the run hashes nor the live-run index stay wrong until the run
changes again or expires. Redis is real, reached through a TCP proxy the test cuts; the bound
on what is kept and the order of writes are checked against a memory backend with an outage
switch.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
import redis.asyncio as aioredis
from _tcp_proxy import TcpProxy
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from structlog.testing import capture_logs

from agentmesh.collector import Collector, CollectorSettings, GraphBuilder, MemoryStore
from agentmesh.collector.hot_state import FailOpenHotState, MemoryHotState, RedisHotState, RunState
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import StoreError

_DB = 8  # out of the way of the other tests' keys (each run's prefix is its own anyway)


@pytest.fixture
async def proxy(redis_address: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(*redis_address)
    await proxy.start()
    yield proxy
    proxy.thaw()
    await proxy.cut()


@pytest.fixture
async def raw(redis_address: tuple[str, int]) -> AsyncIterator[aioredis.Redis]:
    """A direct connection (not through the proxy), to see what Redis holds."""
    host, port = redis_address
    client = aioredis.Redis.from_url(f"redis://{host}:{port}/{_DB}", decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(raw: aioredis.Redis) -> AsyncIterator[str]:
    prefix = f"agentmesh-test-catch-up-{secrets.token_hex(4)}:"
    yield prefix
    keys = [key async for key in raw.scan_iter(match=f"{prefix}*")]
    if keys:
        await raw.delete(*keys)


def _run(n_spans: int, f: SpanFactory, *, run_id: str) -> list[SpanRecord]:
    """A run of ``n_spans`` spans: its root first, then agents and calls."""
    root = f.workflow("catch-up", run_id=run_id)
    spans = [root]
    while len(spans) < n_spans:
        agent = f.agent(f"agent-{len(spans)}", parent=root)
        spans += [agent, f.chat(parent=agent, cost_usd=0.001)][: n_spans - len(spans)]
    return spans


def _state(spans: list[SpanRecord]) -> RunState:
    builder = GraphBuilder()
    builder.add(spans)
    graph = builder.get(spans[0].trace_id)
    assert graph is not None
    return RunState.from_graph(graph)


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
        while not await condition():  # noqa: ASYNC110 - Redis and counters have no event
            await asyncio.sleep(0.05)


async def _caught_up(hot: FailOpenHotState) -> None:
    async def done() -> bool:
        return hot.health.pending_runs == 0

    await _until(done)


async def test_states_lost_during_an_outage_reach_redis_once_it_answers(
    proxy: TcpProxy, raw: aioredis.Redis, prefix: str
) -> None:
    inner = RedisHotState(
        f"redis://127.0.0.1:{proxy.port}/{_DB}",
        prefix=prefix,
        finished_ttl_seconds=600,
        timeout_seconds=0.5,
    )
    a, b = SpanFactory(), SpanFactory()
    run_a, run_b = _run(20, a, run_id="run-a"), _run(6, b, run_id="run-b")
    async with FailOpenHotState(inner, retry_after_seconds=0.2) as hot:
        await hot.update_run(_state(run_a[:4]))  # root + 3 spans: complete, 4 spans
        assert await raw.hget(f"{prefix}run:{a.trace_id}", "span_count") == "4"

        await proxy.cut()
        await hot.update_run(_state(run_a[:12]))  # fails: kept
        await hot.update_run(_state(run_a))  # skipped (backing off): kept, the latest
        await hot.update_run(_state(run_b))
        assert not hot.health.available
        assert await raw.hget(f"{prefix}run:{a.trace_id}", "span_count") == "4"

        await proxy.start()  # no run changes from now on

        async def caught_up() -> bool:
            a_now = await raw.hget(f"{prefix}run:{a.trace_id}", "span_count")
            return a_now == "20" and await raw.exists(f"{prefix}run:{b.trace_id}") == 1

        await _until(caught_up)
        await _caught_up(hot)
        health = hot.health
    assert (health.republished, health.runs_not_kept, health.available) == (2, 0, True)
    state_a = await raw.hgetall(f"{prefix}run:{a.trace_id}")
    assert (state_a["span_count"], state_a["status"]) == ("20", "complete")
    assert (await raw.hget(f"{prefix}run:{b.trace_id}", "span_count")) == "6"
    assert set(await raw.zrange(f"{prefix}runs:live", 0, -1)) == {a.trace_id, b.trace_id}
    assert 0 < await raw.ttl(f"{prefix}run:{a.trace_id}") <= 600


async def test_a_collector_brings_redis_up_to_date_after_an_outage(
    proxy: TcpProxy, raw: aioredis.Redis, prefix: str
) -> None:
    """The QA scenario: run A starts, Redis goes, A ends and B runs whole, Redis is back."""
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        decode_workers=0,
        redis_url=f"redis://127.0.0.1:{proxy.port}/{_DB}",
        redis_prefix=prefix,
        redis_timeout_seconds=0.5,
    )
    a, b = SpanFactory(), SpanFactory()
    run_a, run_b = _run(20, a, run_id="run-a"), _run(6, b, run_id="run-b")
    runs = [_run(5, SpanFactory(), run_id=f"run-{i}") for i in range(10)]
    store = MemoryStore()
    async with (
        Collector(settings, store) as collector,
        grpc.aio.insecure_channel(collector.endpoint.removeprefix("http://")) as channel,
    ):
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)

        async def send(spans: list[SpanRecord]) -> None:
            payload = to_otlp_request(spans).SerializeToString()
            await stub.Export(
                trace_service_pb2.ExportTraceServiceRequest.FromString(payload), timeout=10
            )

        await send(run_a[:4])
        await collector.drain()
        assert await raw.hget(f"{prefix}run:{a.trace_id}", "span_count") == "4"

        await proxy.cut()
        await send(run_a[4:] + run_b)
        for run in runs:
            await send(run)
        await collector.drain()  # all stored: ingestion did not wait for Redis
        assert await store.count_spans() == 20 + 6 + 50

        await proxy.start()  # nothing more is sent

        async def caught_up() -> bool:
            return (
                await raw.zcard(f"{prefix}runs:live") == 12
                and await raw.hget(f"{prefix}run:{a.trace_id}", "span_count") == "20"
            )

        await _until(caught_up)
        assert await raw.hget(f"{prefix}run:{b.trace_id}", "span_count") == "6"
        for run in runs:
            assert await raw.hget(f"{prefix}run:{run[0].trace_id}", "status") == "complete"


class OutageHotState(MemoryHotState):
    """The memory hot state with an outage the test switches, recording the writes made."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.written: list[tuple[str, int]] = []  # (trace id, span count)
        self.hold: asyncio.Event | None = None  # set: writes wait for it
        self.held = asyncio.Event()  # a write waits for ``hold``

    async def update_run(self, state: RunState) -> None:
        if self.down:
            raise StoreError("cannot reach Redis at 127.0.0.1:6379: connection refused")
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
        self.written.append((state.trace_id, state.span_count))
        await super().update_run(state)


async def test_the_latest_state_wins_and_what_is_kept_is_bounded() -> None:
    inner = OutageHotState()
    factories = {name: SpanFactory() for name in "ABCD"}
    with capture_logs() as logs:
        async with FailOpenHotState(inner, retry_after_seconds=0.05, max_pending_runs=3) as hot:
            inner.down = True
            f = factories
            await hot.update_run(_state(_run(3, f["A"], run_id="a")))
            await hot.update_run(_state(_run(2, f["B"], run_id="b")))
            await hot.update_run(_state(_run(5, f["A"], run_id="a")))  # A: now the latest
            await hot.update_run(_state(_run(2, f["C"], run_id="c")))
            await hot.update_run(_state(_run(2, f["D"], run_id="d")))  # over 3: B goes
            assert hot.health.pending_runs == 3
            inner.down = False
            await _caught_up(hot)
            health = hot.health
            assert await inner.run(f["B"].trace_id) is None  # left as it was: never written
    assert inner.written == [
        (f["A"].trace_id, 5),  # once, its latest state
        (f["C"].trace_id, 2),
        (f["D"].trace_id, 2),
    ]
    assert (health.republished, health.runs_not_kept) == (3, 1)
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings == [
        "hot state unavailable; carrying on without it",
        "hot state unavailable too long: states of the least recently changed runs will not be "
        "re-published",
    ]  # each once
    assert any(e["event"] == "hot state caught up: run states re-published" for e in logs)


async def test_a_state_given_while_an_older_one_is_republished_is_written_after_it() -> None:
    inner = OutageHotState()
    a = SpanFactory()
    async with FailOpenHotState(inner, retry_after_seconds=0.05) as hot:
        inner.down = True
        await hot.update_run(_state(_run(3, a, run_id="a")))
        inner.hold = asyncio.Event()
        inner.down = False

        async with asyncio.timeout(30):  # a guard against hanging, not a timing assertion
            await inner.held.wait()  # the task re-publishes the first state; its write waits
        async with asyncio.timeout(10):  # returns at once: it does not wait behind the write
            await hot.update_run(_state(_run(7, a, run_id="a")))
        assert hot.health.pending_runs == 1  # one run, whose two states are to be written
        inner.hold.set()
        await _caught_up(hot)
        latest = await inner.run(a.trace_id)
    assert inner.written == [(a.trace_id, 3), (a.trace_id, 7)]
    assert latest is not None
    assert latest.span_count == 7


async def test_a_state_that_would_have_expired_meanwhile_removes_the_run(
    redis_address: tuple[str, int], raw: aioredis.Redis, prefix: str
) -> None:
    host, port = redis_address
    a, b = SpanFactory(), SpanFactory()
    async with RedisHotState(
        f"redis://{host}:{port}/{_DB}", prefix=prefix, finished_ttl_seconds=60
    ) as hot:
        await hot.update_run(_state(_run(4, a, run_id="a")[1:]))  # running (no root yet)
        await hot.update_run(_state(_run(4, b, run_id="b")[1:]))
        await hot.republish_run(_state(_run(9, a, run_id="a")), age_seconds=61)
        await hot.republish_run(_state(_run(9, b, run_id="b")), age_seconds=50)
    assert not await raw.exists(f"{prefix}run:{a.trace_id}")  # complete 61 s ago: expired
    assert await raw.zrange(f"{prefix}runs:live", 0, -1) == [b.trace_id]
    assert await raw.hget(f"{prefix}run:{b.trace_id}", "status") == "complete"
    assert 0 < await raw.pttl(f"{prefix}run:{b.trace_id}") <= 10_000  # what was left of 60 s
