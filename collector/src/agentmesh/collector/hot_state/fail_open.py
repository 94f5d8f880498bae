"""Keep the collector running when its hot state (Redis) is down: log, count, back off.

:class:`FailOpenHotState` wraps any :class:`~agentmesh.collector.hot_state.base.HotState`.
A call that fails is logged (a warning for the first failure, then quietly until it works
again) and counted, and answers as if there were nothing to report (``None``, ``[]``, ``0``).
After a failure, calls are skipped for ``retry_after_seconds`` so a dead or slow Redis costs the
pipeline at most one timeout per back-off period, not one per batch.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.graph.run_graph import RunGraph
    >>> from agentmesh.collector.hot_state.redis_state import RedisHotState
    >>> async def main() -> tuple[int, int]:
    ...     dead = RedisHotState("redis://127.0.0.1:1/0", timeout_seconds=0.5)
    ...     async with FailOpenHotState(dead) as hot:
    ...         await hot.update_run(RunState.from_graph(RunGraph("a" * 32, "run-a")))
    ...         return hot.health.failures, hot.health.skipped
    >>> asyncio.run(main())  # the open failed, then the update was skipped during back-off
    (1, 1)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

from agentmesh.collector.detection import Detection
from agentmesh.collector.hot_state.base import DetectionSubscription, HotState, RunState
from agentmesh.core.log import get_logger

__all__ = ["FailOpenHotState", "HotStateHealth"]

_log = get_logger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class HotStateHealth:
    """How the wrapped hot state is doing.

    Attributes:
        calls: Calls attempted.
        failures: Calls that failed.
        skipped: Calls not attempted because of a recent failure.
        last_error: The latest failure's message, or ``None``.
        available: Whether the last attempt worked (or none failed yet).
    """

    calls: int
    failures: int
    skipped: int
    last_error: str | None
    available: bool


class FailOpenHotState:
    """A :class:`~agentmesh.collector.hot_state.base.HotState` whose failures never propagate.

    :meth:`subscribe_detections` is passed through unchanged: a consumer of detections wants
    to know when it cannot receive them.

    Args:
        inner: The hot state to protect.
        retry_after_seconds: How long to skip calls after a failure.
        clock: Monotonic clock in seconds.
    """

    def __init__(
        self,
        inner: HotState,
        *,
        retry_after_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._retry_after = retry_after_seconds
        self._clock = clock
        self._calls = 0
        self._failures = 0
        self._skipped = 0
        self._last_error: str | None = None
        self._down_until: float | None = None

    @property
    def inner(self) -> HotState:
        """The wrapped hot state."""
        return self._inner

    @property
    def health(self) -> HotStateHealth:
        """Counters and the latest failure."""
        return HotStateHealth(
            calls=self._calls,
            failures=self._failures,
            skipped=self._skipped,
            last_error=self._last_error,
            available=self._down_until is None,
        )

    async def open(self) -> Self:
        """Open the wrapped hot state; a failure is logged and counted, not raised.

        Returns:
            The wrapper.
        """
        await self._guard("open", lambda: self._inner.open(), None)
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
        """Close the wrapped hot state (a failure is logged)."""
        try:
            await self._inner.close()
        except Exception as exc:  # noqa: BLE001 - closing must not raise either
            _log.warning("hot state did not close cleanly", reason=str(exc))

    async def update_run(self, state: RunState) -> None:
        """Record a run's latest state, unless the hot state is failing.

        Args:
            state: The state.
        """
        await self._guard("update_run", lambda: self._inner.update_run(state), None)

    async def run(self, trace_id: str) -> RunState | None:
        """Read a run's latest state.

        Args:
            trace_id: The trace.

        Returns:
            The state; ``None`` when unknown, expired, or the hot state is failing.
        """
        return await self._guard("run", lambda: self._inner.run(trace_id), None)

    async def live_runs(self, limit: int | None = None) -> list[RunState]:
        """List the live runs, most recently updated first.

        Args:
            limit: Most runs returned; all when ``None``.

        Returns:
            Their states; empty when the hot state is failing.
        """
        return await self._guard("live_runs", lambda: self._inner.live_runs(limit), [])

    async def publish_detection(self, detection: Detection) -> int:
        """Publish a detection, unless the hot state is failing.

        Args:
            detection: The detection.

        Returns:
            How many subscribers received it (0 when failing).
        """
        return await self._guard(
            "publish_detection", lambda: self._inner.publish_detection(detection), 0
        )

    def subscribe_detections(self) -> DetectionSubscription:
        """Subscribe through the wrapped hot state (its errors are raised).

        Returns:
            The subscription.
        """
        return self._inner.subscribe_detections()

    async def _guard(self, what: str, call: Callable[[], Awaitable[_T]], default: _T) -> _T:
        now = self._clock()
        if self._down_until is not None and now < self._down_until:
            self._skipped += 1
            return default
        self._calls += 1
        try:
            result = await call()
        except Exception as exc:  # noqa: BLE001 - fail-open: logged and counted, never raised
            self._failures += 1
            self._last_error = str(exc)
            first = self._down_until is None
            self._down_until = self._clock() + self._retry_after
            if first:
                _log.warning(
                    "hot state unavailable; carrying on without it",
                    call=what,
                    reason=str(exc),
                    retry_after_seconds=self._retry_after,
                )
            else:
                _log.debug("hot state still unavailable", call=what, reason=str(exc))
            return default
        if self._down_until is not None:
            _log.info("hot state available again", failures=self._failures)
            self._down_until = None
        return result
