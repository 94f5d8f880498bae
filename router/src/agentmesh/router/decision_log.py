"""The decision log: every routing decision as one JSON line, kept in memory and on file.

:meth:`DecisionLog.record` is on the application's hot path, so it only appends the decision
object to two bounded deques (no serialisation, no lock, no I/O). The most recent decisions
are kept in a ring buffer (:meth:`DecisionLog.lines`); when a file is configured, a daemon
thread wakes every ``flush_interval_s``, serialises what is pending and appends it to the
file. When the writer falls behind by more than ``max_pending`` decisions, the oldest pending
ones are dropped from the file (never from the app's time). The collector gets the same
decisions from the spans; the file is for offline training and audits.

Example:
    >>> from agentmesh.router.request import RouteRequest
    >>> from agentmesh.router.decision import RouteDecision
    >>> log = DecisionLog(capacity=2)
    >>> for model in ("a", "b", "c"):
    ...     log.record(RouteDecision.new(RouteRequest("openai", model), "p", (model,), (1.0,),
    ...                                  model, "r"))
    >>> [line.split('"requested_model":"')[1][0] for line in log.lines()]
    ['b', 'c']
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from agentmesh.core.log import get_logger
from agentmesh.router.decision import RouteDecision

__all__ = ["DecisionLog"]

_log = get_logger(__name__)


class DecisionLog:
    """A bounded in-memory log of decisions, optionally appended to a JSON-lines file.

    Args:
        capacity: Decisions kept in memory (the most recent).
        path: File the decisions are appended to, one JSON line each; none by default.
        flush_interval_s: Seconds between two writes of the background writer.
        max_pending: Decisions waiting for the writer beyond which the oldest are dropped.
    """

    def __init__(
        self,
        capacity: int = 1024,
        path: Path | None = None,
        *,
        flush_interval_s: float = 0.5,
        max_pending: int = 65_536,
    ) -> None:
        self._recent: deque[RouteDecision] = deque(maxlen=max(capacity, 1))
        self._path = path
        self._interval = flush_interval_s
        self._pending: deque[RouteDecision] | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if path is not None:
            self._pending = deque(maxlen=max(max_pending, 1))
            self._thread = threading.Thread(
                target=self._run, name="agentmesh-decision-log", daemon=True
            )
            self._thread.start()

    @property
    def path(self) -> Path | None:
        """The file decisions are appended to, if any."""
        return self._path

    def record(self, decision: RouteDecision) -> None:
        """Keep a decision (constant time, never blocks, never raises).

        Args:
            decision: The decision.
        """
        self._recent.append(decision)
        pending = self._pending
        if pending is not None:
            pending.append(decision)

    def decisions(self) -> list[RouteDecision]:
        """Return the decisions in memory, oldest first.

        Returns:
            A new list.
        """
        return list(self._recent)

    def lines(self) -> list[str]:
        """Return the decisions in memory as JSON lines (no newline), oldest first.

        Returns:
            A new list.
        """
        return [decision.to_json() for decision in list(self._recent)]

    def flush(self) -> None:
        """Write what is pending to the file now (from the calling thread)."""
        pending = self._pending
        path = self._path
        if pending is None or path is None:
            return
        with self._write_lock:
            batch: list[str] = []
            while pending:
                try:
                    batch.append(pending.popleft().to_json())
                except IndexError:
                    break
            if not batch:
                return
            try:
                with path.open("a", encoding="utf-8") as out:
                    out.write("\n".join(batch) + "\n")
            except OSError as exc:
                _log.warning(
                    "agentmesh.router.decision_log_write_failed",
                    path=str(path),
                    error=str(exc),
                    dropped=len(batch),
                )

    def close(self, timeout: float = 1.0) -> None:
        """Stop the writer and write what is pending.

        Args:
            timeout: Seconds to wait for the writer thread.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the writer must survive anything
                _log.warning("agentmesh.router.decision_log_error", error=str(exc))
