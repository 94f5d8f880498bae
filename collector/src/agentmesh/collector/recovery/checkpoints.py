"""The last good handoff checkpoint of a run: :class:`CheckpointIndex`.

The graph snapshot does not keep checkpoint ids, so the index watches the spans the pipeline
sees: each handoff span that carries a checkpoint id (``GraphNode.checkpoint_id``), and when
each agent, node or tool step started (start markers included, so a step that never ended is
placed too; the workflow span is not a step: it would place every failure at the run's start).

*Last good* means the latest checkpointed handoff that began before the failure: before the
earliest step the detection names (its ``span_ids``), and not one of those steps. When the
detection names no step the index knows (a runaway's model calls, say), it is simply the latest
checkpointed handoff.

Example:
    >>> from agentmesh.collector.graph.node import GraphNode, HandoffInfo
    >>> def handoff(span_id: str, start: int, checkpoint: str) -> GraphNode:
    ...     return GraphNode("t" * 32, span_id, None, start, start + 1, "invoke_agent", "b",
    ...                      0, 0, 0.0, HandoffInfo("a", "b", "edge", None, None), "run", None,
    ...                      None, None, checkpoint_id=checkpoint)
    >>> index = CheckpointIndex()
    >>> index.observe([handoff(f"s{i}", 10 * i, f"ck-{i}") for i in (1, 2, 3)])
    >>> index.last_good("t" * 32, ("s2", "s3"))
    'ck-1'
    >>> index.last_good("t" * 32, ())
    'ck-3'
"""

from __future__ import annotations

from bisect import insort
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv

__all__ = ["CheckpointIndex"]

_STEPS: Final = frozenset(
    {
        semconv.Operation.INVOKE_AGENT,
        semconv.Operation.INVOKE_NODE,
        semconv.Operation.EXECUTE_TOOL,
    }
)


@dataclass(slots=True)
class _Run:
    checkpoints: list[tuple[int, str, str]] = field(default_factory=lambda: [])
    starts: dict[str, int] = field(default_factory=lambda: {})  # insertion order: oldest first


class CheckpointIndex:
    """Checkpointed handoffs and step starts of the most recently active traces.

    Args:
        max_traces: Traces remembered (the least recently active are forgotten).
        max_per_trace: Checkpoints and step starts kept per trace (the oldest go first).
    """

    def __init__(self, *, max_traces: int = 4096, max_per_trace: int = 1024) -> None:
        self._max_traces = max_traces
        self._max_per_trace = max_per_trace
        self._runs: OrderedDict[str, _Run] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def observe(self, nodes: Iterable[GraphNode]) -> None:
        """Take the spans of a pipeline cycle.

        Args:
            nodes: The spans, in arrival order (start markers included).
        """
        trace_id = ""
        run: _Run | None = None
        for node in nodes:
            started = node.started
            if started is None and node.operation not in _STEPS:
                continue
            if run is None or node.trace_id != trace_id:  # spans of a trace come together
                trace_id = node.trace_id
                run = self._run(trace_id)
            if started is not None:
                if node.agent is not None or node.tool_name is not None:  # not the workflow's
                    run.starts.setdefault(started, node.start_ns)
                continue
            run.starts[node.span_id] = node.start_ns
            if node.checkpoint_id is not None and node.handoff is not None:
                checkpoint = (node.start_ns, node.span_id, node.checkpoint_id)
                if checkpoint not in run.checkpoints:
                    insort(run.checkpoints, checkpoint)
                    if len(run.checkpoints) > self._max_per_trace:
                        del run.checkpoints[0]
            if len(run.starts) > self._max_per_trace:
                del run.starts[next(iter(run.starts))]

    def last_good(self, trace_id: str, failed_span_ids: Sequence[str] = ()) -> str | None:
        """Return the checkpoint to resume a run from.

        Args:
            trace_id: The run's trace.
            failed_span_ids: The spans that show the failure (a detection's ``span_ids``).

        Returns:
            The checkpoint id, or ``None`` when the run has no checkpoint before the failure
            (or is not remembered).
        """
        run = self._runs.get(trace_id)
        if run is None:
            return None
        failed = set(failed_span_ids)
        known = [run.starts[span_id] for span_id in failed if span_id in run.starts]
        cutoff = min(known) if known else None
        for start_ns, span_id, checkpoint_id in reversed(run.checkpoints):
            if span_id in failed or (cutoff is not None and start_ns >= cutoff):
                continue
            return checkpoint_id
        return None

    def _run(self, trace_id: str) -> _Run:
        run = self._runs.get(trace_id)
        if run is None:
            run = self._runs[trace_id] = _Run()
            if len(self._runs) > self._max_traces:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(trace_id)
        return run
