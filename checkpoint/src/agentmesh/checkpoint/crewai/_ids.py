"""Time-ordered checkpoint ids for CrewAI checkpoints: :func:`new_checkpoint_id`.

Stores call the greatest id of a namespace its newest checkpoint, so ids must grow with time.
These are UUID version 7 strings (48-bit Unix milliseconds, then a counter, then random bits),
strictly increasing within the process even for ids made in the same millisecond.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid

__all__ = ["new_checkpoint_id"]

_lock = threading.Lock()
_last: tuple[int, int] = (0, 0)
"""``(milliseconds, counter)`` of the last id made."""

_COUNTER_MAX = 0xFFF


def new_checkpoint_id() -> str:
    """Return a new time-ordered checkpoint id (a UUIDv7 string).

    Returns:
        The id; ids made later in the process compare greater.

    Example:
        >>> first, second = new_checkpoint_id(), new_checkpoint_id()
        >>> first < second
        True
    """
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_counter = _last
        if millis <= last_millis:
            millis, counter = last_millis, last_counter + 1
            if counter > _COUNTER_MAX:
                millis, counter = last_millis + 1, 0
        else:
            counter = 0
        _last = (millis, counter)
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= counter << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= secrets.randbits(62)
    return str(uuid.UUID(int=value))
