"""Local cooldowns: models this process stops sending calls to after a retryable error.

The collector's circuit breakers protect the whole fleet, but they need evidence and a round
trip (spans exported, a detection, the control document long-polled back). Until then each call
would try the failing model first and pay one failed request. A :class:`CooldownTable` closes
that gap inside the process: the first retryable error (429, 408, 5xx, connection error,
timeout) of a model cools it down for the provider's ``retry-after`` (see
:func:`retry_after_seconds`), else for the configured cooldown, and routing treats it like an
open circuit meanwhile.

::

    (none) --failure--> cooling --cooldown passes--> half-open --probe succeeds--> (none)
                           ^                             |
                           +---probe fails: cooldown doubled (capped)---+

Half-open, one call at a time may probe the model (:meth:`CooldownTable.admit` grants a lease,
which lapses after ``probe_timeout_s`` if no outcome is reported); the others keep avoiding it
until the probe succeeds. Every cooldown is bounded to ``[min_s, max_s]``, and the table holds
at most ``capacity`` models (the one whose cooldown ends soonest is dropped first). Thread-safe;
the hot path (:meth:`CooldownTable.avoid` on an empty table) takes no lock.

Example:
    >>> now = [0.0]
    >>> table = CooldownTable(30.0, clock=lambda: now[0])
    >>> table.record_failure("gpt-4o", retry_after_s=2.0)
    2.0
    >>> sorted(table.avoid())
    ['gpt-4o']
    >>> now[0] = 2.5  # half-open: one probe may go
    >>> sorted(table.avoid()), table.admit("gpt-4o"), table.admit("gpt-4o")
    ([], True, False)
    >>> table.record_failure("gpt-4o")  # the probe failed: doubled
    4.0
    >>> table.record_success("gpt-4o"), len(table)
    (True, 0)
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, cast

from agentmesh.core.errors import ConfigError
from agentmesh.core.log import get_logger

__all__ = ["CooldownState", "CooldownTable", "retry_after_seconds"]

_log = get_logger(__name__)

_NONE: Final[frozenset[str]] = frozenset()


def _header(headers: object, name: str) -> str | None:
    """Read one header, case-insensitively, from httpx/requests headers or a plain mapping."""
    getter = getattr(headers, "get", None)
    if not callable(getter):
        return None
    value: object = getter(name)
    if value is None and isinstance(headers, Mapping):
        for key, item in cast("Mapping[object, object]", headers).items():
            if isinstance(key, str) and key.lower() == name:
                value = item
                break
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def retry_after_seconds(exc: BaseException, now: float | None = None) -> float | None:
    """Return how long a provider asked to wait, from an SDK error's response headers.

    ``retry-after-ms`` (milliseconds, sent by OpenAI) wins over ``retry-after`` (seconds, or an
    HTTP date). The headers are read from ``exc.response.headers`` (OpenAI and Anthropic SDK
    errors, httpx errors) or ``exc.headers``; no SDK is imported. The value is not bounded
    here (:meth:`CooldownTable.record_failure` bounds it).

    Args:
        exc: The error the SDK raised.
        now: The wall-clock time for an HTTP date, in seconds since the epoch; now by default.

    Returns:
        Seconds (a date in the past gives a value of 0 or below), or ``None`` when the error
        carries no readable header.

    Example:
        >>> class Response:
        ...     headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}
        >>> class Limited(Exception):
        ...     response = Response()
        >>> retry_after_seconds(Limited(), now=1445412480.0)
        10.0
    """
    headers: object = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    if headers is None:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            found = _finite(float(millis) / 1000.0)
        except ValueError:
            found = None
        if found is not None:
            return found
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return _finite(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - (time.time() if now is None else now)


@dataclass(frozen=True, slots=True)
class CooldownState:
    """What the table knows of one model (for inspection and tests).

    Attributes:
        model: The model.
        remaining_s: Seconds until the cooldown ends (0 once half-open).
        cooldown_s: Length of the current cooldown.
        failures: Failures counted since the model last succeeded.
        half_open: Whether the cooldown has passed (a probe may go, or is on its way).
        probing: Whether a probe holds the lease now.
    """

    model: str
    remaining_s: float
    cooldown_s: float
    failures: int
    half_open: bool
    probing: bool


class _Entry:
    __slots__ = ("cooldown_s", "failures", "probe_until", "until")

    def __init__(self, until: float, cooldown_s: float) -> None:
        self.until = until
        self.cooldown_s = cooldown_s
        self.failures = 1
        self.probe_until = 0.0  # a probe's lease ends then (0: no probe on its way)


class CooldownTable:
    """Models cooling down in this process after a retryable error; thread-safe and bounded.

    Args:
        cooldown_s: Cooldown when the provider sends no ``retry-after``; 0 disables the table
            (nothing is ever recorded).
        min_s: Shortest cooldown (a smaller ``retry-after`` is raised to it).
        max_s: Longest cooldown (``retry-after`` and doubling are capped to it).
        capacity: Most models remembered.
        probe_timeout_s: How long a half-open probe's lease lasts without an outcome.
        clock: Monotonic seconds.

    Raises:
        ConfigError: A bound is negative or ``min_s`` exceeds ``max_s``.
    """

    def __init__(
        self,
        cooldown_s: float = 30.0,
        *,
        min_s: float = 1.0,
        max_s: float = 300.0,
        capacity: int = 256,
        probe_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cooldown_s < 0 or min_s <= 0 or max_s < min_s or capacity < 1 or probe_timeout_s <= 0:
            raise ConfigError(
                "routing cooldowns: need cooldown_s >= 0, 0 < min_s <= max_s, capacity >= 1 "
                f"and probe_timeout_s > 0 (got {cooldown_s}, {min_s}, {max_s}, {capacity}, "
                f"{probe_timeout_s})"
            )
        self._base = min(max(cooldown_s, min_s), max_s) if cooldown_s > 0 else 0.0
        self._min = min_s
        self._max = max_s
        self._capacity = capacity
        self._probe_timeout = probe_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @property
    def enabled(self) -> bool:
        """Whether failures are recorded (``cooldown_s`` above 0)."""
        return self._base > 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, model: object) -> bool:
        return model in self._entries

    def _bounded(self, seconds: float) -> float:
        return min(max(seconds, self._min), self._max)

    def record_failure(self, model: str, retry_after_s: float | None = None) -> float | None:
        """Cool a model down after a retryable error.

        A model not cooling starts a cooldown of ``retry_after_s`` (else the default one); a
        model still cooling is extended to at least that long from now; a half-open model (its
        probe failed) re-opens for twice its last cooldown (or ``retry_after_s`` if longer).
        Everything is bounded to ``[min_s, max_s]``.

        Args:
            model: The model that failed.
            retry_after_s: What the provider asked for, if it said.

        Returns:
            The model's cooldown now, in seconds; ``None`` when the table is disabled.
        """
        if not self._base or not model:
            return None
        asked = self._bounded(retry_after_s) if retry_after_s is not None else None
        now = self._clock()
        with self._lock:
            entry = self._entries.get(model)
            if entry is None:
                cooldown = asked if asked is not None else self._base
                if len(self._entries) >= self._capacity:
                    soonest = min(self._entries, key=lambda name: self._entries[name].until)
                    del self._entries[soonest]
                entry = self._entries[model] = _Entry(now + cooldown, cooldown)
                started = True
            elif now >= entry.until:  # half-open: the probe (or a late call) failed
                doubled = self._bounded(entry.cooldown_s * 2)
                cooldown = max(doubled, asked) if asked is not None else doubled
                entry.failures += 1
                entry.probe_until = 0.0
                entry.cooldown_s = cooldown
                entry.until = now + cooldown
                started = True
            else:  # still cooling: a call sent before the cooldown began
                entry.failures += 1
                if asked is not None and asked > entry.cooldown_s:
                    entry.cooldown_s = asked
                extend = asked if asked is not None else entry.cooldown_s
                entry.until = max(entry.until, now + extend)
                cooldown = entry.cooldown_s
                started = False
            failures = entry.failures
        if started:
            _log.info("routing.cooldown", model=model, seconds=cooldown, failures=failures)
        return cooldown

    def record_success(self, model: str) -> bool:
        """Forget a model's cooldown after a call to it succeeded.

        Args:
            model: The model that answered.

        Returns:
            Whether it was cooling down or half-open.
        """
        if model not in self._entries:
            return False
        with self._lock:
            entry = self._entries.pop(model, None)
        if entry is not None:
            _log.info("routing.cooldown_ended", model=model, failures=entry.failures)
        return entry is not None

    def avoid(self) -> frozenset[str]:
        """Return the models calls must not be sent to now.

        Those cooling down, and those half-open whose probe is on its way. A half-open model
        without a probe is not listed: the call that chooses it must :meth:`admit` it first.

        Returns:
            The model names.
        """
        if not self._entries:  # the common case, without the lock
            return _NONE
        now = self._clock()
        with self._lock:
            return frozenset(
                model
                for model, entry in self._entries.items()
                if now < entry.until or now < entry.probe_until
            )

    def admit(self, model: str) -> bool:
        """Tell whether a call may be sent to a model now; a half-open model's probe lease.

        Args:
            model: The model a call is about to be sent to.

        Returns:
            ``True`` for a model not cooling down, and for a half-open one whose probe lease
            this call now holds (others get ``False`` until the probe's outcome, or until the
            lease lapses); ``False`` while cooling down.
        """
        if model not in self._entries:
            return True
        now = self._clock()
        with self._lock:
            entry = self._entries.get(model)
            if entry is None:
                return True
            if now < entry.until or now < entry.probe_until:
                return False
            entry.probe_until = now + self._probe_timeout
            return True

    def state(self, model: str) -> CooldownState | None:
        """Return what the table knows of a model.

        Args:
            model: The model.

        Returns:
            Its state, or ``None`` when it is not cooling down or half-open.
        """
        now = self._clock()
        with self._lock:
            entry = self._entries.get(model)
            if entry is None:
                return None
            return CooldownState(
                model=model,
                remaining_s=max(0.0, entry.until - now),
                cooldown_s=entry.cooldown_s,
                failures=entry.failures,
                half_open=now >= entry.until,
                probing=now < entry.probe_until,
            )

    def clear(self) -> None:
        """Forget every cooldown."""
        with self._lock:
            self._entries.clear()
