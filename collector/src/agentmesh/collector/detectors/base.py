"""The extension point of graph detectors: :class:`Rule`."""

from __future__ import annotations

from typing import Protocol

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.run_graph import RunGraph

__all__ = ["Rule"]


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
