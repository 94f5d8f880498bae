"""Memory and CPU time of a process, read from ``/proc``: :func:`process_usage`.

The collector's decode workers are processes of their own, so the process metrics of the
collector (``process_resident_memory_bytes``…) leave them out; the decode pool reads theirs
with this, the way ``prometheus_client`` reads the collector's own (two files, no dependency).
Linux only: elsewhere, and for a process that has exited, the answer is ``None``.

Example:
    >>> import os
    >>> usage = process_usage(os.getpid())
    >>> usage is None or usage.resident_bytes > 0
    True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["PoolUsage", "ProcessUsage", "process_usage"]

_PROC: Final = Path("/proc")
_PAGE_BYTES: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """What a process uses now.

    Attributes:
        resident_bytes: Resident memory (RSS).
        cpu_seconds: CPU time used so far, user and system.
        start_ticks: When the process started, in clock ticks since boot: with the pid, it
            names one process (a pid is reused once its process has exited).
    """

    resident_bytes: int
    cpu_seconds: float
    start_ticks: int = 0


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """What a pool of worker processes uses, together (``DecodePool.usage``).

    Attributes:
        workers: Worker processes running now.
        resident_bytes: Their resident memory.
        cpu_seconds: CPU time of every worker the pool has run, those that have exited
            included (as of their last reading): it never decreases.
    """

    workers: int
    resident_bytes: int
    cpu_seconds: float


def process_usage(pid: int, proc: Path = _PROC) -> ProcessUsage | None:
    """Read a process's resident memory and CPU time.

    Args:
        pid: The process.
        proc: Where the proc file system is mounted (tests pass a copy).

    Returns:
        The usage, or ``None`` when the process is gone or there is no ``/proc``.
    """
    base = proc / str(pid)
    try:
        statm = (base / "statm").read_text().split()
        stat = (base / "stat").read_text()
    except OSError:
        return None
    try:
        # the command name (field 2) is in parentheses and may hold spaces: split after it
        fields = stat[stat.rindex(")") + 2 :].split()
        resident_pages = int(statm[1])
        ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
        start_ticks = int(fields[19])  # starttime: field 22
    except (IndexError, ValueError):
        return None
    return ProcessUsage(resident_pages * _PAGE_BYTES, ticks / _TICKS, start_ticks)
