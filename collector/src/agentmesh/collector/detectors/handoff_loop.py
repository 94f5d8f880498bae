"""Handoff loops: agents handing work round the same cycle again and again.

The rule reads the run's agent sequence (the order agents ran in, consecutive repeats
collapsed) and looks for a cycle of ``k`` distinct agents, ``2 <= k <= max_cycle_length``,
repeated back to back more than ``max_repeats`` times. ``supervisor, researcher`` repeated four
times is a loop when the bound is 3; the healthy supervisor pattern ``S, A, S, B, S, C, S`` is
not, since no cycle repeats; an agent calling itself (``k = 1``) is not a handoff.

Each loop is reported once per trace, however many batches of the trace arrive: the rule keys
what it reported by trace and by the cycle's canonical rotation (``researcher → supervisor`` and
``supervisor → researcher`` are the same cycle).

The rule is incremental: when it saw the previous snapshot of a trace (the graph's
``generation`` follows the one it remembers), it scans only the visits from
``visits_changed_from`` back by one unreported run's length (``(max_repeats + 2)`` cycles of the
longest length); a run reaching further back had repeated enough before and was reported then.
Otherwise it scans the whole sequence.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

from agentmesh.collector.detection import Detection, detection_id
from agentmesh.collector.graph.run_graph import AgentVisit, RunGraph
from agentmesh.core.errors import DetectionError

__all__ = ["HANDOFF_LOOP", "HandoffLoopRule"]

HANDOFF_LOOP: Final = "handoff_loop"
"""Detection type of :class:`HandoffLoopRule`."""

_ARROW: Final = " → "


class HandoffLoopRule:
    """Flags agent cycles repeated more than a bound.

    Args:
        max_repeats: Times a cycle may repeat in a row; one more repetition is a loop.
        max_cycle_length: Longest cycle (in distinct agents) looked for; at least 2.
        max_remembered: Findings remembered to avoid reporting twice; the oldest are forgotten.
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
        >>> rule = HandoffLoopRule(max_repeats=3)
        >>> [d.explanation for d in rule.evaluate(builder.get(f.trace_id))]
        ['agent cycle supervisor → researcher → supervisor repeated 4 times (bound 3) in run run-7']
        >>> rule.evaluate(builder.get(f.trace_id))
        []
    """

    def __init__(
        self,
        max_repeats: int = 3,
        max_cycle_length: int = 4,
        *,
        max_remembered: int = 100_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_repeats < 1:
            raise DetectionError(f"max_repeats must be at least 1, got {max_repeats}")
        if max_cycle_length < 2:  # a cycle needs two agents
            raise DetectionError(f"max_cycle_length must be at least 2, got {max_cycle_length}")
        if max_remembered < 1:
            raise DetectionError(f"max_remembered must be at least 1, got {max_remembered}")
        self.max_repeats = max_repeats
        self.max_cycle_length = max_cycle_length
        self.max_remembered = max_remembered
        self._clock = clock
        self._reported: OrderedDict[tuple[str, tuple[str, ...]], None] = OrderedDict()
        self._generations: OrderedDict[str, int] = OrderedDict()

    @property
    def name(self) -> str:
        """The detection type reported: ``handoff_loop``."""
        return HANDOFF_LOOP

    def evaluate(self, graph: RunGraph) -> list[Detection]:
        """Report loops in the run not reported before.

        Args:
            graph: The run's current graph.

        Returns:
            One detection per newly seen cycle.
        """
        visits = graph.visits if graph.visits is not None else tuple(graph.agent_sequence())
        seen = self._generations.pop(graph.trace_id, None)
        self._generations[graph.trace_id] = graph.generation
        while len(self._generations) > self.max_remembered:
            self._generations.popitem(last=False)
        if seen is not None and graph.visits is not None and seen + 1 == graph.generation:
            window = (self.max_repeats + 2) * self.max_cycle_length
            scan_from = max(0, graph.visits_changed_from - window)
        else:
            scan_from = 0
        detections: list[Detection] = []
        for start, length, repeats in self._loops(visits, scan_from):
            cycle = tuple(visit.agent for visit in visits[start : start + length])
            key = (graph.trace_id, _canonical(cycle))
            if key in self._reported:
                continue
            self._remember(key)
            detections.append(
                self._detection(graph, visits[start : start + length * repeats], cycle, repeats)
            )
        return detections

    def forget(self, trace_id: str) -> None:
        """Forget what was reported for a trace (a later loop in it is reported again).

        Args:
            trace_id: The trace.
        """
        for key in [key for key in self._reported if key[0] == trace_id]:
            del self._reported[key]
        self._generations.pop(trace_id, None)

    def _loops(
        self, visits: Sequence[AgentVisit], scan_from: int = 0
    ) -> list[tuple[int, int, int]]:
        """Find ``(start, cycle length, repetitions)`` of each over-repeated cycle.

        Runs that start before ``scan_from`` are found only when they reach past it; the scan
        starts at a run boundary, so each run is found whole, as a scan from 0 finds it.
        """
        found: list[tuple[int, int, int]] = []
        n = len(visits)
        longest = min(self.max_cycle_length, n // (self.max_repeats + 1))
        lo = max(0, scan_from - (self.max_repeats + 2) * self.max_cycle_length)
        agents = [visit.agent for visit in visits[lo:]]  # the window (and room to step back)
        n -= lo
        for length in range(2, longest + 1):
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
        return Detection(
            id=detection_id(HANDOFF_LOOP, graph.trace_id, "|".join(_canonical(cycle))),
            type=HANDOFF_LOOP,
            severity="error",
            trace_id=graph.trace_id,
            run_id=graph.run_id,
            agent=cycle[0],
            span_ids=tuple(span_id for visit in visits for span_id in visit.span_ids),
            explanation=(
                f"agent cycle {path} repeated {repeats} times "
                f"(bound {self.max_repeats}) in run {graph.run_id}"
            ),
            detected_at_ns=self._clock(),
            details={
                "cycle": list(cycle),
                "cycle_length": len(cycle),
                "repetitions": repeats,
                "max_repeats": self.max_repeats,
                "workflow": graph.workflow_name,
            },
        )


def _canonical(cycle: tuple[str, ...]) -> tuple[str, ...]:
    """The rotation of a cycle that sorts first, so every rotation has one key."""
    return min(cycle[i:] + cycle[:i] for i in range(len(cycle)))
