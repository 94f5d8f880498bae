"""Agent loops: handoff cycles (``handoff_loop``) and two-agent ping-pong (``ping_pong``).

Both rules read the run's agent sequence lane by lane (see
:class:`~agentmesh.collector.graph.run_graph.AgentLanes`: a lane is sequential work, each step
following one that ended before it started or the agent step that called it; agents working in
parallel, as ``asyncio.gather`` workers or parallel LangGraph branches, are separate lanes, so
their interleaved starts are never read as back and forth) in the order agents started in,
consecutive repeats collapsed (an agent retried in a row is one visit), and look in each lane
for a cycle of distinct agents repeated back to back more than ``max_repeats`` times.
:class:`PingPongRule` looks for cycles of two agents (``supervisor, researcher`` repeated four
times is ping-pong when the bound is 3); :class:`HandoffLoopRule` for cycles of three to
``max_cycle_length`` agents. The healthy
supervisor pattern ``S, A, S, B, S, C, S`` is neither, since no cycle of distinct agents
repeats; a retry (``A, A``, or ``A, B, A`` once) is far below the bound.

**Settled graph only.** Spans arrive when they end, and different processes export with
different delays, so the sequence of a live run can miss spans that will later fall between
two visits (a supervisor span of another service arriving after its workers' spans would turn
``S, A, S, B, S, A, S, B`` into ``A, B, A, B`` for a while). The rules therefore judge only the
settled part of the sequence: the visits before the first agent span that ended less than
``settle_seconds`` before the newest span end seen in the trace (spans that ended earlier than
that have been exported by then), or the whole sequence once the run is complete (its root
span arrived). A loop is found a few seconds of run time later than it could be, and never
from a transient order. With a single exporting process spans arrive in the order they end,
and ``settle_seconds=0`` is safe.

Each loop is reported once per trace, however many batches of the trace arrive: the rules key
what they reported by trace and by the cycle's canonical rotation (``researcher → supervisor``
and ``supervisor → researcher`` are the same cycle).

The rules are incremental: when a rule saw the previous snapshot of a trace (the graph's
``generation`` follows the one it remembers), it scans only the lanes with a visit that changed
(from ``visits_changed_from``) or became settled, each from its first such visit back by one
unreported run's length (``(max_repeats + 2)`` cycles of the longest length, counted in that
lane's visits, followed through ``AgentVisit.previous``); a run reaching further back had
repeated enough before and was reported then. Otherwise it scans every lane of the settled
sequence.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

from agentmesh.collector.detection import Detection, detection_id
from agentmesh.collector.graph.run_graph import AgentVisit, RunGraph
from agentmesh.core.errors import DetectionError

__all__ = ["HANDOFF_LOOP", "PING_PONG", "HandoffLoopRule", "PingPongRule"]

HANDOFF_LOOP: Final = "handoff_loop"
"""Detection type of :class:`HandoffLoopRule`."""

PING_PONG: Final = "ping_pong"
"""Detection type of :class:`PingPongRule`."""

DEFAULT_SETTLE_SECONDS: Final = 5.0
"""Default settle time: the OpenTelemetry SDK's batch span processor exports every 5 s."""

_ARROW: Final = " → "
_NEVER: Final = 1 << 63


class _Seen:
    """What a rule remembers of a trace between snapshots."""

    __slots__ = ("frontier_index", "frontier_ns", "generation", "settled")

    def __init__(self) -> None:
        self.generation = -1
        self.settled = 0  # visits judged
        self.frontier_ns = 0  # start of the first agent span not yet settled
        self.frontier_index = 0  # its index in the invocations (a hint)


class _CycleRule:
    """Finds cycles of ``min_length..max_length`` distinct agents repeated too often."""

    def __init__(
        self,
        type_: str,
        min_length: int,
        max_length: int,
        max_repeats: int,
        settle_seconds: float,
        max_remembered: int,
        clock: Callable[[], int],
    ) -> None:
        if max_repeats < 1:
            raise DetectionError(f"max_repeats must be at least 1, got {max_repeats}")
        if settle_seconds < 0:
            raise DetectionError(f"settle_seconds must be at least 0, got {settle_seconds}")
        if max_remembered < 1:
            raise DetectionError(f"max_remembered must be at least 1, got {max_remembered}")
        self._type = type_
        self._min_length = min_length
        self._max_length = max_length
        self.max_repeats = max_repeats
        self.settle_seconds = settle_seconds
        self._settle_ns = int(settle_seconds * 1e9)
        self.max_remembered = max_remembered
        self._clock = clock
        self._reported: OrderedDict[tuple[str, tuple[str, ...]], None] = OrderedDict()
        self._seen: OrderedDict[str, _Seen] = OrderedDict()

    @property
    def name(self) -> str:
        """The detection type reported."""
        return self._type

    def evaluate(self, graph: RunGraph) -> list[Detection]:
        """Report loops in the run's settled agent sequence not reported before.

        Args:
            graph: The run's current graph.

        Returns:
            One detection per newly seen cycle.
        """
        visits = graph.visits if graph.visits is not None else tuple(graph.agent_sequence())
        seen = self._seen.get(graph.trace_id)
        if seen is None:
            seen = self._seen[graph.trace_id] = _Seen()
            while len(self._seen) > self.max_remembered:
                self._seen.popitem(last=False)
        incremental = graph.visits is not None and seen.generation + 1 == graph.generation
        previous = seen.settled
        unchanged = min(previous, graph.visits_changed_from) if incremental else 0
        if graph.complete or self._settle_ns == 0:  # (what _settled answers at once)
            settled = len(visits)
        else:
            settled = self._settled(graph, visits, seen, unchanged)
        seen.generation = graph.generation
        seen.settled = settled
        first_new = min(graph.visits_changed_from, previous) if incremental else 0
        if first_new >= settled:
            return []  # nothing settled changed
        if settled <= self.max_repeats * self._min_length + self._min_length - 1:
            return []  # too few settled visits for any cycle to repeat over the bound
        window = (self.max_repeats + 2) * self._max_length
        runs: list[tuple[int, int, list[AgentVisit], int]] = []
        for chain, older in _lanes(visits, first_new, settled, 2 * window):
            lane = [visits[index] for index in chain]
            scan_from = max(0, older - window) if incremental else 0
            for start, length, repeats in self._loops(lane, len(lane), scan_from):
                runs.append((length, chain[start], lane[start : start + length * repeats], repeats))
        runs.sort(key=lambda run: (run[0], run[1]))  # by cycle length, then where it begins
        detections: list[Detection] = []
        for length, _, run, repeats in runs:
            cycle = tuple(visit.agent for visit in run[:length])
            key = (graph.trace_id, _canonical(cycle))
            if key in self._reported:
                continue
            self._remember(key)
            detections.append(self._detection(graph, run, cycle, repeats))
        return detections

    def forget(self, trace_id: str) -> None:
        """Forget what was reported for a trace (a later loop in it is reported again).

        Args:
            trace_id: The trace.
        """
        for key in [key for key in self._reported if key[0] == trace_id]:
            del self._reported[key]
        self._seen.pop(trace_id, None)

    def _settled(
        self, graph: RunGraph, visits: Sequence[AgentVisit], seen: _Seen, unchanged: int
    ) -> int:
        """Return how many leading visits are settled, moving the trace's frontier on.

        The frontier is the start of the first agent span (by start) that ended after the
        horizon; it only moves forward, and so does the walk over the visits past the first
        ``unchanged`` ones, so each call costs what arrived since the previous one.
        """
        if graph.complete or self._settle_ns == 0:
            return len(visits)
        horizon = graph.end_ns - self._settle_ns
        invocations = graph.invocations
        n = len(invocations)
        i = seen.frontier_index
        if not (i < n and invocations[i].start_ns == seen.frontier_ns):
            i = bisect.bisect_left(invocations, seen.frontier_ns, key=lambda inv: inv.start_ns)
        while i < n and invocations[i].end_ns <= horizon:
            i += 1
        seen.frontier_index = i
        if i == n:
            seen.frontier_ns = invocations[-1].start_ns + 1 if n else 0
            return len(visits)
        frontier = seen.frontier_ns = invocations[i].start_ns
        # The visit holding the first unsettled span is the last one starting at or before it.
        j = min(unchanged, len(visits))
        while j < len(visits) and visits[j].start_ns <= frontier:
            j += 1
        return max(0, j - 1)

    def _loops(
        self, visits: Sequence[AgentVisit], n: int, scan_from: int = 0
    ) -> list[tuple[int, int, int]]:
        """Find ``(start, cycle length, repetitions)`` of each over-repeated cycle (first ``n``).

        Runs that start before ``scan_from`` are found only when they reach past it; the scan
        starts at a run boundary, so each run is found whole, as a scan from 0 finds it.
        """
        found: list[tuple[int, int, int]] = []
        longest = min(self._max_length, n // (self.max_repeats + 1))
        lo = max(0, scan_from - (self.max_repeats + 2) * self._max_length)
        agents = [visit.agent for visit in visits[lo:n]]  # the window (and room to step back)
        n -= lo
        for length in range(self._min_length, longest + 1):
            i = scan_from - lo
            while i > 0 and i - 1 + length < n and agents[i - 1] == agents[i - 1 + length]:
                i -= 1  # inside a run: go back to its start (within the window)
            while i + length < n:
                if agents[i] != agents[i + length]:
                    i += 1
                    continue
                end = i + length  # agents[i:end] is periodic with period `length`
                while end < n and agents[end] == agents[end - length]:
                    end += 1
                repeats = (end - i) // length
                if repeats > self.max_repeats and len(set(agents[i : i + length])) == length:
                    found.append((lo + i, length, repeats))
                i = end - length + 1
        return found

    def _remember(self, key: tuple[str, tuple[str, ...]]) -> None:
        self._reported[key] = None
        while len(self._reported) > self.max_remembered:
            self._reported.popitem(last=False)

    def _detection(
        self,
        graph: RunGraph,
        visits: Sequence[AgentVisit],
        cycle: tuple[str, ...],
        repeats: int,
    ) -> Detection:
        path = _ARROW.join((*cycle, cycle[0]))
        what = "agent cycle" if self._min_length > 2 else "ping-pong"
        return Detection(
            id=detection_id(self._type, graph.trace_id, "|".join(_canonical(cycle))),
            type=self._type,
            severity="error",
            trace_id=graph.trace_id,
            run_id=graph.run_id,
            agent=cycle[0],
            span_ids=tuple(span_id for visit in visits for span_id in visit.span_ids),
            explanation=(
                f"{what} {path} repeated {repeats} times "
                f"(bound {self.max_repeats}) in run {graph.run_id}"
            ),
            detected_at_ns=self._clock(),
            details={
                "cycle": list(cycle),
                "cycle_length": len(cycle),
                "repetitions": repeats,
                "max_repeats": self.max_repeats,
                "workflow": graph.workflow_name,
                "settle_seconds": self.settle_seconds,
            },
        )


class PingPongRule(_CycleRule):
    """Flags two agents handing work back and forth more than a bound (``ping_pong``).

    Args:
        max_repeats: Times ``A → B`` may repeat in a row; one more repetition is ping-pong.
        settle_seconds: Only visits whose spans ended this long before the newest span end
            of the trace are judged (all of them once the run is complete); 0 judges every
            visit at once, which is safe when one process exports the run's spans.
        max_remembered: Traces (and findings) remembered; the oldest are forgotten.
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.

    Example:
        >>> from agentmesh.collector.graph import GraphBuilder
        >>> from agentmesh.collector.testing import SpanFactory
        >>> f = SpanFactory()
        >>> root = f.workflow("w", run_id="run-7")
        >>> spans = [root] + [f.agent(a, parent=root) for a in ["supervisor", "researcher"] * 4]
        >>> builder = GraphBuilder()
        >>> _ = builder.add(spans)
        >>> rule = PingPongRule(max_repeats=3)
        >>> [d.explanation for d in rule.evaluate(builder.get(f.trace_id))]
        ['ping-pong supervisor → researcher → supervisor repeated 4 times (bound 3) in run run-7']
        >>> rule.evaluate(builder.get(f.trace_id))
        []
    """

    def __init__(
        self,
        max_repeats: int = 3,
        *,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        max_remembered: int = 100_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__(PING_PONG, 2, 2, max_repeats, settle_seconds, max_remembered, clock)


class HandoffLoopRule(_CycleRule):
    """Flags cycles of three or more distinct agents repeated more than a bound.

    Two-agent cycles are :class:`PingPongRule`'s.

    Args:
        max_repeats: Times a cycle may repeat in a row; one more repetition is a loop.
        max_cycle_length: Longest cycle (in distinct agents) looked for; at least 2 (2 looks
            for nothing: two-agent cycles are ping-pong).
        settle_seconds: See :class:`PingPongRule`.
        max_remembered: Traces (and findings) remembered; the oldest are forgotten.
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.

    Example:
        >>> from agentmesh.collector.graph import GraphBuilder
        >>> from agentmesh.collector.testing import SpanFactory
        >>> f = SpanFactory()
        >>> root = f.workflow("w", run_id="run-8")
        >>> spans = [root] + [f.agent(a, parent=root) for a in ["plan", "code", "test"] * 4]
        >>> builder = GraphBuilder()
        >>> _ = builder.add(spans)
        >>> rule = HandoffLoopRule(max_repeats=3)
        >>> [d.explanation for d in rule.evaluate(builder.get(f.trace_id))]
        ['agent cycle plan → code → test → plan repeated 4 times (bound 3) in run run-8']
        >>> rule.evaluate(builder.get(f.trace_id))
        []
    """

    def __init__(
        self,
        max_repeats: int = 3,
        max_cycle_length: int = 4,
        *,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        max_remembered: int = 100_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_cycle_length < 2:
            raise DetectionError(f"max_cycle_length must be at least 2, got {max_cycle_length}")
        super().__init__(
            HANDOFF_LOOP, 3, max_cycle_length, max_repeats, settle_seconds, max_remembered, clock
        )
        self.max_cycle_length = max_cycle_length


def _lanes(
    visits: Sequence[AgentVisit], first_new: int, settled: int, back: int
) -> list[tuple[list[int], int]]:
    """The lanes with a visit in ``visits[first_new:settled]``, each to its last settled visit.

    Each lane is followed back (:attr:`AgentVisit.previous`) through its new visits and at
    most ``back`` visits before them, so a lane that interleaves with others costs its own
    length, not theirs.

    Returns:
        For each lane, its visits' indices in order and how many of them come before
        ``first_new``.
    """
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for index in range(first_new, settled):
        lane = visits[index].lane
        if lane not in first:
            first[lane] = index
        last[lane] = index
    lanes: list[tuple[list[int], int]] = []
    for lane, index in last.items():
        begin = first[lane]
        chain: list[int] = []
        older = 0
        while index >= 0:
            if index < begin:
                if older == back:
                    break
                older += 1
            chain.append(index)
            index = visits[index].previous
        chain.reverse()
        lanes.append((chain, older))
    return lanes


def _canonical(cycle: tuple[str, ...]) -> tuple[str, ...]:
    """The rotation of a cycle that sorts first, so every rotation has one key."""
    return min(cycle[i:] + cycle[:i] for i in range(len(cycle)))
