"""The extension points of detection: graph :class:`Rule` and streaming :class:`Detector`.

A *rule* looks at one run's graph each time it changes (loops in the agent sequence). A
*detector* sees each pipeline cycle whole: the spans that arrived, in arrival order, with the
graphs they changed; it can keep state across runs (per-model error rates, per-agent latency
baselines) and be ticked by the clock, for findings that are the absence of a span (a step
that started and never ended).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agentmesh.collector.detection import Detection, JsonValue
from agentmesh.collector.graph.node import GraphNode
from agentmesh.collector.graph.run_graph import RunGraph

__all__ = ["CycleView", "Detector", "Rule", "StatefulDetector"]


class Rule(Protocol):
    """A detector that looks at a run's graph each time the graph changes.

    A rule remembers what it already reported: evaluating the same (or a grown) graph again
    returns only findings that are new.
    """

    @property
    def name(self) -> str:
        """The detection type the rule reports, for example ``handoff_loop``."""
        ...

    def evaluate(self, graph: RunGraph) -> list[Detection]:
        """Look for failures in a run.

        Args:
            graph: The run's current graph.

        Returns:
            New detections (empty when nothing new was found).
        """
        ...


@dataclass(frozen=True, slots=True)
class CycleView:
    """What one pipeline cycle brought, as detectors see it.

    Attributes:
        nodes: The spans that arrived, in arrival order (start markers included: their
            ``started`` names the step that began).
        graphs: The graphs the cycle changed, by trace id (runs already retired are absent).
        now_ns: Wall-clock time of the cycle, Unix nanoseconds.
    """

    nodes: Sequence[GraphNode]
    graphs: Mapping[str, RunGraph]
    now_ns: int


@runtime_checkable
class Detector(Protocol):
    """A streaming detector: fed every cycle, ticked by the clock.

    Implementations are called from the pipeline's worker only (never concurrently) and must
    be cheap: the budget for all detectors together is a few microseconds per span.
    """

    @property
    def name(self) -> str:
        """A short name for logs (the types it reports are on its detections)."""
        ...

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Take a cycle's spans and report what they show.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            New detections.
        """
        ...

    def tick(self, now_ns: int) -> list[Detection]:
        """Report what the passing of time shows (steps overdue, windows closing).

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            New detections.
        """
        ...


@runtime_checkable
class StatefulDetector(Detector, Protocol):
    """A detector whose learned state (baselines, models) survives a collector restart."""

    def snapshot(self) -> dict[str, JsonValue]:
        """Return the learned state as JSON-ready data.

        Returns:
            The state; :meth:`restore` takes it back.
        """
        ...

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Replace the learned state by a snapshot's.

        Args:
            state: What :meth:`snapshot` returned (possibly by another process).
        """
        ...
