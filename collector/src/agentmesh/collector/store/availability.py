"""Whether the store answers, and writes held and retried while it does not.

A store that cannot be reached (:class:`~agentmesh.core.errors.StoreUnavailableError`: a
Postgres restart, a fail-over, a network cut) is waited for, not written off: the pipeline's
write is tried again after a growing, jittered wait (0.25 s doubling up to 5 s) until it
succeeds. Meanwhile the batches behind it stay in the pipeline's bounded queue; once it is
full the receivers answer ``UNAVAILABLE`` / ``503`` with ``Retry-After`` and the exporters
keep the data and retry, so a store outage costs latency, not spans. Any other store error
(a refused value, a full disk) is the caller's to handle: trying again would fail the same.

The first failure logs ``store unavailable`` once; the first success after it logs how long
the store was away. :attr:`StoreAvailability.available` feeds the collector's readiness.

Writes only find out while there are writes: :class:`StoreProbe` asks a store kept elsewhere
(PostgreSQL) with a cheap read, every few seconds while no write went through, whether it
still answers, so a database lost while no span arrives is reported too (and its return,
without waiting for traffic that a collector reported not ready does not get).

Example:
    >>> import asyncio
    >>> from agentmesh.core.errors import StoreUnavailableError
    >>> calls = []
    >>> async def flaky() -> str:
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise StoreUnavailableError("cannot reach PostgreSQL at db:5432")
    ...     return "stored"
    >>> async def main() -> tuple[str, int]:
    ...     availability = StoreAvailability(sleep=lambda _: asyncio.sleep(0))
    ...     return await availability.until_stored(flaky), availability.retries
    >>> asyncio.run(main())
    ('stored', 2)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Self, TypeVar

from agentmesh.collector.forward.retry import RetryPolicy
from agentmesh.core.errors import StoreError, StoreUnavailableError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait

__all__ = ["StoreAvailability", "StoreProbe"]

log = get_logger(__name__)

_T = TypeVar("_T")


class StoreAvailability:
    """Runs store writes until they succeed while the store is unavailable.

    Args:
        initial_seconds: Ceiling of the first wait between attempts.
        max_wait_seconds: Largest ceiling of one wait.
        sleep: Waits a number of seconds (``asyncio.sleep``; tests pass a fake).
    """

    def __init__(
        self,
        *,
        initial_seconds: float = 0.25,
        max_wait_seconds: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._policy = RetryPolicy(
            max_seconds=math.inf,
            initial_seconds=initial_seconds,
            max_backoff_seconds=max_wait_seconds,
        )
        self._sleep = sleep
        self._down_since: float | None = None
        self._retries = 0

    @property
    def available(self) -> bool:
        """Whether the last store call succeeded (or none failed as unavailable yet)."""
        return self._down_since is None

    @property
    def unavailable_seconds(self) -> float | None:
        """How long the store has been unavailable, or ``None`` while it answers."""
        if self._down_since is None:
            return None
        return time.monotonic() - self._down_since

    @property
    def retries(self) -> int:
        """Writes tried again because the store was unavailable."""
        return self._retries

    def unavailable(self, exc: StoreUnavailableError) -> None:
        """Note a call that found the store unavailable (logged once per outage).

        Args:
            exc: What the store raised.
        """
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("store unavailable; holding the data and trying again", error=str(exc))

    def answered(self) -> None:
        """Note a call the store answered (ends an outage, logging how long it lasted)."""
        if self._down_since is not None:
            away = time.monotonic() - self._down_since
            self._down_since = None
            log.info("store available again", unavailable_seconds=round(away, 1))

    async def until_stored(
        self,
        write: Callable[[], Awaitable[_T]],
        *,
        waiting: Callable[[], Awaitable[None]] | None = None,
    ) -> _T:
        """Run ``write``; while it finds the store unavailable, wait and run it again.

        Args:
            write: Makes the store call (called again for each attempt: it must be
                idempotent, as every store write is).
            waiting: Awaited once, at the first failure, before waiting (the pipeline
                announces the detections it holds).

        Returns:
            What the successful call returned.

        Raises:
            StoreError: The store failed some other way (not retried).
        """
        attempt = 0
        while True:
            try:
                result = await write()
            except StoreUnavailableError as exc:
                self.unavailable(exc)
                if attempt == 0 and waiting is not None:
                    await waiting()
                attempt += 1
                self._retries += 1
                await self._sleep(self._policy.delay(attempt))
                continue
            self.answered()
            return result


_DOWN_RECHECK_SECONDS: Final = 2.0
"""Most seconds between two checks while the store does not answer (its return shows soon;
the pipeline checks on an unavailable store as often)."""


def _consume(future: asyncio.Future[object]) -> None:
    """Retrieve a future's outcome, so an ending it was not awaited for is not reported."""
    if not future.cancelled():
        future.exception()  # pyright: ignore[reportUnusedCallResult]


class StoreProbe:
    """Checks, while no write shows it, that a store kept elsewhere still answers.

    An async context manager owning one task: every ``interval_seconds`` it looks whether
    store writes went through since its last look (``activity`` grew: the store answered
    them) and, if none did, runs ``check`` (a cheap read) for at most ``timeout_seconds``. A
    check that finds the store unavailable (:class:`~agentmesh.core.errors.StoreUnavailableError`,
    or no answer in time) makes :attr:`available` false, logged once; while it is, the checks
    come every 2 s at most, and the first check that gets an answer, or the first write
    that goes through, makes it true again (logged with how long the store was away). Any
    other :class:`~agentmesh.core.errors.StoreError` of a check is an answer (a refusal the
    writes will report), logged once until a check succeeds.

    Example:
        >>> import asyncio
        >>> async def down() -> None:
        ...     raise StoreUnavailableError("cannot reach PostgreSQL at db:5432")
        >>> async def main() -> bool:
        ...     async with StoreProbe(down, interval_seconds=60) as probe:
        ...         await probe.check()
        ...         return probe.available
        >>> asyncio.run(main())
        False

    Args:
        check: Reads something cheap from the store (called for each check; what it returns
            is dropped).
        interval_seconds: Seconds between two looks, while the store answers.
        timeout_seconds: How long a check may wait for the store; ``interval_seconds`` by
            default.
        activity: A count that grows with each store write that went through (a check is
            skipped when it grew since the last look); none by default.
        sleep: Waits a number of seconds (``asyncio.sleep``; tests pass a fake).

    Raises:
        ValueError: ``interval_seconds`` or ``timeout_seconds`` is not positive.
    """

    def __init__(
        self,
        check: Callable[[], Awaitable[object]],
        *,
        interval_seconds: float,
        timeout_seconds: float | None = None,
        activity: Callable[[], int] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        timeout = interval_seconds if timeout_seconds is None else timeout_seconds
        if interval_seconds <= 0 or timeout <= 0:
            raise ValueError("the store check's interval and timeout must be positive")
        self._check = check
        self._interval = interval_seconds
        self._timeout = timeout
        self._activity = activity
        self._sleep = sleep
        self._down_since: float | None = None
        self._reason: str | None = None
        self._checks = 0
        self._failures = 0
        self._error_logged = False
        self._task: asyncio.Task[None] | None = None
        self._asking: asyncio.Future[object] | None = None  # the check's call, maybe stuck

    @property
    def available(self) -> bool:
        """Whether the store answered the last check (or a later write), or none failed yet."""
        return self._down_since is None

    @property
    def reason(self) -> str | None:
        """Why the last check failed while the store is unavailable, else ``None``."""
        return self._reason

    @property
    def checks(self) -> int:
        """Checks run so far."""
        return self._checks

    @property
    def failures(self) -> int:
        """Checks that found the store unavailable."""
        return self._failures

    async def __aenter__(self) -> Self:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-probe")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        asking, self._asking = self._asking, None
        if asking is not None and not asking.done():
            # A call stuck on a store that does not answer ends when the store is closed: its
            # owner closes it next, so waiting here for longer than a check would never end.
            asking.cancel()
            await asyncio.wait({asking}, timeout=self._timeout)
            asking.add_done_callback(_consume)

    async def check(self) -> bool:
        """Ask the store now.

        Returns:
            :attr:`available` after the check.
        """
        self._checks += 1
        no_answer = f"the store did not answer within {self._timeout:g} s"
        stuck = self._asking
        if stuck is not None and not stuck.done():
            # The call a previous check gave up on has not ended yet: no new call behind it.
            await asyncio.wait({stuck}, timeout=self._timeout)
            if not stuck.done():
                self._unavailable(no_answer)
                return self.available
        asking = self._asking = asyncio.ensure_future(self._check())
        # Not asyncio.timeout around the call: a driver may take long to give up a cancelled
        # call (asyncpg resets the connection it used), and the verdict must not wait for it.
        await asyncio.wait({asking}, timeout=self._timeout)
        if not asking.done():
            asking.cancel()  # ends in its own time; the next check waits for it first
            self._unavailable(no_answer)
            return self.available
        self._asking = None
        try:
            asking.result()
        except asyncio.CancelledError:
            self._unavailable(no_answer)
        except StoreUnavailableError as exc:
            self._unavailable(str(exc))
        except Exception as exc:  # noqa: BLE001 - a refusal is an answer: writes will say more
            if not self._error_logged:
                self._error_logged = True
                log.warning("store check failed", error=str(exc), error_type=type(exc).__name__)
            if isinstance(exc, StoreError):
                self._answered()
        else:
            self._error_logged = False
            self._answered()
        return self.available

    async def _run(self) -> None:
        activity = self._activity
        seen = None if activity is None else activity()
        while True:
            wait = self._interval if self.available else min(self._interval, _DOWN_RECHECK_SECONDS)
            await self._sleep(wait)
            if activity is not None:
                now = activity()
                if now != seen:  # writes went through meanwhile: the store answers
                    seen = now
                    self._answered()
                    continue
            await self.check()

    def _unavailable(self, reason: str) -> None:
        self._failures += 1
        self._reason = reason
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("store unavailable: it does not answer the store check", error=reason)

    def _answered(self) -> None:
        if self._down_since is not None:
            away = time.monotonic() - self._down_since
            self._down_since = None
            self._reason = None
            log.info("store answers the store check again", unavailable_seconds=round(away, 1))
