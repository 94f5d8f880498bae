"""Stuck steps: a workflow, agent, node or tool step that started and has not ended in time.

The app exports a *start marker* when a step begins (a zero-length span whose ``started`` names
the step span; its ``agent`` or ``tool_name`` names the step), and the step's own span when it
ends. The detector keeps the steps that started and have not ended; :meth:`StuckDetector.tick`
(every 50 ms in the pipeline) reports a step once it has been open longer than its bound, so a
detection follows the crossing within one tick.

**Bounds.** Each step name (``tool:search``, ``agent:researcher``, ``workflow:research``) learns
from the durations of its ended spans: once ``learn_after`` durations are known the bound is
``bound_factor`` times their 99th percentile, at least ``min_bound_seconds``; before that it is
``default_bound_seconds`` (cold start). Bounds never exceed ``max_bound_seconds``. Steps that
were open when a stall was reported (the stuck step and the steps around it) are not learned
from when they end: a stall would raise the bound that should catch the next one.

**Innermost only.** A stuck tool keeps its agent and its workflow open too; the detector reports
the innermost step only. A step is reported when it is overdue *and* it is the latest-started
step still open in its trace (steps run nested, so the latest-started open step is inside the
others); an overdue agent whose tool is still running waits for the tool, which is reported
when it crosses its own bound. Once a step is reported, the open steps that started before it
(the steps enclosing it) are covered: they are not reported for the same stall. Parallel
branches of one run are treated as nested (the later one is taken as the inner).

**Forgetting.** A run's steps are forgotten when its root span arrives (the run completed) or
when no span of the trace has arrived for ``forget_after_seconds`` (the run expired). A start
marker that arrives after its step's span (or after its run completed) opens nothing.

Detection ids are ``detection_id("stuck", trace_id, step span id)``: one per stuck step.

Memory: at most ``max_traces`` traces with open steps (least recently active dropped),
``max_names`` learned step names with ``durations_kept`` durations each, and bounded sets of
recently ended steps and completed traces. Cost: spans other than markers, step spans and root
spans cost two comparisons and a dictionary lookup; a tick costs a heap peek when nothing is due.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from agentmesh.collector.detection import Detection, JsonValue, detection_id
from agentmesh.collector.detectors._window_state import (
    as_float,
    as_int,
    as_list,
    as_map,
    as_opt_str,
    as_str,
)
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError

__all__ = ["STUCK", "StuckDetector"]

STUCK: Final = "stuck"
"""Detection type of :class:`StuckDetector`."""

BoundSource = Literal["default", "learned"]
"""Where a step's bound came from."""

_Op = semconv.Operation
_STEP_OPS: Final = frozenset(
    {_Op.INVOKE_WORKFLOW, _Op.INVOKE_AGENT, _Op.INVOKE_NODE, _Op.EXECUTE_TOOL}
)
_RELEARN: Final = 10
"""New durations of a step name between two recomputations of its bound."""
_REMEMBERED: Final = 65_536
"""Recently ended steps, completed traces and reported findings remembered."""
_SNAPSHOT_REPORTED: Final = 1024
"""Reported findings a snapshot carries."""


class _Step(NamedTuple):
    """A step that started and has not ended: its start marker and its bound."""

    marker: GraphNode
    deadline_ns: int
    bound_s: float
    source: BoundSource

    @property
    def trace_id(self) -> str:
        return self.marker.trace_id

    @property
    def step_id(self) -> str:
        return self.marker.started or ""

    @property
    def start_ns(self) -> int:
        return self.marker.start_ns

    @property
    def run_id(self) -> str:
        return self.marker.run_id or self.marker.trace_id

    @property
    def kind(self) -> str:
        """``workflow``, ``agent`` (agents and nodes) or ``tool``."""
        return _kind_and_name(self.marker)[0]

    @property
    def name(self) -> str:
        return _kind_and_name(self.marker)[1]

    def to_json(self) -> list[JsonValue]:
        return [
            self.trace_id,
            self.step_id,
            self.marker.span_id,
            self.run_id,
            self.kind,
            self.name,
            self.start_ns,
            self.bound_s,
            self.source,
        ]


def _kind_and_name(marker: GraphNode) -> tuple[str, str]:
    if marker.tool_name is not None:
        return "tool", marker.tool_name
    if marker.agent is not None:
        return "agent", marker.agent
    return "workflow", marker.workflow_name or "unnamed"


_KIND_DEPTH: Final = {"workflow": 0, "agent": 1, "tool": 2}


def _nesting(step: _Step) -> tuple[int, int]:
    """Order open steps outermost first.

    By start, then a workflow before its agents before their tools: steps started in the same
    nanosecond (as a coarse clock gives them) are told apart by their kind.
    """
    return step.start_ns, _KIND_DEPTH.get(step.kind, 1)


class _Durations:
    """Recent durations of one step name and the bound they give."""

    __slots__ = ("bound_s", "count", "next", "ring", "stale")

    def __init__(self, ring: list[float] | None = None, count: int = 0) -> None:
        self.ring: list[float] = ring or []
        self.next = 0
        self.count = max(count, len(self.ring))
        self.bound_s = 0.0
        self.stale = _RELEARN  # compute on first use


@dataclass(slots=True)
class _Trace:
    """The open steps of one trace and what was reported in it."""

    steps: dict[str, _Step]
    last_seen_ns: int
    covered_until_ns: int = -1
    """Open steps that started at or before this are covered by a reported inner step."""
    overdue: set[str] | None = None


class StuckDetector:
    """Flags steps open longer than their bound, innermost step only.

    Args:
        default_bound_seconds: Bound of a step name with too few known durations.
        bound_factor: Learned bound = this times the 99th percentile of known durations.
        min_bound_seconds: Floor of a learned bound.
        max_bound_seconds: Ceiling of every bound.
        learn_after: Durations a step name needs before its bound is learned.
        durations_kept: Recent durations kept per step name.
        forget_after_seconds: A trace whose spans stop arriving for this long is forgotten (at
            least ``max_bound_seconds``).
        max_traces: Traces with open steps remembered (least recently active dropped).
        max_names: Step names whose durations are remembered (least recently ended dropped).

    Raises:
        DetectionError: A bound is out of range.
    """

    def __init__(
        self,
        default_bound_seconds: float = 120.0,
        bound_factor: float = 5.0,
        min_bound_seconds: float = 30.0,
        max_bound_seconds: float = 1800.0,
        learn_after: int = 20,
        *,
        durations_kept: int = 200,
        forget_after_seconds: float = 3600.0,
        max_traces: int = 50_000,
        max_names: int = 4096,
    ) -> None:
        if not 0 < min_bound_seconds <= max_bound_seconds:
            raise DetectionError(
                f"need 0 < min_bound_seconds <= max_bound_seconds, got {min_bound_seconds}, "
                f"{max_bound_seconds}"
            )
        if not 0 < default_bound_seconds <= max_bound_seconds:
            raise DetectionError(
                f"default_bound_seconds must be in (0, max_bound_seconds], got "
                f"{default_bound_seconds}"
            )
        if bound_factor < 1:
            raise DetectionError(f"bound_factor must be at least 1, got {bound_factor}")
        if not 1 <= learn_after <= durations_kept:
            raise DetectionError(
                f"need 1 <= learn_after <= durations_kept, got {learn_after}, {durations_kept}"
            )
        if forget_after_seconds < max_bound_seconds:
            raise DetectionError(
                f"forget_after_seconds ({forget_after_seconds}) must be at least "
                f"max_bound_seconds ({max_bound_seconds})"
            )
        if max_traces < 1 or max_names < 1:
            raise DetectionError("max_traces and max_names must be at least 1")
        self.default_bound_seconds = default_bound_seconds
        self.bound_factor = bound_factor
        self.min_bound_seconds = min_bound_seconds
        self.max_bound_seconds = max_bound_seconds
        self.learn_after = learn_after
        self.durations_kept = durations_kept
        self.forget_after_seconds = forget_after_seconds
        self.max_traces = max_traces
        self.max_names = max_names
        self._forget_ns = int(forget_after_seconds * 1e9)
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._heap: list[tuple[int, str, str]] = []
        self._open = 0
        self._dirty: set[str] = set()
        self._durations: OrderedDict[str, _Durations] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._completed: OrderedDict[str, None] = OrderedDict()
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._stalled: OrderedDict[str, None] = OrderedDict()
        """Steps open when a stall was reported: their durations are not learned."""

    @property
    def name(self) -> str:
        """The detection type reported: ``stuck``."""
        return STUCK

    @property
    def open_steps(self) -> int:
        """Steps that started and have not ended (in traces not forgotten)."""
        return self._open

    def bound(self, kind: str, name: str) -> tuple[float, BoundSource]:
        """Return the bound a step starting now would get.

        Args:
            kind: ``workflow``, ``agent`` or ``tool``.
            name: The step's name.

        Returns:
            ``(seconds, "default" or "learned")``.
        """
        return self._bound_of(f"{kind}:{name}")

    def _bound_of(self, key: str) -> tuple[float, BoundSource]:
        """:meth:`bound` of a step name's key (``kind:name``)."""
        durations = self._durations.get(key)
        if durations is None or durations.count < self.learn_after:
            return self.default_bound_seconds, "default"
        if durations.stale >= _RELEARN:
            ordered = sorted(durations.ring)
            p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
            durations.bound_s = min(
                self.max_bound_seconds, max(self.min_bound_seconds, self.bound_factor * p99)
            )
            durations.stale = 0
        return durations.bound_s, "learned"

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Open steps at their markers, close them at their spans, forget completed runs.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            No detections (steps become stuck with time: see :meth:`tick`).
        """
        now_ns = cycle.now_ns
        traces = self._traces
        start, end = self._start, self._end
        last: str | None = None  # a trace known to be the most recent in `traces`
        for node in cycle.nodes:
            if node.started is not None:
                start(node, now_ns)
                last = None
                continue
            if node.operation in _STEP_OPS:
                end(node)
            trace_id = node.trace_id
            if node.parent_id is None:
                self._complete(trace_id)
                last = None
            elif trace_id != last:
                trace = traces.get(trace_id)
                if trace is not None:
                    trace.last_seen_ns = now_ns
                    traces.move_to_end(trace_id)
                    last = trace_id
        return []

    def tick(self, now_ns: int) -> list[Detection]:
        """Report steps that crossed their bound, innermost step of each trace only.

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            One detection per newly stuck step.
        """
        heap = self._heap
        traces = self._traces
        while heap and heap[0][0] <= now_ns:
            deadline_ns, trace_id, step_id = heapq.heappop(heap)
            trace = traces.get(trace_id)
            step = None if trace is None else trace.steps.get(step_id)
            if trace is None or step is None or step.deadline_ns != deadline_ns:
                continue  # ended or forgotten since
            if step.start_ns <= trace.covered_until_ns:
                continue
            if trace.overdue is None:
                trace.overdue = set()
            trace.overdue.add(step.step_id)
            self._dirty.add(trace_id)
        found: list[Detection] = []
        if self._dirty:
            for trace_id in self._dirty:
                trace = traces.get(trace_id)
                if trace is not None:
                    detection = self._check(trace, now_ns)
                    if detection is not None:
                        found.append(detection)
            self._dirty.clear()
        self._forget_idle(now_ns)
        if len(heap) > 2 * self._open + 1024:
            self._heap = [
                (step.deadline_ns, step.trace_id, step.step_id)
                for trace in traces.values()
                for step in trace.steps.values()
            ]
            heapq.heapify(self._heap)
        return found

    def snapshot(self) -> dict[str, JsonValue]:
        """Return learned durations, open steps and recent findings as JSON-ready data.

        Returns:
            The state; :meth:`restore` takes it back.
        """
        durations: dict[str, JsonValue] = {
            name: [d.count, list[JsonValue](d.ring[d.next :] + d.ring[: d.next])]
            for name, d in self._durations.items()
        }
        traces: list[JsonValue] = [
            [trace.covered_until_ns, [step.to_json() for step in trace.steps.values()]]
            for trace in self._traces.values()
        ]
        reported = list(self._reported)[-_SNAPSHOT_REPORTED:]
        return {
            "version": 1,
            "durations": durations,
            "traces": traces,
            "reported": list[JsonValue](reported),
        }

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Replace learned durations, open steps and recent findings by a snapshot's.

        Args:
            state: What :meth:`snapshot` returned.

        Raises:
            DetectionError: The state is not a snapshot of this detector.
        """
        state = as_map(state, "state")
        durations: OrderedDict[str, _Durations] = OrderedDict()
        for name, raw in as_map(state.get("durations"), "durations").items():
            fields = as_list(raw, "durations")
            if len(fields) != 2:
                raise DetectionError(f"snapshot durations: expected 2 fields, got {fields!r}")
            ring = [as_float(v, "duration") for v in as_list(fields[1], "durations")]
            durations[name] = _Durations(
                ring[-self.durations_kept :], as_int(fields[0], "duration count")
            )
        traces: OrderedDict[str, _Trace] = OrderedDict()
        heap: list[tuple[int, str, str]] = []
        count = 0
        for raw_trace in as_list(state.get("traces"), "traces"):
            fields = as_list(raw_trace, "trace")
            if len(fields) != 2:
                raise DetectionError(f"snapshot trace: expected 2 fields, got {fields!r}")
            steps: dict[str, _Step] = {}
            for raw_step in as_list(fields[1], "steps"):
                step = _step_from_json(as_list(raw_step, "step"))
                steps[step.step_id] = step
                heap.append((step.deadline_ns, step.trace_id, step.step_id))
            if not steps:
                continue
            first = next(iter(steps.values()))
            last_seen = max(step.start_ns for step in steps.values())
            traces[first.trace_id] = _Trace(steps, last_seen, as_int(fields[0], "covered"))
            count += len(steps)
        reported: OrderedDict[str, None] = OrderedDict(
            (as_str(v, "reported id"), None) for v in as_list(state.get("reported"), "reported")
        )
        heapq.heapify(heap)
        self._durations = durations
        self._traces = traces
        self._heap = heap
        self._open = count
        self._reported = reported
        self._dirty = set()

    def _start(self, marker: GraphNode, now_ns: int) -> None:
        step_id = marker.started
        trace_id = marker.trace_id
        if step_id is None or step_id in self._ended or trace_id in self._completed:
            return
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = _Trace({}, now_ns)
            if len(self._traces) > self.max_traces:
                _, dropped = self._traces.popitem(last=False)
                self._open -= len(dropped.steps)
        else:
            if step_id in trace.steps:
                return  # the marker again
            trace.last_seen_ns = now_ns
            self._traces.move_to_end(trace_id)
        if marker.tool_name is not None:  # the key of _kind_and_name, inlined
            key = f"tool:{marker.tool_name}"
        elif marker.agent is not None:
            key = f"agent:{marker.agent}"
        else:
            key = f"workflow:{marker.workflow_name or 'unnamed'}"
        bound_s, source = self._bound_of(key)
        deadline_ns = marker.start_ns + int(bound_s * 1e9)
        trace.steps[step_id] = _Step(marker, deadline_ns, bound_s, source)
        self._open += 1
        heapq.heappush(self._heap, (deadline_ns, trace_id, step_id))

    def _end(self, node: GraphNode) -> None:
        operation = node.operation
        if operation == _Op.EXECUTE_TOOL:
            key = f"tool:{node.tool_name}"
        elif operation == _Op.INVOKE_WORKFLOW:
            key = f"workflow:{node.workflow_name or 'unnamed'}"
        else:
            key = f"agent:{node.agent}"
        if node.span_id in self._stalled:
            del self._stalled[node.span_id]  # a stall is not what the step's bound should learn
        else:
            self._learn(key, max(0, node.end_ns - node.start_ns) / 1e9)
        trace = self._traces.get(node.trace_id)
        if trace is not None and trace.steps.pop(node.span_id, None) is not None:
            self._open -= 1
            if trace.overdue is not None:
                trace.overdue.discard(node.span_id)
                self._dirty.add(node.trace_id)  # an outer overdue step may be innermost now
        else:  # its marker may still come: remember the step ended
            ended = self._ended
            ended[node.span_id] = None
            if len(ended) > _REMEMBERED:
                ended.popitem(last=False)

    def _learn(self, key: str, duration_s: float) -> None:
        durations = self._durations.get(key)
        if durations is None:
            durations = self._durations[key] = _Durations()
            if len(self._durations) > self.max_names:
                self._durations.popitem(last=False)
        else:
            self._durations.move_to_end(key)
        ring = durations.ring
        if len(ring) < self.durations_kept:
            ring.append(duration_s)
        else:
            ring[durations.next] = duration_s
            durations.next = (durations.next + 1) % self.durations_kept
        durations.count += 1
        durations.stale += 1

    def _complete(self, trace_id: str) -> None:
        completed = self._completed
        completed[trace_id] = None
        if len(completed) > _REMEMBERED:
            completed.popitem(last=False)
        trace = self._traces.pop(trace_id, None)
        if trace is not None:
            self._open -= len(trace.steps)

    def _forget_idle(self, now_ns: int) -> None:
        traces = self._traces
        horizon = now_ns - self._forget_ns
        while traces:
            trace_id, trace = next(iter(traces.items()))
            if trace.last_seen_ns >= horizon:
                break
            del traces[trace_id]
            self._open -= len(trace.steps)

    def _check(self, trace: _Trace, now_ns: int) -> Detection | None:
        overdue = trace.overdue
        if not overdue or not trace.steps:
            return None
        inner = max(trace.steps.values(), key=_nesting)
        if inner.step_id not in overdue:
            return None  # the time goes to an inner step not (yet) over its own bound
        trace.covered_until_ns = inner.start_ns
        trace.overdue = None
        stalled = self._stalled
        for step_id in trace.steps:  # the stuck step and the steps around it
            stalled[step_id] = None
        while len(stalled) > _REMEMBERED:
            stalled.popitem(last=False)
        det_id = detection_id(STUCK, inner.trace_id, inner.step_id)
        if det_id in self._reported:
            return None
        self._reported[det_id] = None
        if len(self._reported) > _REMEMBERED:
            self._reported.popitem(last=False)
        return self._detection(det_id, trace, inner, now_ns)

    def _detection(self, det_id: str, trace: _Trace, step: _Step, now_ns: int) -> Detection:
        open_s = max(0, now_ns - step.start_ns) / 1e9
        enclosing = sorted((s for s in trace.steps.values() if s is not step), key=_nesting)
        agent = step.name if step.kind == "agent" else None
        for outer in reversed(enclosing):
            if agent is None and outer.kind == "agent":
                agent = outer.name
        around = ", ".join(
            f"{s.kind} {s.name} ({max(0, now_ns - s.start_ns) / 1e9:.1f} s)" for s in enclosing
        )
        explanation = (
            f"{step.kind} {step.name} has been running for {open_s:.1f} s in run {step.run_id}, "
            f"over its {step.source} bound of {step.bound_s:g} s"
        )
        if around:
            explanation += f"; still open around it: {around}"
        return Detection(
            id=det_id,
            type=STUCK,
            severity="error",
            trace_id=step.trace_id,
            run_id=step.run_id,
            agent=agent,
            span_ids=(step.step_id, step.marker.span_id),
            explanation=explanation,
            detected_at_ns=now_ns,
            details={
                "step_span_id": step.step_id,
                "step_kind": step.kind,
                "step_name": step.name,
                "started_ns": step.start_ns,
                "open_seconds": open_s,
                "bound_seconds": step.bound_s,
                "bound_source": step.source,
                "enclosing": [
                    {"kind": s.kind, "name": s.name, "span_id": s.step_id} for s in enclosing
                ],
            },
        )


def _step_from_json(fields: list[JsonValue]) -> _Step:
    if len(fields) != 9:
        raise DetectionError(f"snapshot step: expected 9 fields, got {fields!r}")
    source = fields[8]
    if source != "default" and source != "learned":
        raise DetectionError(f"snapshot step: unknown bound source {source!r}")
    trace_id = as_str(fields[0], "trace id")
    step_id = as_str(fields[1], "step id")
    kind = as_str(fields[4], "step kind")
    name = as_opt_str(fields[5], "step name") or "unnamed"
    start_ns = as_int(fields[6], "step start")
    bound_s = as_float(fields[7], "step bound")
    marker = GraphNode(
        trace_id,
        as_str(fields[2], "marker id"),
        step_id,
        start_ns,
        start_ns,
        None,
        name if kind == "agent" else None,
        0,
        0,
        0.0,
        None,
        as_str(fields[3], "run id"),
        name if kind == "workflow" else None,
        None,
        None,
        tool_name=name if kind == "tool" else None,
        started=step_id,
    )
    return _Step(
        marker,
        start_ns + int(bound_s * 1e9),
        bound_s,
        "default" if source == "default" else "learned",
    )
