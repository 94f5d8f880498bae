"""A small async batcher: items gathered until a batch is full or a delay has passed.

:meth:`Batcher.add` never blocks and never fails: the item joins a bounded buffer (the oldest
item is dropped, counted, when the buffer is full). A background task hands the buffer to the
flush callback in batches of at most ``max_items``: as soon as a batch is full, else
``interval_seconds`` after the first item of the batch arrived. Leaving the context manager
flushes what is left.

Example:
    >>> import asyncio
    >>> async def main() -> list[list[int]]:
    ...     batches: list[list[int]] = []
    ...     async with Batcher(batches.append, max_items=2, interval_seconds=60.0) as batcher:
    ...         for item in range(5):
    ...             batcher.add(item)
    ...     return batches
    >>> asyncio.run(main())
    [[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, Self, TypeVar

from agentmesh.core.errors import CollectorError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait

__all__ = ["Batcher"]

log = get_logger(__name__)

T = TypeVar("T")


class Batcher(Generic[T]):
    """Gathers items and hands them over in batches, from a task of its own.

    Args:
        flush: Called with each batch (in order; never with an empty one). It must not block;
            an exception it raises is logged and the batch is lost.
        max_items: Largest batch; a full batch is flushed at once.
        interval_seconds: Longest time an item waits for its batch to fill.
        max_pending: Items held at most; the oldest is dropped (counted) beyond.
        name: Short name for logs and the task.

    Raises:
        CollectorError: A bound is below 1 or the interval is not positive.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], None],
        *,
        max_items: int = 100,
        interval_seconds: float = 0.2,
        max_pending: int = 10_000,
        name: str = "batcher",
    ) -> None:
        if max_items < 1 or max_pending < 1:
            raise CollectorError("max_items and max_pending must be at least 1")
        if interval_seconds <= 0:
            raise CollectorError(f"interval_seconds must be positive, got {interval_seconds}")
        self._flush = flush
        self._max_items = max_items
        self._interval = interval_seconds
        self._max_pending = max_pending
        self._name = name
        self._pending: deque[T] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.added = 0
        """Items given to :meth:`add`."""
        self.flushed = 0
        """Items handed to the flush callback."""
        self.dropped = 0
        """Items dropped: pushed out of a full buffer, added after closing, or in a failed flush."""

    @property
    def pending(self) -> int:
        """Items waiting now."""
        return len(self._pending)

    def add(self, item: T) -> None:
        """Queue an item (never blocks).

        Args:
            item: The item.
        """
        self.added += 1
        if self._closed:
            self.dropped += 1
            return
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(item)
        self._arrived.set()
        if len(self._pending) >= self._max_items:
            self._full.set()

    async def start(self) -> None:
        """Start the flushing task.

        Raises:
            CollectorError: Already started.
        """
        if self._task is not None or self._closed:
            raise CollectorError(f"the {self._name} batcher was already started")
        self._task = asyncio.create_task(self._run(), name=f"agentmesh-{self._name}")

    async def stop(self) -> None:
        """Stop the task and flush what is left. Stopping twice is harmless."""
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        while self._pending:
            self._flush_one()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            if len(self._pending) < self._max_items:
                try:
                    async with asyncio.timeout(self._interval):
                        await self._full.wait()
                except TimeoutError:
                    pass
            self._flush_one()
            if not self._pending:
                self._arrived.clear()

    def _flush_one(self) -> None:
        size = min(self._max_items, len(self._pending))
        batch = [self._pending.popleft() for _ in range(size)]
        if len(self._pending) < self._max_items:
            self._full.clear()
        if not batch:
            return
        try:
            self._flush(batch)
        except Exception:
            self.dropped += len(batch)
            log.exception("batch flush failed", batcher=self._name, items=len(batch))
        else:
            self.flushed += len(batch)
