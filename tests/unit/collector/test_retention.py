"""Retention: passes delete old runs in batches, survive a failing store, and keep going."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agentmesh.collector import MemoryStore
from agentmesh.collector.store import Pruned
from agentmesh.collector.store.retention import Retention
from agentmesh.collector.testing import SpanFactory, graph_of
from agentmesh.core import StoreError

NOW = 1_800_000_000.0
DAY = 86_400.0


async def _runs(store: MemoryStore, *starts: float) -> list[str]:
    traces: list[str] = []
    for start in starts:
        f = SpanFactory(start_ns=int(start * 1e9))
        spans = [f.workflow("w", run_id=f"run-{len(traces)}")]
        spans.append(f.agent("a", parent=spans[0]))
        await store.write_spans(spans)
        await store.write_graph(graph_of(spans))
        traces.append(f.trace_id)
    return traces


class _Counting(MemoryStore):
    """A memory store that records each prune call and can fail the first ones."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []
        self.failures = failures

    async def prune(self, before_ns: int, *, limit: int) -> Pruned:
        self.calls.append((before_ns, limit))
        if self.failures:
            self.failures -= 1
            raise StoreError("PostgreSQL at 127.0.0.1:5432 is unreachable")
        return await super().prune(before_ns, limit=limit)


async def test_a_pass_deletes_old_runs_in_batches_until_one_comes_back_short() -> None:
    store = _Counting()
    await _runs(store, NOW - 9 * DAY, NOW - 8 * DAY, NOW - 8 * DAY, NOW - 7.5 * DAY)
    recent = await _runs(store, NOW - 6 * DAY, NOW - 60)
    retention = Retention(store, keep_seconds=7 * DAY, batch_runs=2, clock=lambda: NOW)

    assert await retention.prune() == Pruned(runs=4, spans=8, detections=0)
    cut = int((NOW - 7 * DAY) * 1e9)
    assert store.calls == [(cut, 2), (cut, 2), (cut, 2)]  # 2, 2, then 0: short, so done
    assert sorted(r.trace_id for r in await store.runs()) == sorted(recent)
    stats = retention.stats
    assert (stats.passes, stats.failures, stats.runs_pruned, stats.spans_pruned) == (1, 0, 4, 8)
    assert await retention.prune() == Pruned()
    assert retention.stats.passes == 2


async def test_the_background_task_survives_a_failing_store_and_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Counting(failures=1)
    await _runs(store, NOW - 8 * DAY)
    keep = await _runs(store, NOW - DAY)
    caplog.set_level(logging.WARNING)
    async with Retention(
        store, keep_seconds=7 * DAY, interval_seconds=0.05, clock=lambda: NOW
    ) as retention:
        for _ in range(200):
            if retention.stats.runs_pruned:
                break
            await asyncio.sleep(0.01)
    stats = retention.stats
    assert stats.failures == 1
    assert stats.runs_pruned == 1
    assert [r.trace_id for r in await store.runs()] == keep
    assert "deleting old runs failed; trying again later" in caplog.text
    assert "unreachable" in caplog.text


async def test_leaving_stops_the_passes() -> None:
    store = _Counting()
    async with Retention(store, keep_seconds=DAY, interval_seconds=0.01, clock=lambda: NOW):
        for _ in range(200):
            if store.calls:
                break
            await asyncio.sleep(0.01)
    calls = len(store.calls)
    await asyncio.sleep(0.05)
    assert calls >= 1
    assert len(store.calls) == calls


@pytest.mark.parametrize(
    ("keep", "interval", "batch"), [(0.0, 1.0, 1), (1.0, 0.0, 1), (1.0, 1.0, 0), (-1.0, 1.0, 1)]
)
def test_durations_and_batch_must_be_positive(keep: float, interval: float, batch: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Retention(MemoryStore(), keep_seconds=keep, interval_seconds=interval, batch_runs=batch)
