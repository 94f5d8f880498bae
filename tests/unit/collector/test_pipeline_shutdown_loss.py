"""Stopping a pipeline while its store is unreachable: what is lost is counted and said plainly.

The drain timeout bounds shutdown; what the store has not taken by then is given up. The count
must include every accepted batch not stored: queued, graphed and waiting, and the one whose
write is being retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from structlog.testing import capture_logs

from agentmesh.collector import MemoryStore, Pipeline, SpanRecord
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import StoreUnavailableError


class _Unreachable(MemoryStore):
    """A store whose span writes find it unreachable until ``back`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.tried = asyncio.Event()
        self.back = False

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        self.attempts += 1
        self.tried.set()
        if not self.back:
            raise StoreUnavailableError("cannot reach PostgreSQL at 127.0.0.1:5432")
        return await super().write_spans(spans)


def _batch(spans: int) -> list[SpanRecord]:
    f = SpanFactory()
    root = f.workflow("outage", run_id=f"run-{f.trace_id[:8]}")
    return [root, *(f.agent(f"agent-{i}", parent=root) for i in range(spans - 1))]


async def test_every_accepted_span_not_stored_is_counted_including_the_batch_in_retry() -> None:
    store = _Unreachable()
    with capture_logs() as logs:
        async with Pipeline(store, drain_timeout_seconds=0.3) as pipeline:
            assert pipeline.offer(_batch(50))
            await store.tried.wait()  # its write is being retried: the store is unreachable
            assert not pipeline.store_available
            assert pipeline.offer(_batch(12))  # these two wait behind it
            assert pipeline.offer(_batch(7))
            await asyncio.sleep(0.05)
        stats = pipeline.stats
    [event] = [e for e in logs if e["event"].startswith("pipeline drain timed out")]
    assert (event["dropped_batches"], event.get("dropped_spans")) == (3, 69)
    assert event["event"] == (
        "pipeline drain timed out: accepted spans were lost, the store was unreachable at shutdown"
    )
    assert (stats.batches_dropped, stats.spans_dropped) == (3, 69)
    assert event["log_level"] == "error"
    assert event["drain_timeout_seconds"] == 0.3
    assert event["store_unreachable_seconds"] is not None
    assert "AGENTMESH_COLLECTOR_DRAIN_TIMEOUT_SECONDS" in event["advice"]
    assert await store.count_spans() == 0


async def test_nothing_is_counted_lost_when_the_store_comes_back_in_time() -> None:
    store = _Unreachable()
    with capture_logs() as logs:
        async with Pipeline(store, drain_timeout_seconds=5) as pipeline:
            assert pipeline.offer(_batch(20))
            await store.tried.wait()
            store.back = True  # the next retry (within 0.25 s) goes through
        stats = pipeline.stats
    assert (stats.batches_dropped, stats.spans_dropped) == (0, 0)
    assert not [e for e in logs if e["event"].startswith("pipeline drain timed out")]
    assert await store.count_spans() == 20


async def test_a_batch_stored_before_the_timeout_is_not_counted_lost() -> None:
    store = _Unreachable()
    store.back = True
    with capture_logs() as logs:
        async with Pipeline(store, drain_timeout_seconds=0.3) as pipeline:
            assert pipeline.offer(_batch(10))
            await pipeline.drain()  # stored
            store.back = False
            store.tried.clear()
            assert pipeline.offer(_batch(5))
            await store.tried.wait()
        stats = pipeline.stats
    assert (stats.batches_dropped, stats.spans_dropped) == (1, 5)
    [event] = [e for e in logs if e["event"].startswith("pipeline drain timed out")]
    assert (event["dropped_batches"], event["dropped_spans"]) == (1, 5)
    assert await store.count_spans() == 10
