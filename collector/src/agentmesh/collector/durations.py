"""Durations written the short way: ``90s``, ``15m``, ``2h``, ``7d``.

Example:
    >>> parse_duration("15m")
    900000000000
"""

from __future__ import annotations

from typing import Final

from agentmesh.core import ConfigError

__all__ = ["parse_duration"]

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
