"""Whether the disk refused a write (full, over quota, read-only): :func:`disk_refused`.

Such a refusal is an outage that may pass (space is freed, a volume grows), unlike a bad
statement or a corrupt file, so the stores hold the write and try again instead of dropping it.
Embedded databases report it in their message only (DuckDB raises ``IOException`` with the
system's text), so the check reads the message as well as an ``OSError``'s number.

Example:
    >>> disk_refused(OSError(28, "No space left on device"))
    True
    >>> disk_refused(RuntimeError('IO Error: Could not write file "x.wal": File too large'))
    True
    >>> disk_refused(ValueError("Constraint Error: duplicate key"))
    False
"""

from __future__ import annotations

import errno
from typing import Final

__all__ = ["DISK_REFUSED_MESSAGES", "disk_refused"]

DISK_REFUSED_MESSAGES: Final = (
    "No space left on device",
    "File too large",
    "Disk quota exceeded",
    "Read-only file system",
)
"""The system's words (``strerror``) for a write the disk refused."""

_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})


def disk_refused(exc: BaseException) -> bool:
    """Say whether ``exc`` reports a write the disk refused (no space, size limit, quota…).

    Args:
        exc: What the write raised: an ``OSError`` or a database's own error.

    Returns:
        Whether the disk refused it, an outage that may pass.
    """
    if isinstance(exc, OSError) and exc.errno in _ERRNOS:
        return True
    text = str(exc)
    return any(words in text for words in DISK_REFUSED_MESSAGES)
