"""The store check: an idle collector still finds out whether its store answers.

Writes tell whether the store answers only while there are writes; ``StoreProbe`` asks with a
cheap read while none go through. The probe is driven here by hand (``check()``, or a sleep
the test releases one tick at a time); ``test_collector_idle_store_probe.py`` runs it against
a real PostgreSQL behind a proxy the test cuts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.store import DuckDBStore
from agentmesh.collector.store.availability import StoreProbe
from agentmesh.core import ConfigError
from agentmesh.core.errors import StoreError, StoreUnavailableError


class Store:
    """What the check reads: answers, refuses, is unreachable, or hangs.

    A hanging read, once cancelled, takes until ``stuck`` is set to end, as asyncpg does
    while it resets the connection of a cancelled query on a server that does not answer.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.failure: Exception | None = None
        self.hang = False
        self.stuck = asyncio.Event()

    async def read(self) -> None:
        self.calls += 1
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await self.stuck.wait()
                raise
        if self.failure is not None:
            raise self.failure


class Ticks:
    """A sleep the test releases one call at a time."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._go: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self._go.get()

    async def tick(self) -> None:
        """Let the probe's loop make one round, and wait until it sleeps again."""
        async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
            while not self.waits:  # noqa: ASYNC110 - the loop has not started yet
                await asyncio.sleep(0)
            asked = len(self.waits)
            self._go.put_nowait(None)
            while len(self.waits) == asked:  # noqa: ASYNC110 - a plain list
                await asyncio.sleep(0)


_UNREACHABLE = StoreUnavailableError("cannot reach PostgreSQL at db:5432: connection refused")


async def test_a_check_that_finds_the_store_away_makes_it_unavailable_until_one_answers() -> None:
    store = Store()
    async with StoreProbe(store.read, interval_seconds=60) as probe:
        assert probe.available
        with capture_logs() as logs:
            store.failure = _UNREACHABLE
            assert not await probe.check()
            assert not await probe.check()  # still away: logged once
            assert probe.reason == str(_UNREACHABLE)
            store.failure = None
            assert await probe.check()
        assert probe.reason is None
        assert (probe.checks, probe.failures, store.calls) == (3, 2, 3)
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "store unavailable: it does not answer the store check"),
        ("info", "store answers the store check again"),
    ]


async def test_a_store_that_does_not_answer_is_unavailable_without_waiting_for_the_call() -> None:
    store = Store()
    store.hang = True
    async with StoreProbe(store.read, interval_seconds=60, timeout_seconds=0.05) as probe:
        assert not await probe.check()  # the verdict did not wait for the call to end
        assert probe.reason == "the store did not answer within 0.05 s"
        assert not await probe.check()
        assert store.calls == 1  # the stuck call is waited for, not piled up behind
        store.hang = False
        store.stuck.set()  # the cancelled call ends at last
        assert await probe.check()
        assert store.calls == 2


async def test_a_refusal_is_an_answer() -> None:
    store = Store()
    async with StoreProbe(store.read, interval_seconds=60) as probe:
        store.failure = _UNREACHABLE
        await probe.check()
        store.failure = StoreError('PostgreSQL at db:5432: permission denied for table "spans"')
        with capture_logs() as logs:
            assert await probe.check()
            assert await probe.check()
        assert [e["event"] for e in logs] == [
            "store check failed",  # once, not at every check
            "store answers the store check again",
        ]


async def test_the_loop_checks_when_idle_and_takes_writes_as_answers() -> None:
    store = Store()
    ticks = Ticks()
    writes = [0]
    async with StoreProbe(
        store.read, interval_seconds=7, activity=lambda: writes[0], sleep=ticks.sleep
    ) as probe:
        await ticks.tick()  # no write went through: ask
        assert (store.calls, probe.available) == (1, True)
        store.failure = _UNREACHABLE
        await ticks.tick()
        assert not probe.available
        assert ticks.waits == [7, 7, 2.0]  # away: looked at again within 2 s
        writes[0] += 1  # a write went through: the store answers; no need to ask
        await ticks.tick()
        assert (store.calls, probe.available) == (2, True)
        assert ticks.waits[-1] == 7


async def test_the_probe_ends_with_its_owner_even_during_a_hanging_call() -> None:
    store = Store()
    store.hang = True
    probe = StoreProbe(store.read, interval_seconds=60, timeout_seconds=0.01)
    async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
        async with probe:
            await probe.check()
    assert not probe.available  # closing did not wait for the stuck call's clean-up
    store.stuck.set()  # the store's own closing ends it


class _CountingMemoryStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def spans(self, trace_id: str, *, limit: int | None = None) -> list[SpanRecord]:
        self.reads += 1
        return await super().spans(trace_id, limit=limit)


class _CountingDuckDBStore(DuckDBStore):
    reads = 0

    async def spans(self, trace_id: str, *, limit: int | None = None) -> list[SpanRecord]:
        self.reads += 1
        return await super().spans(trace_id, limit=limit)


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
async def test_stores_in_the_collectors_process_are_not_checked(kind: str, tmp_path: Path) -> None:
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, store_probe_seconds=0.1
    )
    store = (
        _CountingMemoryStore() if kind == "memory" else _CountingDuckDBStore(tmp_path / "c.duckdb")
    )
    await store.open()
    try:
        async with Collector(settings, store) as collector:
            await asyncio.sleep(0.5)  # five check periods
            assert collector.readiness().ready
    finally:
        await store.close()
    assert store.reads == 0


def test_the_check_period_is_0_or_at_least_a_tenth_of_a_second() -> None:
    assert CollectorSettings.load().store_probe_seconds == 5.0
    assert CollectorSettings.load(store_probe_seconds=0).store_probe_seconds == 0
    with pytest.raises(ConfigError, match=r"(?i)store_probe_seconds.*0\.1 s"):
        CollectorSettings.load(store_probe_seconds=0.01)
