"""A small jittered exponential backoff (the instrumentation does not depend on tenacity).

Each failure doubles the delay up to a cap; the delay actually waited is drawn between half and
all of it ("equal jitter"), so many apps that lost the same collector do not come back in step.

Example:
    >>> import random
    >>> b = Backoff(initial_s=1.0, maximum_s=4.0, rng=random.Random(0))
    >>> [0.5 <= b.next_delay() <= 1.0, 1.0 <= b.next_delay() <= 2.0]
    [True, True]
    >>> all(2.0 <= b.next_delay() <= 4.0 for _ in range(5))
    True
    >>> b.reset(); b.failures
    0
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays to wait after consecutive failures.

    Args:
        initial_s: Delay after the first failure (before jitter).
        maximum_s: Largest delay (before jitter).
        factor: Growth per failure.
        rng: The random source; a private one by default.

    Raises:
        ValueError: A delay is not positive, or ``factor`` is below 1.
    """

    def __init__(
        self,
        initial_s: float = 0.5,
        maximum_s: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial_s <= 0 or maximum_s < initial_s or factor < 1:
            raise ValueError("backoff: need 0 < initial_s <= maximum_s and factor >= 1")
        self._initial = initial_s
        self._maximum = maximum_s
        self._factor = factor
        self._rng = rng if rng is not None else random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Consecutive failures since the last :meth:`reset`."""
        return self._failures

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait.

        Returns:
            Seconds, between half and all of ``min(maximum, initial * factor ** failures)``.
        """
        ceiling = min(self._maximum, self._initial * self._factor ** min(self._failures, 64))
        self._failures += 1
        return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)

    def reset(self) -> None:
        """Forget the failures (after a success)."""
        self._failures = 0
