"""A detector that reports nothing: it hands each cycle's spans to a consumer.

The pipeline feeds its detectors every cycle's graph nodes; components that learn from the
span stream without reporting detections (the router trainer, the recovery engine) plug in
through this adapter rather than through a second path of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode

__all__ = ["NodeFeed"]


class NodeFeed:
    """Feeds each cycle's graph nodes to ``consume``; reports no detection, ignores the clock.

    Args:
        name: The detector name it runs under (in logs and timings).
        consume: Called with each cycle's nodes, in arrival order.

    Example:
        >>> seen: list[int] = []
        >>> feed = NodeFeed("counter", lambda nodes: seen.append(len(nodes)))
        >>> feed.observe(CycleView([], {}, 0)), feed.tick(0), seen
        ([], [], [0])
    """

    def __init__(self, name: str, consume: Callable[[Sequence[GraphNode]], object]) -> None:
        self._name = name
        self._consume = consume

    @property
    def name(self) -> str:
        """The name given."""
        return self._name

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Hand the cycle's spans on.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            Nothing (an empty list).
        """
        self._consume(cycle.nodes)
        return []

    def tick(self, now_ns: int) -> list[Detection]:
        """Nothing happens on the clock here.

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            Nothing (an empty list).
        """
        return []
