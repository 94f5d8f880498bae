"""The runs paused in this process, so the run that resumes one can name it.

A CrewAI flow paused for human feedback, or a LangGraph graph stopped at an interrupt, is often
resumed by the same process (a web app handling the approval). Each framework's instrumentation
keeps a :class:`PausedRuns` keyed by what identifies the paused work (the flow's state id, the
graph's thread id); the run that resumes it takes the paused run's id and puts it on its
workflow span as ``agentmesh.resume.from_run_id``, which links the two runs in the collector.
Work resumed by another process is not linked this way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

__all__ = ["PAUSED_KEPT", "PausedRuns"]

PAUSED_KEPT: Final = 1024
"""Paused runs remembered per framework (the oldest are forgotten first)."""


class PausedRuns:
    """Run ids of paused work, by what identifies the work (bounded, thread-safe).

    Args:
        kept: Most paused runs remembered.

    Example:
        >>> runs = PausedRuns()
        >>> runs.paused("thread-1", "run-a")
        >>> runs.resumed("thread-1"), runs.resumed("thread-1")
        ('run-a', None)
    """

    def __init__(self, kept: int = PAUSED_KEPT) -> None:
        self._kept = kept
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, str] = OrderedDict()

    def paused(self, key: str, run_id: str) -> None:
        """Remember that the run ``run_id`` paused the work ``key`` (replacing an older one).

        Args:
            key: What identifies the paused work.
            run_id: The run that paused.
        """
        with self._lock:
            self._runs[key] = run_id
            self._runs.move_to_end(key)
            while len(self._runs) > self._kept:
                self._runs.popitem(last=False)

    def resumed(self, key: str) -> str | None:
        """Take the run that paused the work ``key``, if this process saw it pause.

        Args:
            key: What identifies the work being resumed.

        Returns:
            The paused run's id (forgotten now: one resumption per pause), or ``None``.
        """
        with self._lock:
            return self._runs.pop(key, None)
