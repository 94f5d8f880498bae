"""Durations written the short way (``90s``, ``15m``, ``2h``, ``7d``) and points in time.

Example:
    >>> parse_duration("15m")
    900000000000
    >>> parse_when("2026-12-01T00:00:00Z", "--since", now=0.0)
    1796083200.0
    >>> parse_when("24h", "--since", now=1796083200.0)
    1795996800.0
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final

from agentmesh.core import ConfigError

__all__ = ["parse_duration", "parse_when", "when_ns"]

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Parse ``90s``, ``15m``, ``2h`` or ``7d`` into nanoseconds.

    Args:
        text: The duration.

    Returns:
        Nanoseconds.

    Raises:
        ConfigError: The text is not a duration.
    """
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit():
        raise ConfigError(f"{text!r}: expected a number and a unit, like 90s, 15m, 2h, 7d")
    return int(number) * _UNITS[unit] * 1_000_000_000


def parse_when(text: str, flag: str, *, now: float | None = None) -> float:
    """Parse a duration ago or an ISO date-time into epoch seconds.

    Args:
        text: ``24h`` (also ``90s``, ``15m``, ``7d``) or ``2026-12-01T00:00:00Z`` (a date-time
            without a zone is UTC).
        flag: The option's name, for the error message.
        now: The current time in epoch seconds (now by default).

    Returns:
        Seconds since the Unix epoch.

    Raises:
        ConfigError: The text is neither.
    """
    text = text.strip()
    try:
        ago_ns = parse_duration(text)
    except ConfigError:
        pass  # not a duration: a date-time?
    else:
        current = time.time() if now is None else now
        return current - ago_ns // 1_000_000_000
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r}: expected a duration (90s, 15m, 24h, 7d) or an ISO date-time "
            "(2026-12-01T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def when_ns(text: str, name: str) -> int:
    """Read a duration ago (``2h``) or an ISO date-time as a time in Unix nanoseconds.

    Args:
        text: What was given.
        name: The parameter or option, for the message.

    Returns:
        The time.

    Raises:
        ConfigError: It is neither.
    """
    try:
        return time.time_ns() - parse_duration(text)
    except ConfigError:
        return int(parse_when(text, name) * 1_000_000_000)
