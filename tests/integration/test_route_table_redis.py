"""The route table in a real Redis: stored, announced, shared, kept across collector restarts."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr
from structlog.testing import capture_logs

from agentmesh.collector import Collector, CollectorSettings
from agentmesh.collector.recovery import Breaker, MemoryControlState
from agentmesh.collector.routing import (
    MemoryRouteTableState,
    RedisRouteTableState,
    make_route_table_state,
)
from agentmesh.collector.store.memory_store import MemoryStore
from agentmesh.core import ConfigError, RouteTableError
from agentmesh.router import ModelStats, RouteTable, Tradeoff

WAIT = 10.0


@pytest.fixture
def redis_url(redis_address: tuple[str, int]) -> str:
    host, port = redis_address
    return f"redis://{host}:{port}/0"


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"test-route-table-{secrets.token_hex(4)}:"
    yield name
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    await client.delete(f"{name}route_table")
    await client.aclose()


def _mode(mode: str, task_class: str = "triage") -> object:
    def change(table: RouteTable) -> RouteTable:
        return replace(table, modes={**table.modes, task_class: mode})  # pyright: ignore[reportArgumentType]

    return change


async def test_publish_stores_the_table_and_announces_the_version(
    redis_url: str, prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    pubsub = client.pubsub()  # pyright: ignore[reportUnknownMemberType]
    await pubsub.subscribe(f"{prefix}route_table:updates")  # pyright: ignore[reportUnknownMemberType]
    await pubsub.get_message(timeout=WAIT)  # pyright: ignore[reportUnknownMemberType] - the confirmation
    try:
        async with RedisRouteTableState(redis_url, prefix=prefix) as state:
            assert state.key == f"{prefix}route_table"
            assert state.channel == f"{prefix}route_table:updates"
            assert state.published.version == 0
            table = await state.publish(
                lambda t: replace(t, default_mode="shadow", tradeoffs={"*": Tradeoff(2.0, 0.5)})
            )
            assert table.version == 1
            assert table.generated_at > 0
            stored = RouteTable.from_json(str(await client.get(f"{prefix}route_table")))  # pyright: ignore[reportUnknownMemberType]
            assert stored == table == state.published == state.current
            second = await state.publish(lambda t: replace(t, default_mode="enforce"))
            assert second.version == 2
            assert second.tradeoffs == {"*": Tradeoff(2.0, 0.5)}  # applied to the stored one
        announced: list[str] = []
        while len(announced) < 2:
            message = cast(
                "dict[str, object] | None",
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=WAIT),  # pyright: ignore[reportUnknownMemberType]
            )
            assert message is not None
            announced.append(str(message["data"]))
        assert announced == ["1", "2"]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_the_table_survives_a_reopen(redis_url: str, prefix: str) -> None:
    async with RedisRouteTableState(redis_url, prefix=prefix) as first:
        published = await first.publish(
            lambda t: replace(t, modes={"triage": "enforce"}, predictor={"w": [1, 2]})
        )
    async with RedisRouteTableState(redis_url, prefix=prefix) as reopened:
        assert reopened.published == published  # loaded on open
        assert reopened.current.predictor == {"w": [1, 2]}
        following = await reopened.publish(lambda t: replace(t, default_mode="off"))
        assert following.version == published.version + 1
        assert following.modes == {"triage": "enforce"}


async def test_two_collectors_see_each_other_and_lose_no_publication(
    redis_url: str, prefix: str
) -> None:
    async with (
        RedisRouteTableState(redis_url, prefix=prefix) as a,
        RedisRouteTableState(redis_url, prefix=prefix) as b,
    ):
        waiter = asyncio.create_task(b.wait_for(0, wait_seconds=WAIT))
        await a.publish(lambda t: replace(t, default_mode="shadow"))
        seen = await waiter  # b woke on the notice, long before WAIT
        assert seen is not None
        assert seen.version == 1
        assert seen.default_mode == "shadow"

        names = [f"class-{i}" for i in range(10)]
        await asyncio.gather(
            *(
                (a if i % 2 else b).publish(_mode("enforce", name))  # pyright: ignore[reportArgumentType]
                for i, name in enumerate(names)
            )
        )
        final = await a.refresh()
        assert final.version == 11
        assert set(final.modes) == set(names)  # every change applied, none lost
        assert (await b.refresh()) == final


async def test_garbage_in_the_key_is_logged_and_the_next_publication_replaces_it(
    redis_url: str, prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    try:
        async with RedisRouteTableState(redis_url, prefix=prefix) as state:
            kept = await state.publish(lambda t: replace(t, default_mode="shadow"))
            await client.set(f"{prefix}route_table", '{"version": 9, "modes": {"x": "maybe"}}')  # pyright: ignore[reportUnknownMemberType]
            with capture_logs() as logs:
                assert await state.refresh() == kept  # the last known table is served
                assert await state.refresh() == kept
            unreadable = [e for e in logs if "unreadable" in str(e["event"])]
            assert len(unreadable) == 1  # logged once for the same text
            assert "the mode of task class 'x'" in str(unreadable[0]["reason"])
            replaced = await state.publish(lambda t: replace(t, default_mode="enforce"))
            assert replaced.version == kept.version + 1
            assert replaced.default_mode == "enforce"
            raw = str(await client.get(f"{prefix}route_table"))  # pyright: ignore[reportUnknownMemberType]
            assert RouteTable.from_json(raw) == replaced
    finally:
        await client.aclose()


async def test_a_refused_table_is_not_published(redis_url: str, prefix: str) -> None:
    async with RedisRouteTableState(redis_url, prefix=prefix) as state:
        await state.publish(lambda t: replace(t, default_mode="shadow"))
        with pytest.raises(RouteTableError, match="cost_weight"):
            await state.publish(lambda t: replace(t, tradeoffs={"*": Tradeoff(-1.0)}))
        assert state.published.version == 1
        assert (await state.refresh()).version == 1


async def test_served_table_merges_the_control_breakers(redis_url: str, prefix: str) -> None:
    control = MemoryControlState()
    async with control, RedisRouteTableState(redis_url, control=control, prefix=prefix) as state:
        await state.publish(lambda t: replace(t, default_mode="shadow"))
        waiter = asyncio.create_task(state.wait_for(1, wait_seconds=WAIT))
        await control.open_breaker("gpt-4o", Breaker("open", 2e9, "5xx", "det-1"))
        served = await waiter  # a control change wakes the route table's long polls
        assert served is not None
        assert served.version == 2
        assert served.breakers == {"gpt-4o": 2e9}
        assert state.published.breakers == {}


async def test_a_dead_redis_fails_open() -> None:
    with capture_logs() as logs:
        async with RedisRouteTableState(
            "redis://127.0.0.1:1/0", timeout_seconds=0.3, retry_seconds=60
        ) as state:
            table = await state.publish(lambda t: replace(t, default_mode="enforce"))
            assert table.version == 1
            assert state.current == table  # served from memory
            assert not state.available
            assert state.pending == 1
    assert any("unavailable" in str(e["event"]) for e in logs)


def test_bad_settings_and_the_factory(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        RedisRouteTableState(prefix="")
    with pytest.raises(ConfigError, match="positive"):
        RedisRouteTableState(timeout_seconds=0)
    memory = make_route_table_state(CollectorSettings.load())
    assert isinstance(memory, MemoryRouteTableState)
    shared = make_route_table_state(CollectorSettings.load(redis_url=SecretStr(redis_url)))
    assert isinstance(shared, RedisRouteTableState)


async def test_the_collector_keeps_its_route_table_across_a_restart(
    redis_url: str, prefix: str
) -> None:
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        grpc_grace_seconds=1.0,
        decode_workers=0,
        redis_url=SecretStr(redis_url),
        redis_prefix=prefix,
    )
    async with Collector(settings, MemoryStore()) as collector:
        published = await collector.route_table.publish(
            lambda t: replace(t, modes={"triage": "enforce"})
        )
    async with Collector(settings, MemoryStore()) as restarted:
        assert restarted.route_table.published == published
        assert restarted.route_table.current.mode_for("triage", "off") == "enforce"


async def test_a_collector_without_training_publishes_its_modes_once_across_restarts(
    redis_url: str, prefix: str
) -> None:
    # What a training collector published before (the learned part) is kept; the modes and
    # trade-offs are configuration: published at start, and only when the table differs.
    async with RedisRouteTableState(redis_url, prefix=prefix) as state:
        learned = await state.publish(
            lambda t: replace(t, models={"gpt-4o": ModelStats(calls=9)}, predictor={"w": [1, 2]})
        )

    def settings(modes: dict[str, str]) -> CollectorSettings:
        return CollectorSettings.load(
            grpc_port=0,
            http_port=0,
            grpc_grace_seconds=1.0,
            decode_workers=0,
            redis_url=SecretStr(redis_url),
            redis_prefix=prefix,
            router_training=False,
            router_modes=modes,
            router_tradeoffs={"*": {"cost_weight": 50.0}},
        )

    shadow = {"*": "shadow", "triage": "enforce"}
    async with Collector(settings(shadow), MemoryStore()) as collector:
        assert collector.router_trainer is None
        first = collector.route_table.published
    assert first.version == learned.version + 1
    assert (first.default_mode, dict(first.modes)) == ("shadow", {"triage": "enforce"})
    assert first.tradeoffs == {"*": Tradeoff(50.0, 0.0)}
    assert (first.models, first.predictor) == (learned.models, learned.predictor)
    async with Collector(settings(shadow), MemoryStore()) as restarted:
        assert restarted.route_table.published == first  # the same: nothing published
    async with Collector(settings({"*": "enforce"}), MemoryStore()) as changed:
        table = changed.route_table.published
    assert table.version == first.version + 1
    assert (table.default_mode, dict(table.modes)) == ("enforce", {})
