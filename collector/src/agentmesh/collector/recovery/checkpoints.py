"""The last good handoff checkpoint of a run: :class:`CheckpointIndex`.

The graph snapshot does not keep checkpoint ids, so the index watches the spans the pipeline
sees: each handoff span that carries a checkpoint id (``GraphNode.checkpoint_id``), and when
each agent, node or tool step started (start markers included, so a step that never ended is
placed too; the workflow span is not a step: it would place every failure at the run's start).

A handoff's checkpoint is the state its receiving step *started from*. *Last good* is the
latest state the failure had not touched, among the checkpointed handoffs up to the earliest
step the detection names (its ``span_ids``):

- the handoff *into* that first step, when it entered the failure from outside: the detection
  names steps of two agents or more (a loop's every visit, the agents of a cascade), and the
  handoff came from none of them, from a step the index saw start before (``planner →
  supervisor`` before a supervisor ↔ researcher ping-pong records the state before the loop
  began);
- otherwise the latest checkpointed handoff that began before that step. A detection naming one
  agent's steps does not say where its failure came from (the other side of a loop, a handoff
  that lost context), so the handoff into it is not trusted.

Handoffs into later named steps are never good: their state is the failure's work. When the
detection names no step the index knows (a runaway's model calls, say), last good is simply the
latest checkpointed handoff.

Example:
    >>> from agentmesh.collector.graph.node import GraphNode, HandoffInfo
    >>> def step(span_id: str, start: int, agent: str, source: str | None) -> GraphNode:
    ...     handoff = None if source is None else HandoffInfo(source, agent, "edge", None, None)
    ...     return GraphNode("t" * 32, span_id, None, start, start + 1, "invoke_agent", agent,
    ...                      0, 0, 0.0, handoff, "run", None, None, None,
    ...                      checkpoint_id=None if source is None else f"ck-{span_id}")
    >>> index = CheckpointIndex()
    >>> index.observe([step("s0", 0, "planner", None), step("s1", 10, "supervisor", "planner"),
    ...                step("s2", 20, "researcher", "supervisor"),
    ...                step("s3", 30, "supervisor", "researcher"),
    ...                step("s4", 40, "researcher", "supervisor")])
    >>> index.last_good("t" * 32, ("s1", "s2", "s3", "s4"))  # the loop began at s1
    'ck-s1'
    >>> index.last_good("t" * 32, ("s3",))  # one agent's step: the handoff before it
    'ck-s2'
    >>> index.last_good("t" * 32, ())
    'ck-s4'
"""

from __future__ import annotations

from bisect import insort
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

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


class _Checkpoint(NamedTuple):
    start_ns: int
    span_id: str
    checkpoint_id: str
    source: str  # the agent that handed off


class _Step(NamedTuple):
    start_ns: int
    agent: str | None  # None for a tool step


@dataclass(slots=True)
class _Run:
    checkpoints: list[_Checkpoint] = field(default_factory=lambda: [])
    starts: dict[str, _Step] = field(default_factory=lambda: {})  # insertion order: oldest first


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
                    run.starts.setdefault(started, _Step(node.start_ns, node.agent))
                continue
            run.starts[node.span_id] = _Step(node.start_ns, node.agent)
            handoff = node.handoff
            if node.checkpoint_id is not None and handoff is not None:
                checkpoint = _Checkpoint(
                    node.start_ns, node.span_id, node.checkpoint_id, handoff.source
                )
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
            The checkpoint id (see the module's docstring for which), or ``None`` when the run
            has no checkpoint before the failure (or is not remembered).
        """
        run = self._runs.get(trace_id)
        if run is None:
            return None
        failed = set(failed_span_ids)
        known = [run.starts[span_id] for span_id in failed if span_id in run.starts]
        if not known:
            for checkpoint in reversed(run.checkpoints):
                if checkpoint.span_id not in failed:
                    return checkpoint.checkpoint_id
            return None
        cutoff = min(step.start_ns for step in known)
        agents = {step.agent for step in known if step.agent is not None}
        for checkpoint in reversed(run.checkpoints):
            if checkpoint.start_ns > cutoff:
                continue  # the failure's work
            entry = checkpoint.span_id in failed or checkpoint.start_ns == cutoff
            if entry and not _entered_from_outside(run, checkpoint, agents, cutoff):
                continue  # the handoff into the first named step, from inside the failure
            return checkpoint.checkpoint_id
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


def _entered_from_outside(
    run: _Run, checkpoint: _Checkpoint, agents: set[str], cutoff: int
) -> bool:
    """Whether a handoff into the failure's first step came from a step outside the failure.

    The failure's steps must name two agents or more (one agent's steps do not say where the
    failure came from), the handoff's source must be none of them, and a step of the source
    must be known to have started before (not forgotten, not a guess).
    """
    source = checkpoint.source
    if len(agents) < 2 or source in agents:
        return False
    return any(step.agent == source and step.start_ns < cutoff for step in run.starts.values())
