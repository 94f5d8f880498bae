"""Retention: the collector deletes the runs that ended longer ago than it keeps them.

Without it the store only grows: every span, graph and detection stays. With a retention
(``retention_days``), the collector runs a pass when it starts and then every
``retention_interval_seconds``: it asks the store (:meth:`SpanStore.prune`) to delete the runs
that ended before ``now - retention``, whole (spans, graph, detections), a batch of runs per
transaction so span and graph writes go on between batches, until a batch comes back short.
A pass that fails is logged and counted; the next one tries again, and ingestion never waits
for it.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.store.memory_store import MemoryStore
    >>> async def main() -> Pruned:
    ...     async with Retention(MemoryStore(), keep_seconds=86_400.0) as retention:
    ...         return await retention.prune()
    >>> asyncio.run(main())
    Pruned(runs=0, spans=0, detections=0)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from agentmesh.collector.store.base import Pruned, SpanStore
from agentmesh.core.errors import StoreError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait

__all__ = ["BATCH_RUNS", "Retention", "RetentionStats", "prune_before"]

log = get_logger(__name__)

BATCH_RUNS: Final = 1_000
"""Runs deleted per transaction."""


async def prune_before(
    store: SpanStore,
    before_ns: int,
    *,
    batch_runs: int = BATCH_RUNS,
    done: Callable[[Pruned], None] | None = None,
) -> Pruned:
    """Delete every run that ended before ``before_ns``, a batch per store call.

    Args:
        store: The store.
        before_ns: The cut-off (Unix nanoseconds).
        batch_runs: Runs deleted per store call (one transaction each).
        done: Called with what each call deleted, as it is deleted.

    Returns:
        What was deleted.

    Raises:
        StoreError: The store failed (earlier batches stay deleted).
    """
    total = Pruned()
    while True:
        batch = await store.prune(before_ns, limit=batch_runs)
        total += batch
        if done is not None:
            done(batch)
        if batch.runs < batch_runs:
            return total


@dataclass(frozen=True, slots=True)
class RetentionStats:
    """What retention did since the collector started.

    Attributes:
        passes: Passes finished.
        failures: Passes that failed (logged; the next one tries again).
        runs_pruned: Runs deleted.
        spans_pruned: Spans deleted.
        detections_pruned: Detections deleted.
    """

    passes: int = 0
    failures: int = 0
    runs_pruned: int = 0
    spans_pruned: int = 0
    detections_pruned: int = 0


class Retention:
    """Deletes, now and then, the runs that ended longer ago than ``keep_seconds``.

    Use as an async context manager: entering starts the background task (its first pass
    runs at once), leaving cancels it.

    Args:
        store: The store to prune.
        keep_seconds: How long a run is kept after it ended.
        interval_seconds: Time between the start of two passes.
        batch_runs: Runs deleted per store call (one transaction each).
        clock: Current Unix time in seconds.

    Raises:
        ValueError: A duration or the batch is not positive.
    """

    def __init__(
        self,
        store: SpanStore,
        *,
        keep_seconds: float,
        interval_seconds: float = 3600.0,
        batch_runs: int = BATCH_RUNS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if keep_seconds <= 0 or interval_seconds <= 0 or batch_runs < 1:
            raise ValueError(
                "retention needs a positive keep time, interval and batch, got "
                f"{keep_seconds}, {interval_seconds} and {batch_runs}"
            )
        self._store = store
        self._keep_ns = int(keep_seconds * 1e9)
        self._interval = interval_seconds
        self._batch = batch_runs
        self._clock = clock
        self._total = Pruned()
        self._passes = 0
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def stats(self) -> RetentionStats:
        """What retention deleted since it started, and how its passes went."""
        total = self._total
        return RetentionStats(
            passes=self._passes,
            failures=self._failures,
            runs_pruned=total.runs,
            spans_pruned=total.spans,
            detections_pruned=total.detections,
        )

    async def prune(self) -> Pruned:
        """Run one pass now: delete every run that ended before ``now - keep_seconds``.

        Returns:
            What the pass deleted.

        Raises:
            StoreError: The store failed (what earlier batches deleted stays deleted and
                counted).
        """
        before_ns = int(self._clock() * 1e9) - self._keep_ns
        started = time.perf_counter()
        done = await prune_before(self._store, before_ns, batch_runs=self._batch, done=self._count)
        self._passes += 1
        if done:
            log.info(
                "old runs deleted",
                runs=done.runs,
                spans=done.spans,
                detections=done.detections,
                ended_before_ns=before_ns,
                seconds=round(time.perf_counter() - started, 3),
            )
        return done

    def _count(self, batch: Pruned) -> None:
        self._total += batch

    async def __aenter__(self) -> Self:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="agentmesh-retention")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.prune()
            except StoreError as exc:
                self._failures += 1
                log.warning("deleting old runs failed; trying again later", error=str(exc))
            except Exception:  # a bug here must not end retention, nor the collector
                self._failures += 1
                log.exception("deleting old runs failed unexpectedly; trying again later")
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))
