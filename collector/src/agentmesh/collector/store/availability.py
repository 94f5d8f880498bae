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
from typing import TypeVar

from agentmesh.collector.forward.retry import RetryPolicy
from agentmesh.core.errors import StoreUnavailableError
from agentmesh.core.log import get_logger

__all__ = ["StoreAvailability"]

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
