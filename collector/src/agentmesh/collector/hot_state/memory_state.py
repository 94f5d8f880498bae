"""The hot state in memory, for tests and a single collector: the Redis store's behaviour.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.graph.run_graph import RunGraph
    >>> async def main() -> list[str]:
    ...     async with MemoryHotState() as hot:
    ...         await hot.update_run(RunState.from_graph(RunGraph("a" * 32, "run-a"), 1))
    ...         await hot.update_run(RunState.from_graph(RunGraph("b" * 32, "run-b"), 2))
    ...         return [state.run_id for state in await hot.live_runs()]
    >>> asyncio.run(main())
    ['run-b', 'run-a']
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Self

from agentmesh.collector.detection import Detection
from agentmesh.collector.hot_state.base import RunState
from agentmesh.core.errors import StoreError

__all__ = ["MemoryDetectionSubscription", "MemoryHotState"]

_NS_PER_S = 1_000_000_000


class MemoryHotState:
    """A :class:`~agentmesh.collector.hot_state.base.HotState` in dictionaries.

    Expiry follows ``clock_ns`` (the wall clock by default), so a test can move time.

    Args:
        finished_ttl_seconds: How long a complete (or paused) run stays.
        idle_ttl_seconds: How long a running run stays after its last update.
        clock_ns: Clock in nanoseconds.
    """

    def __init__(
        self,
        *,
        finished_ttl_seconds: int = 600,
        idle_ttl_seconds: int = 3600,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._finished_ttl = finished_ttl_seconds
        self._idle_ttl = idle_ttl_seconds
        self._clock = clock_ns
        self._states: dict[str, tuple[RunState, int]] = {}  # trace id → (state, expires at)
        self._subscribers: set[asyncio.Queue[Detection]] = set()
        self._closed = False

    async def open(self) -> Self:
        """Check the hot state is not closed (there is nothing to connect to).

        Returns:
            The hot state.
        """
        self._check()
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Mark it closed; later calls raise ``StoreError``."""
        self._closed = True

    async def update_run(self, state: RunState) -> None:
        """Record a run's latest state and move it to the top of the live index.

        Args:
            state: The state.
        """
        self._check()
        ttl = self._idle_ttl if state.status == "running" else self._finished_ttl
        self._states[state.trace_id] = (state, self._clock() + ttl * _NS_PER_S)

    async def run(self, trace_id: str) -> RunState | None:
        """Read a run's latest state.

        Args:
            trace_id: The trace.

        Returns:
            The state, or ``None`` when unknown or expired.
        """
        self._check()
        self._expire()
        held = self._states.get(trace_id)
        return None if held is None else held[0]

    async def live_runs(self, limit: int | None = None) -> list[RunState]:
        """List the live runs, most recently updated first.

        Args:
            limit: Most runs returned; all when ``None``.

        Returns:
            Their states.

        Raises:
            StoreError: ``limit`` is below 1.
        """
        self._check()
        if limit is not None and limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        self._expire()
        states = sorted(  # like Redis ZREVRANGE: by score (ms), ties by member, descending
            (state for state, _ in self._states.values()),
            key=lambda s: (s.seen_ns // 1_000_000, s.trace_id),
            reverse=True,
        )
        return states[:limit]

    async def publish_detection(self, detection: Detection) -> int:
        """Hand a detection to every current subscriber.

        Args:
            detection: The detection.

        Returns:
            How many subscribers received it.
        """
        self._check()
        for queue in self._subscribers:
            queue.put_nowait(detection)
        return len(self._subscribers)

    def subscribe_detections(self) -> MemoryDetectionSubscription:
        """Subscribe to detections published from now on.

        Returns:
            The subscription (enter it to start receiving).
        """
        self._check()
        return MemoryDetectionSubscription(self._subscribers)

    def _expire(self) -> None:
        now = self._clock()
        for trace_id in [t for t, (_, expires) in self._states.items() if expires <= now]:
            del self._states[trace_id]

    def _check(self) -> None:
        if self._closed:
            raise StoreError("the memory hot state is closed")


class MemoryDetectionSubscription:
    """Detections handed to a memory hot state after entering, as an async iterator.

    Args:
        subscribers: The hot state's set of subscriber queues.
    """

    def __init__(self, subscribers: set[asyncio.Queue[Detection]]) -> None:
        self._subscribers = subscribers
        self._queue: asyncio.Queue[Detection] = asyncio.Queue()

    async def __aenter__(self) -> Self:
        self._subscribers.add(self._queue)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._subscribers.discard(self._queue)

    def __aiter__(self) -> AsyncIterator[Detection]:
        return self._detections()

    async def _detections(self) -> AsyncIterator[Detection]:
        while True:
            yield await self._queue.get()
