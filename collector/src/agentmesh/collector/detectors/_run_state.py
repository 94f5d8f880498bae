"""Per-run state of the run-level detectors, with bounded memory.

:class:`RunStates` holds one state object per trace. A trace leaves memory when its run is
finished (its graph is complete) and ``linger_ns`` has passed, when it has not been touched
for ``idle_ns``, or, oldest first, when more than ``max_traces`` are held. Every operation is
O(1) amortised but the idle scan, which runs at most once per tenth of the idle time.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.core.errors import DetectionError

__all__ = [
    "DEFAULT_IDLE_NS",
    "DEFAULT_LINGER_NS",
    "DEFAULT_MAX_TRACES",
    "RecentMap",
    "RunStates",
    "run_id_of",
]

S = TypeVar("S")
K = TypeVar("K")
V = TypeVar("V")

DEFAULT_MAX_TRACES = 10_000
"""Traces a detector keeps state for (the graph builder's default)."""

DEFAULT_LINGER_NS = 30_000_000_000
"""How long a finished run's state stays for late spans (30 s, as the graph builder)."""

DEFAULT_IDLE_NS = 600_000_000_000
"""How long an unfinished run's state stays without new spans (10 min, as the builder)."""


def run_id_of(graph: RunGraph | None, seen: str | None, trace_id: str) -> str:
    """Return a run's id: the graph's when a span of it carries one, else one seen on a span.

    Args:
        graph: The run's graph, when the cycle changed it.
        seen: An ``agentmesh.run.id`` the detector saw (on a start marker, say).
        trace_id: The trace, the id of last resort.

    Returns:
        The run id.
    """
    if graph is not None and graph.run_id != graph.trace_id:
        return graph.run_id
    return seen or trace_id


class RunStates(Generic[S]):
    """States by trace id, forgetting finished, idle and (past the cap) oldest traces.

    Callers touch a trace once per cycle (keeping the state in a local dict for the cycle's
    other spans), so a touch is two dict operations.

    Args:
        factory: Makes the state of a trace seen for the first time.
        max_traces: Traces held at most; past it the oldest (first seen) is forgotten.
        linger_ns: How long a finished trace stays.
        idle_ns: How long an untouched trace stays.

    Raises:
        DetectionError: A bound is out of range.
    """

    __slots__ = (
        "_factory",
        "_finished",
        "_idle",
        "_idle_every",
        "_idle_swept",
        "_linger",
        "_max",
        "_states",
        "_touched",
    )

    def __init__(
        self,
        factory: Callable[[], S],
        *,
        max_traces: int = DEFAULT_MAX_TRACES,
        linger_ns: int = DEFAULT_LINGER_NS,
        idle_ns: int = DEFAULT_IDLE_NS,
    ) -> None:
        if max_traces < 1:
            raise DetectionError(f"max_traces must be at least 1, got {max_traces}")
        if linger_ns < 0 or idle_ns < linger_ns:
            raise DetectionError(f"need 0 <= linger_ns <= idle_ns, got {linger_ns} and {idle_ns}")
        self._factory = factory
        self._max = max_traces
        self._linger = linger_ns
        self._idle = idle_ns
        self._idle_every = idle_ns // 10
        self._states: OrderedDict[str, S] = OrderedDict()  # oldest first
        self._touched: dict[str, int] = {}
        self._finished: deque[tuple[int, str]] = deque()
        self._idle_swept = 0

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._states

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def get(self, trace_id: str) -> S | None:
        """Return a trace's state without touching it.

        Args:
            trace_id: The trace.

        Returns:
            Its state, or ``None`` when none is held.
        """
        return self._states.get(trace_id)

    def touch(self, trace_id: str, now_ns: int) -> S:
        """Return a trace's state, made when new, and mark it as just used.

        Args:
            trace_id: The trace.
            now_ns: The time, Unix nanoseconds.

        Returns:
            Its state.
        """
        states = self._states
        state = states.get(trace_id)
        if state is None:
            while len(states) >= self._max:
                oldest, _ = states.popitem(last=False)
                self._touched.pop(oldest, None)
            state = states[trace_id] = self._factory()
        self._touched[trace_id] = now_ns
        return state

    def finish(self, trace_id: str, now_ns: int) -> None:
        """Note that a trace's run is finished: its state goes after the linger time.

        Args:
            trace_id: The trace.
            now_ns: The time, Unix nanoseconds.
        """
        if trace_id in self._states:
            self._finished.append((now_ns, trace_id))

    def discard(self, trace_id: str) -> None:
        """Forget a trace now.

        Args:
            trace_id: The trace.
        """
        self._states.pop(trace_id, None)
        self._touched.pop(trace_id, None)

    def sweep(self, now_ns: int) -> list[str]:
        """Forget finished traces past their linger time and traces idle too long.

        Finished traces are found in O(1) each; idle ones by a scan of every trace, done at
        most once per tenth of the idle time.

        Args:
            now_ns: The time, Unix nanoseconds.

        Returns:
            The traces forgotten.
        """
        finished = self._finished
        idle_due = now_ns - self._idle_swept >= self._idle_every
        if not idle_due and (not finished or now_ns - finished[0][0] < self._linger):
            return []  # the common case: nothing due
        gone: list[str] = []
        touched = self._touched
        while finished and now_ns - finished[0][0] >= self._linger:
            _, trace_id = finished.popleft()
            last = touched.get(trace_id)
            if last is not None and now_ns - last >= self._linger:
                self.discard(trace_id)
                gone.append(trace_id)
        if idle_due:
            self._idle_swept = now_ns
            idle = [t for t, last in touched.items() if now_ns - last >= self._idle]
            for trace_id in idle:
                self.discard(trace_id)
            gone += idle
        return gone


class RecentMap(Generic[K, V]):
    """A map that keeps the most recently set keys: between ``size`` and ``2 * size`` of them.

    Two generations of plain dicts: when the current one is full it becomes the old one (and
    the old one is dropped), so setting costs one dict store and memory stays bounded.

    Args:
        size: Keys per generation; at least 1.

    Raises:
        DetectionError: ``size`` is out of range.
    """

    __slots__ = ("_current", "_old", "_size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise DetectionError(f"size must be at least 1, got {size}")
        self._size = size
        self._current: dict[K, V] = {}
        self._old: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._current) + len(self._old)

    def __contains__(self, key: object) -> bool:
        return key in self._current or key in self._old

    def get(self, key: K) -> V | None:
        """Return a key's value.

        Args:
            key: The key.

        Returns:
            Its value, or ``None`` when absent or forgotten.
        """
        value = self._current.get(key)
        return self._old.get(key) if value is None else value

    def set(self, key: K, value: V) -> None:
        """Set a key's value.

        Args:
            key: The key.
            value: Its value.
        """
        current = self._current
        current[key] = value
        if len(current) >= self._size:
            self._old = current
            self._current = {}
