"""Detector state in real Redis: a key per detector, shared by every collector instance."""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import AsyncIterator, Mapping

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from agentmesh.collector import MemoryStore, Pipeline
from agentmesh.collector.detection import Detection, JsonValue
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.detectors.state_store import (
    STATE_FORMAT,
    DetectorStateStore,
    RedisStateBackend,
)
from agentmesh.collector.testing import SpanFactory

pytestmark = pytest.mark.redis


class ToolRates:
    """A real stateful detector: how often each tool is called, per agent."""

    name = "tool_rates"

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def observe(self, cycle: CycleView) -> list[Detection]:
        for node in cycle.nodes:
            if node.agent is not None:
                self.calls[node.agent] = self.calls.get(node.agent, 0) + 1
        return []

    def tick(self, now_ns: int) -> list[Detection]:
        return []

    def snapshot(self) -> dict[str, JsonValue]:
        return {"calls": dict(self.calls)}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        calls = state["calls"]
        if not isinstance(calls, dict) or not all(isinstance(v, int) for v in calls.values()):
            raise ValueError("calls must map agents to counts")
        self.calls = {k: int(v) for k, v in calls.items() if isinstance(v, int)}


def _client(url: str, *, decode: bool = False) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, decode_responses=decode)  # pyright: ignore[reportUnknownMemberType]


@pytest.fixture
def redis_url(redis_address: tuple[str, int]) -> str:
    host, port = redis_address
    return f"redis://{host}:{port}/0"


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"amtest-{secrets.token_hex(4)}:"
    yield prefix
    client = _client(redis_url)
    keys: list[bytes] = [key async for key in client.scan_iter(match=f"{prefix}*")]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def _trained(runs: int) -> ToolRates:
    detector = ToolRates()
    async with Pipeline(MemoryStore(), detectors=[detector]) as pipeline:
        for _ in range(runs):
            f = SpanFactory()
            root = f.workflow("w")
            assert pipeline.offer([root, f.agent("searcher", parent=root)])
        await pipeline.drain()
    return detector


async def test_saved_under_its_key_and_restored_by_another_instance(
    redis_url: str, prefix: str
) -> None:
    trained = await _trained(runs=4)
    first = RedisStateBackend(redis_url, prefix=prefix)
    async with DetectorStateStore([trained], first):
        pass
    client = _client(redis_url, decode=True)
    try:
        raw = await client.get(f"{prefix}detector-state:tool_rates")
    finally:
        await client.aclose()
    assert raw is not None
    envelope = json.loads(raw)
    assert (envelope["format"], envelope["detector"]) == (STATE_FORMAT, "tool_rates")
    assert envelope["state"] == trained.snapshot() == {"calls": {"searcher": 4}}

    other_instance = ToolRates()  # another collector process starting up
    async with DetectorStateStore([other_instance], RedisStateBackend(redis_url, prefix=prefix)):
        assert other_instance.snapshot() == trained.snapshot()


async def test_corrupt_key_means_a_cold_start(redis_url: str, prefix: str) -> None:
    client = _client(redis_url)
    try:
        await client.set(f"{prefix}detector-state:tool_rates", b"\x00not json")
    finally:
        await client.aclose()
    detector = ToolRates()
    with capture_logs() as logs:
        async with DetectorStateStore([detector], RedisStateBackend(redis_url, prefix=prefix)):
            assert detector.calls == {}
    assert any(e["event"].startswith("saved detector state is unreadable") for e in logs)


async def test_unreachable_redis_starts_cold_and_never_raises() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    detector = await _trained(runs=1)
    backend = RedisStateBackend(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.5)
    with capture_logs() as logs:
        async with DetectorStateStore([detector], backend) as store:
            assert await store.save() == 0
    assert store.failures == 3  # load, the save above, the save on leaving
    events = [e["event"] for e in logs]
    assert "detector state not loaded, detectors start cold" in events
    assert "detector state not saved" in events
    assert detector.calls == {"searcher": 1}
