"""Where the control document lives: :class:`ControlState`, and its in-memory backend.

Every change is a *change function*: it takes the current document and returns the next one
(its version is set by the backend), or ``None`` when there is nothing to change. A backend
applies it atomically: in memory trivially, in Redis inside a ``WATCH``/``MULTI`` transaction
retried on conflict, so two collectors never lose each other's updates
(:class:`~agentmesh.collector.recovery.redis_control_state.RedisControlState`).

Readers ask :attr:`ControlState.current` (the last known document, never blocks) or wait for a
newer one with :meth:`ControlState.wait_for` (the long poll of ``GET /v1/control``).

Example:
    >>> import asyncio
    >>> async def main() -> tuple[int, list[str]]:
    ...     async with MemoryControlState() as state:
    ...         waiter = asyncio.create_task(state.wait_for(0, wait_seconds=5))
    ...         stop = RunControl("stop", "det-1", "ping_pong", "A→B→A→B", None, 1.0)
    ...         await state.set_run("run-1", stop)
    ...         document = await waiter
    ...         return document.version, sorted(document.runs)
    >>> asyncio.run(main())
    (1, ['run-1'])
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Literal, Self

from agentmesh.collector.recovery.document import Breaker, ControlDocument, RunControl
from agentmesh.core.log import get_logger

__all__ = ["Change", "ControlState", "Expired", "MemoryControlState", "expiry", "needs_expiry"]

_log = get_logger(__name__)

Change = Callable[[ControlDocument], ControlDocument | None]
"""A change of the document: the next document (version ignored), or ``None`` for no change."""


Expired = tuple[Literal["half_open_breaker", "expire_breaker", "expire_run"], str]
"""What an expiry did: the kind of effect and the model or run it concerned."""


def expiry(
    now: float,
    *,
    run_ttl_seconds: float,
    half_open_ttl_seconds: float,
    effects: list[Expired] | None = None,
) -> Change:
    """The change time makes: breakers past ``until`` half-open, old runs and idle breakers go.

    Args:
        now: Unix seconds.
        run_ttl_seconds: Runs decided longer ago than this leave the document.
        half_open_ttl_seconds: A half-open breaker no call has closed or re-opened leaves the
            document this long after its ``until``.
        effects: Filled (replaced) with what the change did, each time it is applied.

    Returns:
        The change function.
    """

    def change(document: ControlDocument) -> ControlDocument | None:
        done: list[Expired] = []
        runs: dict[str, RunControl] = {}
        for run_id, run in document.runs.items():
            if run.at + run_ttl_seconds > now:
                runs[run_id] = run
            else:
                done.append(("expire_run", run_id))
        breakers: dict[str, Breaker] = {}
        for model, breaker in document.breakers.items():
            if now >= breaker.until + half_open_ttl_seconds:
                done.append(("expire_breaker", model))
                continue
            if breaker.state == "open" and now >= breaker.until:
                breaker = replace(breaker, state="half_open")
                done.append(("half_open_breaker", model))
            breakers[model] = breaker
        if effects is not None:
            effects[:] = done
        if not done:
            return None
        return ControlDocument(document.version, runs, breakers)

    return change


def needs_expiry(
    document: ControlDocument, now: float, *, run_ttl_seconds: float, half_open_ttl_seconds: float
) -> bool:
    """Whether :func:`expiry` would change the document (checked without the backend).

    Args:
        document: The document.
        now: Unix seconds.
        run_ttl_seconds: See :func:`expiry`.
        half_open_ttl_seconds: See :func:`expiry`.

    Returns:
        ``True`` when a run or breaker is due.
    """
    return any(run.at + run_ttl_seconds <= now for run in document.runs.values()) or any(
        (breaker.state == "open" and now >= breaker.until)
        or now >= breaker.until + half_open_ttl_seconds
        for breaker in document.breakers.values()
    )


class ControlState(ABC):
    """The control document store: atomic changes, change notices, long polls.

    Use it as an async context manager (or :meth:`open` / :meth:`close`).
    """

    def __init__(self) -> None:
        self._current = ControlDocument()
        self._changed = asyncio.Event()

    @property
    def current(self) -> ControlDocument:
        """The last known document (never waits; may lag another collector's change briefly)."""
        return self._current

    @abstractmethod
    async def open(self) -> Self:
        """Start the store (connect, subscribe to change notices); never raises for a dead backend.

        Returns:
            The store.
        """

    @abstractmethod
    async def close(self) -> None:
        """Stop the store. Closing twice is harmless."""

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def get(self) -> ControlDocument:
        """Read the document from the backend (the last known one when the backend fails).

        Returns:
            The document.
        """
        return self._current

    @abstractmethod
    async def update(self, change: Change) -> bool:
        """Apply a change atomically (fail-open: kept locally when the backend is down).

        Args:
            change: The change function; it may be called more than once (on conflicts), so it
                must not have side effects beyond recording what it decided.

        Returns:
            Whether the document changed (its version increased).
        """

    async def set_run(self, run_id: str, control: RunControl) -> bool:
        """List a run, or add a decision to its entry (see :meth:`RunControl.listing`).

        A ``stop`` already listed is kept (a later finding does not replace it); every warning
        is kept in the entry's ``warnings``, so several warnings decided together all reach
        the application. A detection already listed changes nothing.

        Args:
            run_id: The run.
            control: What the run must do.

        Returns:
            Whether the document changed.
        """

        def change(document: ControlDocument) -> ControlDocument | None:
            listed = document.runs.get(run_id)
            entry = RunControl.first(control) if listed is None else listed.listing(control)
            if entry is None or entry == listed:
                return None
            return replace(document, runs={**document.runs, run_id: entry})

        return await self.update(change)

    async def clear_run(self, run_id: str) -> bool:
        """Remove a run from the document.

        Args:
            run_id: The run.

        Returns:
            Whether it was listed.
        """

        def change(document: ControlDocument) -> ControlDocument | None:
            if run_id not in document.runs:
                return None
            runs = {key: value for key, value in document.runs.items() if key != run_id}
            return replace(document, runs=runs)

        return await self.update(change)

    async def open_breaker(self, model: str, breaker: Breaker) -> bool:
        """Set (open, re-open or replace) the breaker of a model.

        Args:
            model: The model.
            breaker: Its breaker.

        Returns:
            Whether the document changed.
        """

        def change(document: ControlDocument) -> ControlDocument | None:
            if document.breakers.get(model) == breaker:
                return None
            return replace(document, breakers={**document.breakers, model: breaker})

        return await self.update(change)

    async def close_breaker(self, model: str) -> bool:
        """Remove the breaker of a model (applications may choose it freely again).

        Args:
            model: The model.

        Returns:
            Whether it had a breaker.
        """

        def change(document: ControlDocument) -> ControlDocument | None:
            if model not in document.breakers:
                return None
            breakers = {key: value for key, value in document.breakers.items() if key != model}
            return replace(document, breakers=breakers)

        return await self.update(change)

    async def expire(
        self,
        now: float,
        *,
        run_ttl_seconds: float = 3600.0,
        half_open_ttl_seconds: float = 600.0,
    ) -> bool:
        """Let time pass: half-open breakers past ``until``, drop old runs and idle breakers.

        Args:
            now: Unix seconds.
            run_ttl_seconds: Runs decided longer ago than this leave the document.
            half_open_ttl_seconds: A half-open breaker no call has closed or re-opened leaves
                the document this long after its ``until``.

        Returns:
            Whether the document changed.
        """
        change = expiry(
            now, run_ttl_seconds=run_ttl_seconds, half_open_ttl_seconds=half_open_ttl_seconds
        )
        return await self.update(change)

    async def wait_for(self, after: int, wait_seconds: float) -> ControlDocument | None:
        """Wait until the document's version is above ``after`` (a long poll).

        A caller ahead of the store (``after`` above the current version: the document was
        reset, or it learnt a version this collector has not seen) gets the document at once,
        after a fresh read from the backend.

        Args:
            after: The version the caller has.
            wait_seconds: Longest wait.

        Returns:
            The newer document, or ``None`` when the wait ran out.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait_seconds)
        if self._current.version < after:
            document = await self.get()
            if document.version != after:
                return document
        while True:
            document = self._current
            if document.version > after:
                return document
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            changed = self._changed
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                return self._current if self._current.version > after else None

    def _set_current(self, document: ControlDocument) -> None:
        """Make ``document`` the current one and wake the long polls (if it differs)."""
        if document == self._current:
            return
        self._current = document
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class MemoryControlState(ControlState):
    """A control document in this process only (one collector, tests)."""

    async def open(self) -> Self:
        """Nothing to start.

        Returns:
            The store.
        """
        return self

    async def close(self) -> None:
        """Nothing to stop."""

    async def update(self, change: Change) -> bool:
        """Apply a change.

        Args:
            change: The change function.

        Returns:
            Whether the document changed.
        """
        current = self._current
        following = change(current)
        if following is None:
            return False
        self._set_current(replace(following, version=current.version + 1))
        _log.debug("control document changed", version=current.version + 1)
        return True
