"""Keep the collector running when its hot state (Redis) is down: log, count, back off, catch up.

:class:`FailOpenHotState` wraps any :class:`~agentmesh.collector.hot_state.base.HotState`.
A call that fails is logged (a warning for the first failure, then quietly until it works
again) and counted, and answers as if there were nothing to report (``None``, ``[]``, ``0``).
After a failure, calls are skipped for ``retry_after_seconds`` so a dead or slow Redis costs the
pipeline at most one timeout per back-off period, not one per batch.

Run states are not lost with the calls: the latest state of each run whose update failed or
was skipped is kept (at most ``max_pending_runs`` runs, the least recently changed dropped
first, counted and logged once per outage), and a task of the wrapper's own re-publishes them
once Redis answers again, so the run states and the live-run index catch up without waiting
for the runs to change again. That task is also what finds out Redis is back (one attempt per
back-off period), so the pipeline never waits for it.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.graph.run_graph import RunGraph
    >>> from agentmesh.collector.hot_state.redis_state import RedisHotState
    >>> async def main() -> tuple[int, int, int]:
    ...     dead = RedisHotState("redis://127.0.0.1:1/0", timeout_seconds=0.5)
    ...     async with FailOpenHotState(dead) as hot:
    ...         await hot.update_run(RunState.from_graph(RunGraph("a" * 32, "run-a")))
    ...         health = hot.health
    ...         return health.failures, health.skipped, health.pending_runs
    >>> asyncio.run(main())  # the open failed, then the update was kept for later
    (1, 1, 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal, Self, TypeVar

from agentmesh.collector.detection import Detection
from agentmesh.collector.hot_state.base import (
    DetectionSubscription,
    HotState,
    RepublishesRuns,
    RunState,
)
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait

__all__ = ["FailOpenHotState", "HotStateHealth"]

_log = get_logger(__name__)
_T = TypeVar("_T")

DEFAULT_MAX_PENDING_RUNS: Final = 10_000
"""Runs whose latest state is kept for re-publication at most (about 1 KiB each)."""


class _NotDone(enum.Enum):
    """The call was skipped or failed."""

    NOT_DONE = enum.auto()


_NOT_DONE: Final = _NotDone.NOT_DONE


@dataclass(frozen=True, slots=True)
class HotStateHealth:
    """How the wrapped hot state is doing.

    Attributes:
        calls: Calls attempted (re-publications included).
        failures: Calls that failed.
        skipped: Calls not attempted because of a recent failure (or while one call finds
            out whether the hot state is back).
        last_error: The latest failure's message, or ``None``.
        available: Whether the last attempt worked (or none failed yet).
        pending_runs: Runs whose latest state waits to be re-published (or is being
            written): 0 once the hot state caught up.
        republished: Run states re-published after their update failed or was skipped.
        runs_not_kept: Runs whose state was dropped instead of kept for re-publication (over
            ``max_pending_runs``, the least recently changed first); their entry in the hot
            state stays as it was until the run changes again or expires.
    """

    calls: int
    failures: int
    skipped: int
    last_error: str | None
    available: bool
    pending_runs: int = 0
    republished: int = 0
    runs_not_kept: int = 0


class FailOpenHotState:
    """A :class:`~agentmesh.collector.hot_state.base.HotState` whose failures never propagate.

    :meth:`subscribe_detections` is passed through unchanged: a consumer of detections wants
    to know when it cannot receive them.

    The run states kept while the hot state fails are re-published by a task that
    :meth:`open` starts and :meth:`close` ends (use the wrapper as an async context manager):
    the latest state of each run, oldest change first, each as soon as the back-off period is
    over and as long as the calls work. A state that waited longer than the backend keeps a
    run (see :class:`~agentmesh.collector.hot_state.base.RepublishesRuns`) removes the run
    instead, as its time to live would have.

    Args:
        inner: The hot state to protect.
        retry_after_seconds: How long to skip calls after a failure.
        max_pending_runs: Most runs whose latest state is kept for re-publication.
        clock: Monotonic clock in seconds.

    Raises:
        ValueError: ``max_pending_runs`` is below 1.
    """

    def __init__(
        self,
        inner: HotState,
        *,
        retry_after_seconds: float = 5.0,
        max_pending_runs: int = DEFAULT_MAX_PENDING_RUNS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pending_runs < 1:
            raise ValueError(f"max_pending_runs must be at least 1, got {max_pending_runs}")
        self._inner = inner
        self._retry_after = retry_after_seconds
        self._max_pending = max_pending_runs
        self._clock = clock
        self._calls = 0
        self._failures = 0
        self._skipped = 0
        self._last_error: str | None = None
        self._down_until: float | None = None
        self._probing = False  # a call is finding out whether the hot state is back
        # trace -> (its latest state not written, when it was given): oldest change first
        self._pending: dict[str, tuple[RunState, float]] = {}
        self._replaying: str | None = None  # the trace whose state is being re-published
        self._republished = 0
        self._catching_up = 0  # re-published since the hot state was last caught up
        self._not_kept = 0
        self._not_kept_before = 0  # runs not kept before the current outage
        self._overflow_logged = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

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
            pending_runs=len(self._pending)
            + int(self._replaying is not None and self._replaying not in self._pending),
            republished=self._republished,
            runs_not_kept=self._not_kept,
        )

    async def open(self) -> Self:
        """Open the wrapped hot state (a failure is logged and counted, not raised).

        Starts the task that re-publishes the run states kept while the hot state fails.

        Returns:
            The wrapper.
        """
        await self._guard("open", lambda: self._inner.open(), None)
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._republish(), name="hot-state-republish")
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
        """Stop re-publishing and close the wrapped hot state (a failure is logged)."""
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._pending:
            _log.warning(
                "hot state closed before run states could be re-published",
                runs=len(self._pending),
            )
        try:
            await self._inner.close()
        except Exception as exc:  # noqa: BLE001 - closing must not raise either
            _log.warning("hot state did not close cleanly", reason=str(exc))

    async def update_run(self, state: RunState) -> None:
        """Record a run's latest state; kept for later when the hot state is failing.

        Args:
            state: The state.
        """
        trace_id = state.trace_id
        given = self._clock()
        if trace_id == self._replaying:  # an older state of it is being written: follow it
            self._keep(state, given)
            return
        self._pending.pop(trace_id, None)  # this one is newer
        done = await self._attempt("update_run", lambda: self._inner.update_run(state))
        if done is _NOT_DONE:
            self._keep(state, given, replace=False)  # a state given meanwhile is newer

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

    # --- run states kept while the hot state fails --------------------------------------------

    def _keep(self, state: RunState, given: float, *, replace: bool = True) -> None:
        """Keep a run's state for re-publication: the latest one per run, bounded."""
        pending = self._pending
        trace_id = state.trace_id
        if trace_id in pending:
            if not replace:
                return
            del pending[trace_id]  # to the end: the most recently changed
        elif len(pending) >= self._max_pending:
            del pending[next(iter(pending))]  # the least recently changed run
            self._not_kept += 1
            if not self._overflow_logged:
                self._overflow_logged = True
                _log.warning(
                    "hot state unavailable too long: states of the least recently changed runs "
                    "will not be re-published",
                    max_pending_runs=self._max_pending,
                )
        pending[trace_id] = (state, given)
        if len(pending) == 1:
            self._wake.set()  # the task waits for a first state to re-publish

    async def _republish(self) -> None:
        """Re-publish the kept states whenever the hot state may answer (the task's body)."""
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._blocked_for()
            if wait is not None:
                self._wake.clear()  # set again by a call that finds the hot state back
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            await self._republish_next()
            await asyncio.sleep(0)  # the pipeline's calls go between two re-publications

    def _blocked_for(self) -> float | None:
        """Seconds to wait before the next call may be tried; ``None`` when it may be now."""
        if self._probing:
            return self._retry_after  # its outcome wakes the task
        if self._down_until is None:
            return None
        left = self._down_until - self._clock()
        return left if left > 0 else None

    async def _republish_next(self) -> None:
        trace_id = next(iter(self._pending))
        state, given = self._pending.pop(trace_id)
        inner = self._inner
        age = max(0.0, self._clock() - given)

        async def call() -> None:
            if isinstance(inner, RepublishesRuns):
                await inner.republish_run(state, age_seconds=age)
            else:
                await inner.update_run(state)

        self._replaying = trace_id
        try:
            done = await self._attempt("republish_run", call)
        finally:
            self._replaying = None
        if done is _NOT_DONE:
            self._keep(state, given, replace=False)  # a state given meanwhile is newer
            return
        self._republished += 1
        self._catching_up += 1
        if not self._pending:
            _log.info(
                "hot state caught up: run states re-published",
                runs=self._catching_up,
                runs_not_kept=self._not_kept - self._not_kept_before,
            )
            self._catching_up = 0
            self._not_kept_before = self._not_kept
            self._overflow_logged = False

    # --- calls ----------------------------------------------------------------------------------

    async def _guard(self, what: str, call: Callable[[], Awaitable[_T]], default: _T) -> _T:
        result = await self._attempt(what, call)
        return default if result is _NOT_DONE else result

    async def _attempt(
        self, what: str, call: Callable[[], Awaitable[_T]]
    ) -> _T | Literal[_NotDone.NOT_DONE]:
        """Make the call unless the hot state is failing; ``_NOT_DONE`` when skipped or failed."""
        if self._probing or (self._down_until is not None and self._clock() < self._down_until):
            self._skipped += 1
            return _NOT_DONE
        self._calls += 1
        probing = self._down_until is not None
        self._probing = probing
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
            return _NOT_DONE
        finally:
            if probing:
                self._probing = False
                self._wake.set()  # the task waits for the outcome
        if self._down_until is not None:
            _log.info("hot state available again", failures=self._failures)
            self._down_until = None
            self._wake.set()
        return result
