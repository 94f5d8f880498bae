"""Error cascades: failures spreading from one agent of a run to others (``error_cascade``).

**The rule.** An agent *fails* when its own span ends in error: an error it handled inside
(a retried LLM call, a rate-limited call, a tool error it recovered from) leaves its span
well and does not count; one it let through (our instrumentation records the exception on
the agent span) does. Let ``t0`` be the end of the
run's earliest error. The errors *after* it are those whose agent span started at or after
``t0``, that is, agents that were handed work after the first failure. A run is a cascade
when the first failing agent and the agents with errors after it number at least
``min_agents`` (default 2).

**A failure retried with success does not count.** A failed agent span followed by a
successful invocation of the same agent (it started after the failure and ended well) is a
step the app retried, and the run went on from the retry: from the end of that success on,
the failure is no longer counted. The run is judged as of each error's end, with the
failures not yet retried by then: so an agent's transient failure, retried before the next
agent fails, is never the start of a cascade (nor a link of one), while a real cascade (A
fails, then B, handed work after it, fails) is reported the moment B's failure is seen, even
if A or B is retried later.

**A run the collector stopped** is no cascade of its own: the ``RunStoppedError`` its agents
raise at their next step is the recovery at work, not a failure spreading.

So one failing agent whose error is handled (a retried LLM call, a tool error it recovers
from, the same agent failing again on a retry) is not a cascade; neither is an error that
propagates up the stack (the supervisor span containing the failed worker ends in error too,
but it started before the failure); two agents whose errors both follow the first failure
are. Agents that ran in parallel with the first failing one and started before it failed
are not counted: the failure cannot have reached them through a handoff.

Errors are attributed as soon as the chain from the failed span to an agent span is known
(from the spans, or from an agent's start marker, which arrives when the agent starts). An
error whose chain reaches the root without an agent belongs to no agent and is ignored.

**Settled errors only**, as for the loop rules: which error is the first must not depend on
the order spans arrive in (processes export with different delays), so the rule judges the
errors that ended at least ``settle_seconds`` before the newest span end seen in the run, or
all of them once the run is complete (a run that fails usually ends soon after, so the
finding is not delayed much). Each run is reported once (the id is derived from the trace
alone), and its state is forgotten after its graph completes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from agentmesh.collector.detection import Detection, detection_id
from agentmesh.collector.detectors._run_state import (
    DEFAULT_IDLE_NS,
    DEFAULT_LINGER_NS,
    DEFAULT_MAX_TRACES,
    RunStates,
    run_id_of,
)
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError, RunStoppedError

__all__ = ["ERROR_CASCADE", "ErrorCascadeDetector"]

ERROR_CASCADE: Final = "error_cascade"
"""Detection type of :class:`ErrorCascadeDetector`."""

_STOPPED: Final = RunStoppedError.__name__
"""``error.type`` of the steps a collector's stop ended (``RunStoppedError``)."""

_CHAT: Final = semconv.Operation.CHAT
_MAX_CHAIN: Final = 64
"""Ancestors walked at most from a failed span to its agent."""
_MAX_ERRORS: Final = 256
"""Errors kept per run."""
_NEVER: Final = 1 << 63
"""``recovered`` of an error no successful retry followed (yet)."""


class _Error(NamedTuple):
    end_ns: int
    span_id: str
    agent: str
    invocation_start_ns: int
    error_type: str | None


@dataclass(slots=True)
class _Run:
    parents: dict[str, str | None] = field(default_factory=lambda: {})  # non-agent, non-chat
    agent_spans: dict[str, tuple[str, int]] = field(default_factory=lambda: {})
    pending: list[GraphNode] = field(default_factory=lambda: [])
    errors: list[_Error] = field(default_factory=lambda: [])
    error_ids: set[str] = field(default_factory=lambda: set())
    # agent -> (start, end) of its invocations that ended well
    successes: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: {})
    succeeded: int = 0  # invocations in ``successes``
    # error span id -> end of the first later successful invocation of its agent (a retry)
    recovered: dict[str, int] = field(default_factory=lambda: {})
    run_id: str | None = None
    end_ns: int = 0  # latest span end seen in the run
    complete: bool = False
    reported: bool = False


class ErrorCascadeDetector:
    """Flags runs whose failures spread across agents.

    Args:
        min_agents: Distinct failing agents (the first one included) that make a cascade.
        settle_seconds: Errors are judged once spans ending this long after them have
            arrived (or the run is complete), so an earlier error still in transit cannot be
            missed; 0 judges at once (safe when one process exports the run's spans).
        max_spans_per_run: Spans remembered per run to attribute errors to agents.
        max_traces: Runs held at most (past it the oldest are forgotten first).
        linger_seconds: How long a finished run's state stays for late spans.
        idle_seconds: How long an unfinished run's state stays without new spans.
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.

    Example:
        >>> from agentmesh.collector.testing import SpanFactory, cycle_of, failed
        >>> f = SpanFactory()
        >>> root = f.workflow("w", run_id="run-5")
        >>> researcher = failed(f.agent("researcher", parent=root, run_id="run-5"), "TimeoutError")
        >>> writer = failed(f.agent("writer", parent=root, run_id="run-5"), "BadRequestError")
        >>> (found,) = ErrorCascadeDetector().observe(cycle_of([researcher, writer, root]))
        >>> print(found.explanation)  # doctest: +NORMALIZE_WHITESPACE
        errors spread across 2 agents in run run-5: researcher failed first (TimeoutError),
        then writer (BadRequestError) (bound 2 agents)
    """

    def __init__(
        self,
        min_agents: int = 2,
        *,
        settle_seconds: float = 5.0,
        max_spans_per_run: int = 10_000,
        max_traces: int = DEFAULT_MAX_TRACES,
        linger_seconds: float = DEFAULT_LINGER_NS / 1e9,
        idle_seconds: float = DEFAULT_IDLE_NS / 1e9,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if min_agents < 2:
            raise DetectionError(f"min_agents must be at least 2, got {min_agents}")
        if max_spans_per_run < 1:
            raise DetectionError(f"max_spans_per_run must be at least 1, got {max_spans_per_run}")
        if settle_seconds < 0:
            raise DetectionError(f"settle_seconds must be at least 0, got {settle_seconds}")
        self.min_agents = min_agents
        self.settle_seconds = settle_seconds
        self._settle_ns = int(settle_seconds * 1e9)
        self.max_spans_per_run = max_spans_per_run
        self._clock = clock
        self._runs: RunStates[_Run] = RunStates(
            _Run,
            max_traces=max_traces,
            linger_ns=int(linger_seconds * 1e9),
            idle_ns=int(idle_seconds * 1e9),
        )

    @property
    def name(self) -> str:
        """The detection type reported: ``error_cascade``."""
        return ERROR_CASCADE

    @property
    def runs_held(self) -> int:
        """Runs whose state is held."""
        return len(self._runs)

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Attribute the cycle's errors to agents and report the cascades they complete.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            New detections.
        """
        runs = self._runs
        now = cycle.now_ns
        cap = self.max_spans_per_run
        waiting: dict[str, _Run] = {}  # runs with errors to attribute
        local: dict[str, _Run] = {}  # runs touched this cycle
        touch = runs.touch
        for node in cycle.nodes:
            if node.operation == _CHAT:
                continue  # never an ancestor; its failure counts when its agent's span fails
            agent = node.agent
            trace_id = node.trace_id
            started = node.started
            if started is not None:  # a start marker: names its agent span early
                if agent is not None:
                    run = local.get(trace_id)
                    if run is None:
                        run = local[trace_id] = touch(trace_id, now)
                    if len(run.agent_spans) < cap:
                        run.agent_spans[started] = (agent, node.start_ns)
                    if run.pending:
                        waiting[trace_id] = run
                continue
            run = local.get(trace_id)
            if run is None:
                run = local[trace_id] = touch(trace_id, now)
            end_ns = node.end_ns
            if end_ns > run.end_ns:
                run.end_ns = end_ns
            if agent is not None:
                span_id = node.span_id
                if run.run_id is None:
                    run.run_id = node.run_id
                if len(run.agent_spans) < cap:
                    run.agent_spans[span_id] = (agent, node.start_ns)
                if node.error and node.error_type != _STOPPED:  # our own stop is no failure
                    if span_id not in run.error_ids:
                        run.error_ids.add(span_id)
                        if len(run.pending) < _MAX_ERRORS:
                            run.pending.append(node)
                elif run.succeeded < cap:
                    _succeeded(run, agent, node.start_ns, end_ns)
            elif len(run.parents) < cap:
                run.parents[node.span_id] = node.parent_id
            if run.pending:
                waiting[trace_id] = run
        judge: dict[str, _Run] = {}
        for trace_id, run in waiting.items():
            if self._attribute(run):
                judge[trace_id] = run
        graphs = cycle.graphs
        for trace_id, graph in graphs.items():
            run = runs.get(trace_id)
            if run is None:
                continue
            run.end_ns = max(run.end_ns, graph.end_ns)
            if graph.complete and not run.complete:
                run.complete = True
                runs.finish(trace_id, now)
            if run.errors:
                judge[trace_id] = run  # more of the run has settled
        found: list[Detection] = []
        for trace_id, run in judge.items():
            if not run.reported:
                detection = self._judge(trace_id, run, graphs.get(trace_id))
                if detection is not None:
                    found.append(detection)
        runs.sweep(now)
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """Forget finished and idle runs.

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            Nothing: cascades are found when errors arrive.
        """
        self._runs.sweep(now_ns)
        return []

    def _attribute(self, run: _Run) -> bool:
        """Attribute the pending errors whose agent is known; return whether any was."""
        agent_spans = run.agent_spans
        parents = run.parents
        still: list[GraphNode] = []
        added = False
        for node in run.pending:
            span_id: str | None = node.span_id if node.agent is not None else node.parent_id
            for _ in range(_MAX_CHAIN):
                if span_id is None:
                    break  # reached the root: no agent to blame
                owner = agent_spans.get(span_id)
                if owner is not None:
                    if len(run.errors) < _MAX_ERRORS:
                        error = _Error(
                            node.end_ns, node.span_id, owner[0], owner[1], node.error_type
                        )
                        run.errors.append(error)
                        retried = [
                            end
                            for start, end in run.successes.get(error.agent, ())
                            if start >= error.end_ns
                        ]
                        if retried:
                            run.recovered[error.span_id] = min(retried)
                        added = True
                    break
                if span_id not in parents:
                    still.append(node)  # an ancestor has not arrived yet
                    break
                span_id = parents[span_id]
        run.pending = still
        if added:
            run.errors.sort()
        return added

    def _judge(self, trace_id: str, run: _Run, graph: RunGraph | None) -> Detection | None:
        if run.complete or not self._settle_ns:
            errors = run.errors
        else:
            horizon = run.end_ns - self._settle_ns
            errors = [e for e in run.errors if e.end_ns <= horizon]  # sorted by end
        if len({e.agent for e in errors}) < self.min_agents:
            return None
        steps = self._chain(errors, run.recovered)
        if steps is None:
            return None
        first = steps[0]
        run.reported = True
        run_id = run_id_of(graph, run.run_id, trace_id)
        then = ", ".join(f"{e.agent} ({e.error_type or 'error'})" for e in steps[1:])
        return Detection(
            id=detection_id(ERROR_CASCADE, trace_id, "cascade"),
            type=ERROR_CASCADE,
            severity="error",
            trace_id=trace_id,
            run_id=run_id,
            agent=first.agent,
            span_ids=tuple(e.span_id for e in steps),
            explanation=(
                f"errors spread across {len(steps)} agents in run {run_id}: {first.agent} "
                f"failed first ({first.error_type or 'error'}), then {then} "
                f"(bound {self.min_agents} agents)"
            ),
            detected_at_ns=self._clock(),
            details={
                "agents": [e.agent for e in steps],
                "error_types": [e.error_type for e in steps],
                "first_agent": first.agent,
                "first_error_at_ns": first.end_ns,
                "errors_seen": len(errors),
                "min_agents": self.min_agents,
                "workflow": None if graph is None else graph.workflow_name,
            },
        )

    def _chain(self, errors: list[_Error], recovered: dict[str, int]) -> list[_Error] | None:
        """Find the first cascade, judging the run as of each error's end.

        Args:
            errors: Settled errors, sorted by end.
            recovered: When a successful retry of an error's agent ended, by error span id.

        Returns:
            The first error of each agent in the cascade, the first failure first, with the
            agents that failed after it was complete; ``None`` when there is none.
        """
        min_agents = self.min_agents
        last = errors[-1].end_ns
        for index in range(min_agents - 1, len(errors)):
            now = errors[index].end_ns
            chain: dict[str, _Error] = {}  # first error of each counted agent
            first: _Error | None = None
            for error in errors[: index + 1]:
                if recovered.get(error.span_id, _NEVER) <= now:
                    continue  # retried with success before now: the run went on from the retry
                if first is None:
                    first = chain[error.agent] = error
                elif error.agent not in chain and error.invocation_start_ns >= first.end_ns:
                    chain[error.agent] = error
            if first is not None and len(chain) >= min_agents:
                for error in errors[index + 1 :]:  # agents that failed after it, not retried
                    if (
                        error.agent not in chain
                        and error.invocation_start_ns >= first.end_ns
                        and recovered.get(error.span_id, _NEVER) > last
                    ):
                        chain[error.agent] = error
                return list(chain.values())
        return None


def _succeeded(run: _Run, agent: str, start_ns: int, end_ns: int) -> None:
    """Remember an invocation of ``agent`` that ended well: a retry of its earlier failures."""
    run.successes.setdefault(agent, []).append((start_ns, end_ns))
    run.succeeded += 1
    recovered = run.recovered
    for error in run.errors:
        if (
            error.agent == agent
            and error.end_ns <= start_ns
            and end_ns < recovered.get(error.span_id, _NEVER)
        ):
            recovered[error.span_id] = end_ns
