"""A store that cannot be reached is waited for: the pipeline holds, pushes back, loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest
from structlog.testing import capture_logs

from agentmesh.collector import Detection, MemoryStore, PingPongRule, Pipeline, RunGraph, SpanRecord
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.store.availability import StoreAvailability
from agentmesh.collector.store.postgres_errors import store_error
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import StoreError, StoreUnavailableError


class _Outage(MemoryStore):
    """A memory store whose writes fail as unavailable while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.refused = 0

    def _gate(self) -> None:
        if self.down:
            self.refused += 1
            raise StoreUnavailableError("cannot reach PostgreSQL at db:5432: connection refused")

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        self._gate()
        return await super().write_spans(spans)

    async def write_graph(self, graph: RunGraph) -> None:
        self._gate()
        await super().write_graph(graph)

    async def write_detection(self, detection: Detection) -> bool:
        self._gate()
        return await super().write_detection(detection)


def _ping_pong(f: SpanFactory) -> list[SpanRecord]:
    root = f.workflow("loop", run_id="run-loop")
    spans = [root]
    previous = None
    for name in ["a", "b"] * 4:
        spans.append(f.agent(name, parent=root, handoff_from=previous))
        previous = name
    return spans


async def _until(condition: object, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_an_outage_holds_the_data_pushes_back_and_loses_nothing() -> None:
    store = _Outage()
    delivered: list[Detection] = []
    pipeline = Pipeline(store, rules=[PingPongRule()], max_batches=3, on_detection=delivered.append)
    async with pipeline:
        store.down = True
        looping = SpanFactory()
        batches = [_ping_pong(looping)] + [[SpanFactory().workflow("w")] for _ in range(8)]
        accepted = [batch for batch in batches if pipeline.offer(batch)]
        await _until(lambda: store.refused > 0)
        more = [[SpanFactory().workflow("w")] for _ in range(10)]
        accepted += [batch for batch in more if pipeline.offer(batch)]
        assert len(accepted) < len(batches) + len(more)  # the queue filled: senders retry
        assert not pipeline.store_available
        assert pipeline.full
        stats = pipeline.stats
        assert stats.store_unavailable == 1
        assert stats.batches_failed == 0
        await _until(lambda: len(delivered) == 1)  # detections are delivered during the outage
        with capture_logs() as logs:
            store.down = False
            await pipeline.drain()
    events = [entry["event"] for entry in logs]
    assert "store available again" in events
    stats = pipeline.stats
    assert stats.batches_failed == 0
    assert stats.store_unavailable == 0
    assert stats.store_write_retries >= 1
    assert await store.count_spans() == sum(len(batch) for batch in accepted)
    assert [d.type for d in await store.detections()] == ["ping_pong"]  # held, then stored
    assert len(await store.runs()) == len(accepted)


async def test_other_store_errors_are_not_retried() -> None:
    calls: list[int] = []

    async def refused() -> int:
        calls.append(1)
        raise StoreError("PostgreSQL at db:5432: invalid byte sequence for encoding UTF8")

    availability = StoreAvailability(sleep=lambda _: asyncio.sleep(0))
    with pytest.raises(StoreError, match="invalid byte sequence"):
        await availability.until_stored(refused)
    assert calls == [1]
    assert availability.available
    assert availability.retries == 0


async def test_waits_grow_and_stay_bounded() -> None:
    waits: list[float] = []
    failures = 12

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def flaky() -> str:
        if len(waits) < failures:
            raise StoreUnavailableError("lost the connection to PostgreSQL at db:5432")
        return "ok"

    availability = StoreAvailability(initial_seconds=0.25, max_wait_seconds=5.0, sleep=sleep)
    with capture_logs() as logs:
        assert await availability.until_stored(flaky) == "ok"
    assert len(waits) == failures
    assert all(0.0 <= w <= 5.0 for w in waits)
    assert max(waits[:1]) <= 0.25  # full jitter under a ceiling that doubles, capped at 5 s
    warnings = [e for e in logs if e["event"].startswith("store unavailable")]
    assert len(warnings) == 1  # once per outage, not once per attempt
    assert availability.retries == failures


class _Overdue:
    """A detector whose clock finds one overdue step when told to."""

    name = "overdue"

    def __init__(self) -> None:
        self.fire = False

    def observe(self, cycle: CycleView) -> list[Detection]:
        return []

    def tick(self, now_ns: int) -> list[Detection]:
        if not self.fire:
            return []
        self.fire = False
        return [
            Detection(
                "det-stuck", "stuck_step", "warning", "t" * 32, "run-1", None, (), "x", now_ns
            )
        ]


async def test_with_no_traffic_the_pipeline_checks_on_the_store_by_itself() -> None:
    store = _Outage()
    detector = _Overdue()
    delivered: list[Detection] = []
    async with Pipeline(store, detectors=[detector], on_detection=delivered.append) as pipeline:
        store.down = True
        detector.fire = True  # found by the clock: no batch, no write cycle
        await _until(lambda: delivered)
        assert not pipeline.store_available
        store.down = False  # back, and still no traffic
        await _until(lambda: pipeline.store_available)
        assert [d.id for d in await store.detections()] == ["det-stuck"]


@pytest.mark.parametrize(
    ("error", "waits"),
    [
        (asyncpg.DiskFullError("could not extend file: No space left on device"), True),
        (asyncpg.OutOfMemoryError("out of memory"), True),
        (asyncpg.SerializationError("could not serialize access"), True),
        (asyncpg.DeadlockDetectedError("deadlock detected"), True),
        (asyncpg.CrashShutdownError("terminating connection because of crash"), True),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), False),
        (asyncpg.ConfigurationLimitExceededError("too many columns"), False),
        (asyncpg.UniqueViolationError("duplicate key"), False),
    ],
)
def test_postgres_refusals_that_pass_are_waited_for_and_the_others_are_not(
    error: Exception, waits: bool
) -> None:
    mapped = store_error(error, "db:5432")
    assert isinstance(mapped, StoreError)
    assert isinstance(mapped, StoreUnavailableError) is waits
    assert str(mapped) == f"PostgreSQL at db:5432: {error}"
