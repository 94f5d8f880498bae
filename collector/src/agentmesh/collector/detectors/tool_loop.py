"""Tool loops: the same tool call bringing the same result again and again (``tool_loop``).

A tool call that repeats with the same arguments digest and gets the same result digest
brings no new state: an agent doing it more than ``max_repeats`` times in a run is stuck in a
loop (with the default bound 3, the fourth identical call fires). Calls whose results differ
are progress (polling a job until it is done) and are never counted together.

**Calls without digests.** Without a result digest (the instrumentation records none, or the
call failed) the detector cannot tell progress from a loop. It then counts calls of the same
tool under the same parent span (one agent invocation) and fires only past the much higher
``max_undigested_repeats`` (default 10), with severity ``warning`` instead of ``error`` and
``details.digests = false``. ``max_undigested_repeats=0`` turns that fallback off.

Counting is commutative, so the finding does not depend on the order spans arrive in; only
which span tipped it over (the last of ``span_ids``) does. Each (tool, arguments, result) of
a run is reported once (the id is derived from them), and a run's counters are forgotten
after its graph completes (see :class:`~agentmesh.collector.detectors._run_state.RunStates`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from agentmesh.collector.detection import Detection, Severity, detection_id
from agentmesh.collector.detectors._run_state import (
    DEFAULT_IDLE_NS,
    DEFAULT_LINGER_NS,
    DEFAULT_MAX_TRACES,
    RecentMap,
    RunStates,
    run_id_of,
)
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError

__all__ = ["TOOL_LOOP", "ToolLoopDetector"]

TOOL_LOOP: Final = "tool_loop"
"""Detection type of :class:`ToolLoopDetector`."""

_TOOL: Final = semconv.Operation.EXECUTE_TOOL
_MAX_SPAN_IDS: Final = 32
"""Spans named by a finding at most (the first ones and the one that tipped it over)."""


@dataclass(slots=True)
class _Calls:
    """The repeated calls of one key in one run."""

    span_ids: list[str] = field(default_factory=lambda: [])
    count: int = 0


@dataclass(slots=True)
class _Run:
    """What the detector holds of one run."""

    calls: dict[tuple[str, str | None, str | None, str | None], _Calls] = field(
        default_factory=lambda: {}
    )
    seen: set[str] = field(default_factory=lambda: set())  # tool span ids counted
    run_id: str | None = None
    reported: set[tuple[str, str | None, str | None, str | None]] = field(
        default_factory=lambda: set()
    )


class ToolLoopDetector:
    """Flags a tool called again and again with the same arguments and the same result.

    Args:
        max_repeats: Identical calls (same tool, arguments digest and result digest) a run
            may make; one more is a loop.
        max_undigested_repeats: Calls of one tool under one parent span a run may make when
            they carry no digests; one more is reported as a possible loop (0: never).
        max_calls_per_run: Tool calls remembered per run; further ones are not counted.
        max_traces: Runs held at most (past it the oldest are forgotten first).
        linger_seconds: How long a finished run's counters stay for late spans.
        idle_seconds: How long an unfinished run's counters stay without new spans.
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.

    Example:
        >>> from agentmesh.collector.testing import SpanFactory, cycle_of
        >>> f = SpanFactory()
        >>> root = f.workflow("w", run_id="run-12")
        >>> agent = f.agent("researcher", parent=root, run_id="run-12")
        >>> calls = [
        ...     f.tool("search", parent=agent, args_digest="a1", result_digest="r1")
        ...     for _ in range(4)
        ... ]
        >>> (found,) = ToolLoopDetector().observe(cycle_of([*calls, agent]))
        >>> print(found.explanation)  # doctest: +NORMALIZE_WHITESPACE
        tool search called 4 times with the same arguments and the same result in run run-12
        (bound 3)
    """

    def __init__(
        self,
        max_repeats: int = 3,
        *,
        max_undigested_repeats: int = 10,
        max_calls_per_run: int = 10_000,
        max_traces: int = DEFAULT_MAX_TRACES,
        linger_seconds: float = DEFAULT_LINGER_NS / 1e9,
        idle_seconds: float = DEFAULT_IDLE_NS / 1e9,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_repeats < 1:
            raise DetectionError(f"max_repeats must be at least 1, got {max_repeats}")
        if max_undigested_repeats < 0:
            raise DetectionError(
                f"max_undigested_repeats must be at least 0, got {max_undigested_repeats}"
            )
        if max_calls_per_run < 1:
            raise DetectionError(f"max_calls_per_run must be at least 1, got {max_calls_per_run}")
        self.max_repeats = max_repeats
        self.max_undigested_repeats = max_undigested_repeats
        self.max_calls_per_run = max_calls_per_run
        self._clock = clock
        # Agent span id -> (agent name, run id), from agent spans and their start markers, to
        # name the agent a looping tool runs under; the oldest are forgotten first.
        self._agents: RecentMap[str, tuple[str, str | None]] = RecentMap(10 * max_traces)
        self._runs: RunStates[_Run] = RunStates(
            _Run,
            max_traces=max_traces,
            linger_ns=int(linger_seconds * 1e9),
            idle_ns=int(idle_seconds * 1e9),
        )

    @property
    def name(self) -> str:
        """The detection type reported: ``tool_loop``."""
        return TOOL_LOOP

    @property
    def runs_held(self) -> int:
        """Runs whose counters are held."""
        return len(self._runs)

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Count the cycle's tool calls and report the loops they complete.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            New detections.
        """
        loops: list[tuple[_Run, GraphNode, _Calls, int, bool]] = []
        runs = self._runs
        now = cycle.now_ns
        local: dict[str, _Run] = {}  # runs touched this cycle
        agents = self._agents
        graphs = cycle.graphs
        for node in cycle.nodes:
            if node.operation == _TOOL:
                trace_id = node.trace_id
                run = local.get(trace_id)
                if run is None:
                    run = local[trace_id] = runs.touch(trace_id, now)
                crossed = self._count(run, node)
                if crossed is not None:
                    loops.append(crossed)
            else:
                agent = node.agent
                if agent is not None:  # an agent step, or its start marker
                    started = node.started
                    agents.set(node.span_id if started is None else started, (agent, node.run_id))
        # reported once the whole cycle is counted: the calls that came with the crossing one
        found = [self._report(*crossed, graphs) for crossed in loops]
        for trace_id, graph in graphs.items():
            if graph.complete and trace_id in runs:
                runs.finish(trace_id, now)
                run = runs.get(trace_id)
                if run is not None and run.run_id is None:
                    run.run_id = graph.run_id
        runs.sweep(now)
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """Forget finished and idle runs.

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            Nothing: tool loops are found when calls arrive.
        """
        self._runs.sweep(now_ns)
        return []

    def _count(
        self, run: _Run, node: GraphNode
    ) -> tuple[_Run, GraphNode, _Calls, int, bool] | None:
        """Count one tool call; what a loop needs to be reported when this call completes one."""
        if node.span_id in run.seen or len(run.seen) >= self.max_calls_per_run:
            return None  # re-delivered, or past the cap
        run.seen.add(node.span_id)
        if run.run_id is None:
            run.run_id = node.run_id
        tool = node.tool_name or ""
        digested = node.tool_args_digest is not None and node.tool_result_digest is not None
        if digested:
            key = (tool, node.tool_args_digest, node.tool_result_digest, None)
            bound = self.max_repeats
        elif self.max_undigested_repeats:
            key = (tool, None, None, node.parent_id)
            bound = self.max_undigested_repeats
        else:
            return None
        calls = run.calls.get(key)
        if calls is None:
            calls = run.calls[key] = _Calls()
        calls.count += 1
        if len(calls.span_ids) < _MAX_SPAN_IDS - 1:
            calls.span_ids.append(node.span_id)
        if calls.count <= bound or key in run.reported:
            return None
        run.reported.add(key)
        return run, node, calls, bound, digested

    def _report(
        self,
        run: _Run,
        node: GraphNode,
        calls: _Calls,
        bound: int,
        digested: bool,
        graphs: Mapping[str, RunGraph],
    ) -> Detection:
        span_ids = (
            calls.span_ids if node.span_id in calls.span_ids else [*calls.span_ids, node.span_id]
        )
        graph = graphs.get(node.trace_id)
        if run.run_id is None and node.parent_id is not None:
            parent = self._agents.get(node.parent_id)
            run.run_id = None if parent is None else parent[1]
        run_id = run_id_of(graph, run.run_id, node.trace_id)
        return self._detection(run_id, run, node, calls.count, bound, digested, tuple(span_ids))

    def _detection(
        self,
        run_id: str,
        run: _Run,
        node: GraphNode,
        count: int,
        bound: int,
        digested: bool,
        span_ids: tuple[str, ...],
    ) -> Detection:
        tool = node.tool_name or "?"
        parent = self._agents.get(node.parent_id) if node.parent_id is not None else None
        agent = None if parent is None else parent[0]
        severity: Severity = "error" if digested else "warning"
        if digested:
            key = f"{tool}|{node.tool_args_digest}|{node.tool_result_digest}"
            explanation = (
                f"tool {tool} called {count} times with the same arguments and the same "
                f"result in run {run_id} (bound {bound})"
            )
        else:
            key = f"{tool}|undigested|{node.parent_id}"
            explanation = (
                f"tool {tool} called {count} times in one step"
                f"{f' of agent {agent}' if agent else ''} in run {run_id}, without digests "
                f"to tell progress from a loop (bound {bound})"
            )
        return Detection(
            id=detection_id(TOOL_LOOP, node.trace_id, key),
            type=TOOL_LOOP,
            severity=severity,
            trace_id=node.trace_id,
            run_id=run_id,
            agent=agent,
            span_ids=span_ids,
            explanation=explanation,
            detected_at_ns=self._clock(),
            details={
                "tool": tool,
                "calls": count,
                "bound": bound,
                "digests": digested,
                "arguments_digest": node.tool_args_digest,
                "result_digest": node.tool_result_digest,
                "parent_span_id": node.parent_id,
                "span_id": node.span_id,
            },
        )
