"""When a forwarded request is retried, and how long to wait.

Retries follow the OpenTelemetry Collector's exporters: connection errors, timeouts and HTTP
429, 502, 503 and 504 are retried; other answers are final. The wait grows exponentially with
full jitter, unless the endpoint said how long in ``Retry-After`` (seconds or an HTTP date),
which is honoured as given. A request is given up once its retries would outlast the budget.

Example:
    >>> policy = RetryPolicy(max_seconds=30.0)
    >>> policy.delay(attempt=3, retry_after=7.0)
    7.0
    >>> 0.0 <= policy.delay(attempt=1) <= 0.5
    True
    >>> parse_retry_after("2"), parse_retry_after("soon")
    (2.0, None)
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "parse_retry_after"]

RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})
"""HTTP statuses a forwarded request is retried on."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, within a total time budget.

    Attributes:
        max_seconds: Longest time a request may spend waiting between attempts, in total.
        initial_seconds: Ceiling of the first wait.
        max_backoff_seconds: Largest ceiling of any one computed wait.
    """

    max_seconds: float
    initial_seconds: float = 0.5
    max_backoff_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """How long to wait before the next attempt.

        Args:
            attempt: Attempts made so far (1 after the first failure).
            retry_after: What the endpoint asked for (``Retry-After``), if anything.

        Returns:
            Seconds: ``retry_after`` when given, else a random wait up to
            ``initial_seconds * 2 ** (attempt - 1)`` (capped by ``max_backoff_seconds``).
        """
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.max_backoff_seconds, self.initial_seconds * 2 ** max(0, attempt - 1))
        return random.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds or an HTTP date.

    Args:
        value: The header's value, if present.
        now: The current Unix time, for dates (``time.time()`` by default).

    Returns:
        Seconds to wait (0 for a date in the past), or ``None`` when absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
