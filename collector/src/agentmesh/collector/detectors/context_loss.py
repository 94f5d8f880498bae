"""Context loss: an agent received other context than was handed to it (``context_loss``).

The instrumentation records, on the receiving agent's span, the digest of the context the
source handed over (``agentmesh.handoff.context.digest``) and the digest of the context the
receiving agent actually got (``agentmesh.handoff.context.received_digest``). When both are
there and differ, part of the context was lost (or altered) at the handoff. Spans carrying
only one of the two say nothing. Each handoff span is reported once: the finding's id is
derived from it, and the reported span ids are remembered (a bounded number of them) so a
re-delivered span is not reported again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from agentmesh.collector.detection import Detection, detection_id
from agentmesh.collector.detectors._run_state import run_id_of
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode, HandoffInfo
from agentmesh.core.errors import DetectionError

__all__ = ["CONTEXT_LOSS", "ContextLossDetector"]

CONTEXT_LOSS: Final = "context_loss"
"""Detection type of :class:`ContextLossDetector`."""


class ContextLossDetector:
    """Flags handoffs whose received context digest differs from the sent one.

    Args:
        max_remembered: Reported handoff spans remembered (to report each once).
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.

    Example:
        >>> from agentmesh.collector.testing import SpanFactory, cycle_of, handoff_received
        >>> f = SpanFactory()
        >>> root = f.workflow("w", run_id="run-3")
        >>> writer = f.agent(
        ...     "writer", parent=root, run_id="run-3", handoff_from="researcher",
        ...     context_digest="sha256:aa", context_size=2048,
        ... )
        >>> (found,) = ContextLossDetector().observe(
        ...     cycle_of([handoff_received(writer, "sha256:bb")])
        ... )
        >>> print(found.explanation)  # doctest: +NORMALIZE_WHITESPACE
        context lost at the handoff researcher → writer in run run-3:
        sent sha256:aa (2048 bytes), received sha256:bb
    """

    def __init__(
        self, *, max_remembered: int = 100_000, clock: Callable[[], int] = time.time_ns
    ) -> None:
        if max_remembered < 1:
            raise DetectionError(f"max_remembered must be at least 1, got {max_remembered}")
        self.max_remembered = max_remembered
        self._clock = clock
        self._reported: OrderedDict[tuple[str, str], None] = OrderedDict()

    @property
    def name(self) -> str:
        """The detection type reported: ``context_loss``."""
        return CONTEXT_LOSS

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Report the cycle's handoffs that lost context.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            New detections.
        """
        found: list[Detection] = []
        for node in cycle.nodes:
            received = node.received_digest
            if received is None:
                continue
            handoff = node.handoff
            if handoff is None or handoff.digest is None or handoff.digest == received:
                continue
            key = (node.trace_id, node.span_id)
            if key in self._reported:
                continue
            self._reported[key] = None
            if len(self._reported) > self.max_remembered:
                self._reported.popitem(last=False)
            graph = cycle.graphs.get(node.trace_id)
            run_id = run_id_of(graph, node.run_id, node.trace_id)
            found.append(self._detection(node, handoff, received, run_id))
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """Nothing to do: context loss is seen on the handoff span itself.

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            Nothing.
        """
        return []

    def _detection(
        self, node: GraphNode, handoff: HandoffInfo, received: str, run_id: str
    ) -> Detection:
        size = "" if handoff.size is None else f" ({handoff.size} bytes)"
        return Detection(
            id=detection_id(CONTEXT_LOSS, node.trace_id, node.span_id),
            type=CONTEXT_LOSS,
            severity="error",
            trace_id=node.trace_id,
            run_id=run_id,
            agent=handoff.target,
            span_ids=(node.span_id,),
            explanation=(
                f"context lost at the handoff {handoff.source} → {handoff.target} in run "
                f"{run_id}: sent {handoff.digest}{size}, received {received}"
            ),
            detected_at_ns=self._clock(),
            details={
                "source": handoff.source,
                "target": handoff.target,
                "kind": handoff.kind,
                "sent_digest": handoff.digest,
                "received_digest": received,
                "sent_size": handoff.size,
                "checkpoint_id": node.checkpoint_id,
            },
        )
