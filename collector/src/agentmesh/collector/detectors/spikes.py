"""Latency, token and cost spikes of model calls against per-(agent, model, task class) norms.

Every successful ``chat`` span is scored three times — its latency (seconds), its tokens (input
plus output) and its cost (US dollars) — each against the stream of its key
``(agent, model, task class)``. A stream is a
:class:`~agentmesh.collector.detectors._baseline_robust.RobustLogBaseline`: the median and MAD of
the logarithms of its last ``ring_size`` values (latencies, tokens and costs are skewed; their
variation is multiplicative). The median is the key's *normal*; a value's score grows with its
robust z above it (0.5 at z = 4). A call is a spike when both

- its score is at least ``score_threshold`` (after ``min_samples`` values: the cold start), and
- the value is at least ``min_ratio`` times the normal (and, for latency, at least
  ``min_latency_excess_seconds`` above it),

so latency jitter, twice the usual tokens, a millisecond call taking a few milliseconds more
(a fresh connection, a local model server) or a value far *below* normal never fire. Values of
0 (not recorded) are skipped. Any other
:class:`~agentmesh.collector.anomaly.StreamingAnomalyModel` can score instead (``model_factory``,
fed the raw value); the robust baseline then still gives the normal for the ratio test. The
package's default :class:`~agentmesh.collector.anomaly.AdaptiveSpikeModel` is not the default
here: it alerts on record-breaking departures only and rests after an alert, which suits one
long series (NAB) but would hide a run's spike behind an earlier, larger one of another run.

**Which agent.** A call's agent is the one the run graph attributes it to: its nearest agent
ancestor (an ``invoke_agent`` or ``invoke_node`` span), found as
:class:`~agentmesh.collector.graph.builder.GraphBuilder` finds it, so spikes, the run graph and
costs by agent name the same agent. Spans arrive when they end, so a call usually arrives before
its agent's span. Its agent is known at once when the agent's start marker (exported when the
step starts) or span already arrived, and every span between them; otherwise the call **waits**
and is scored (and a spike reported) in the cycle where the missing span arrives: the agent's
span or marker, or a span in between (a tool) that leads to it. A call is never scored under a
guess, so an agent's baselines hold its own calls only. Calls the graph attributes to no agent
are scored in the ``(None, model, task class)`` stream ("no agent in the run graph"): those
whose chain reaches the root without an agent, and those whose chain is still broken (a span
that never arrived) when their trace stops waiting: complete and quiet for ``linger_seconds``,
quiet for ``idle_seconds``, or the least recently active one when more than ``max_traces``
traces or ``max_waiting`` calls wait. The task class is the call's own
``agentmesh.run.task_class``, else its agent step's (from the start marker, else its span); the
run id is the graph's once a span of the run carries one, else the call's.

**Episodes.** A spike is reported once per ``(type, trace, key)``: further spikes of the same
key in the same run add nothing new. The id is ``detection_id(type, trace_id, key)``, so a
replay yields the same id.

Memory: at most ``max_keys`` keys (least recently used dropped), each with three rings of
``ring_size`` values; ``max_steps`` agent steps and up to twice as many other spans' parents
(to find calls' agents); ``max_waiting`` waiting calls of at most ``max_traces`` traces;
``max_reported`` reported findings. Cost: a span other than a ``chat`` span, an agent/node span
or a start marker costs a look-up and a store of its parent (model calls are taken to have no
calls below them).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal

from agentmesh.collector.anomaly import StreamingAnomalyModel, model_from_snapshot
from agentmesh.collector.detection import Detection, JsonValue, detection_id
from agentmesh.collector.detectors._baseline_robust import ROBUST_LOG, RobustLogBaseline
from agentmesh.collector.detectors._run_state import (
    DEFAULT_IDLE_NS,
    DEFAULT_LINGER_NS,
    RecentMap,
    run_id_of,
)
from agentmesh.collector.detectors._window_state import as_list, as_map, as_opt_str
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError

__all__ = [
    "COST_SPIKE",
    "LATENCY_SPIKE",
    "TOKEN_SPIKE",
    "Metric",
    "SpikeDetector",
]

LATENCY_SPIKE: Final = "latency_spike"
"""Detection type of a model call far slower than its key's norm."""
TOKEN_SPIKE: Final = "token_spike"  # noqa: S105 (a detection type, not a secret)
"""Detection type of a model call using far more tokens than its key's norm."""
COST_SPIKE: Final = "cost_spike"
"""Detection type of a model call costing far more than its key's norm."""

Metric = Literal["latency", "tokens", "cost"]
"""What a stream follows."""

_TYPES: Final[dict[Metric, str]] = {
    "latency": LATENCY_SPIKE,
    "tokens": TOKEN_SPIKE,
    "cost": COST_SPIKE,
}
_CHAT: Final = semconv.Operation.CHAT
_MAX_CHAIN: Final = 64
"""Ancestors walked at most from a call to its agent."""

_Key = tuple[str | None, str | None, str | None]
"""``(agent, model, task class)``."""


class _Waiting:
    """The calls of one trace whose chain to their agent is not known yet."""

    __slots__ = ("calls", "complete", "run_id", "touched_ns")

    def __init__(self, now_ns: int) -> None:
        self.calls: dict[str, list[GraphNode]] = {}
        """Missing span id -> the calls whose chain to their agent stops there."""
        self.touched_ns = now_ns
        """When a span of the trace last arrived."""
        self.complete = False
        """Whether the trace's graph has its root span."""
        self.run_id: str | None = None
        """The run id of the trace's graph, once seen."""

    def held(self) -> int:
        """How many calls wait."""
        return sum(len(calls) for calls in self.calls.values())


class _Stream:
    """One metric of one key: the scoring model and the baseline giving the normal."""

    __slots__ = ("baseline", "model")

    def __init__(self, baseline: RobustLogBaseline, model: StreamingAnomalyModel | None) -> None:
        self.baseline = baseline
        self.model = model
        """A separate scoring model, or ``None`` when the baseline scores."""


class SpikeDetector:
    """Flags latency, token and cost spikes of model calls (``latency_spike`` and so on).

    Args:
        metrics: Which of ``latency``, ``tokens`` and ``cost`` to follow.
        score_threshold: Anomaly score (0..1) a value must reach; with the default scoring,
            0.5 is a robust z of 4 above the median.
        min_ratio: How many times the key's normal (median of recent values) a value must reach.
        min_samples: Values a stream needs before anything is reported (cold start).
        ring_size: Recent values per stream whose median and MAD are the baseline.
        model_factory: Makes a scoring model for a new stream, fed raw values; ``None`` (the
            default) scores with the robust baseline itself.
        max_keys: Keys remembered (least recently used dropped).
        max_steps: Agent steps remembered for attributing calls, and as many (up to twice as
            many) other spans' parents.
        max_traces: Traces whose calls may wait for their agent at once.
        max_reported: Findings remembered so each is reported once.
        max_waiting: Calls that may wait for their agent at once.
        min_latency_excess_seconds: How much slower than its normal a call must also be to be
            a latency spike (0.04 s against a normal of 0.004 s is ten times, and no spike).
        linger_seconds: How long the calls of a complete run (its root span arrived) still
            wait for a late span leading to their agent.
        idle_seconds: How long the calls of a run whose spans stopped arriving wait.
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.
    """

    def __init__(
        self,
        metrics: Iterable[Metric] = ("latency", "tokens", "cost"),
        score_threshold: float = 0.5,
        min_ratio: float = 3.0,
        min_samples: int = 20,
        *,
        ring_size: int = 128,
        model_factory: Callable[[], StreamingAnomalyModel] | None = None,
        max_keys: int = 4096,
        max_steps: int = 65_536,
        max_traces: int = 10_000,
        max_reported: int = 100_000,
        max_waiting: int = 65_536,
        linger_seconds: float = DEFAULT_LINGER_NS / 1e9,
        idle_seconds: float = DEFAULT_IDLE_NS / 1e9,
        min_latency_excess_seconds: float = 0.25,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        chosen = tuple(dict.fromkeys(metrics))
        if not chosen or any(metric not in _TYPES for metric in chosen):
            raise DetectionError(f"metrics must be some of {sorted(_TYPES)}, got {chosen}")
        if not 0 < score_threshold <= 1:
            raise DetectionError(f"score_threshold must be in (0, 1], got {score_threshold}")
        if min_ratio <= 1:
            raise DetectionError(f"min_ratio must be above 1, got {min_ratio}")
        if not 1 <= min_samples <= ring_size:
            raise DetectionError(
                f"need 1 <= min_samples <= ring_size, got {min_samples}, {ring_size}"
            )
        if min(max_keys, max_steps, max_traces, max_reported, max_waiting) < 1:
            raise DetectionError(
                "max_keys, max_steps, max_traces, max_reported, max_waiting must be >= 1"
            )
        if not 0 <= min_latency_excess_seconds < math.inf:
            raise DetectionError(
                "min_latency_excess_seconds must be finite and >= 0, got "
                f"{min_latency_excess_seconds}"
            )
        if not 0 <= linger_seconds <= idle_seconds:
            raise DetectionError(
                f"need 0 <= linger_seconds <= idle_seconds, got {linger_seconds}, {idle_seconds}"
            )
        self.metrics: tuple[Metric, ...] = chosen
        self.score_threshold = score_threshold
        self.min_ratio = min_ratio
        self.min_samples = min_samples
        self.ring_size = ring_size
        self.max_keys = max_keys
        self.max_steps = max_steps
        self.max_traces = max_traces
        self.max_reported = max_reported
        self.max_waiting = max_waiting
        self.min_latency_excess_seconds = min_latency_excess_seconds
        self._linger_ns = int(linger_seconds * 1e9)
        self._idle_ns = int(idle_seconds * 1e9)
        self._log_ratio = math.log(min_ratio)
        self._factory = model_factory
        self._clock = clock
        self._keys: OrderedDict[_Key, dict[Metric, _Stream]] = OrderedDict()
        self._steps: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()
        """(trace, agent step span id) -> (agent, task class), from markers and spans."""
        self._parents: RecentMap[tuple[str, str], str] = RecentMap(max_steps)
        """(trace, span id) -> parent id ("" for a root) of spans neither calls nor steps."""
        self._traces: OrderedDict[str, _Waiting] = OrderedDict()
        """Traces with calls waiting for their agent, least recently active first."""
        self._held = 0
        """Calls waiting, in all traces."""
        self._reported: OrderedDict[tuple[str, str, _Key], None] = OrderedDict()

    @property
    def name(self) -> str:
        """A short name for logs: ``spikes`` (types: ``latency_spike``, ``token_spike``…)."""
        return "spikes"

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Score the cycle's model calls whose agent is known and report spikes.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            One detection per new ``(type, trace, key)`` spike.
        """
        found: list[Detection] = []
        now = cycle.now_ns
        graphs = cycle.graphs
        traces = self._traces
        for node in cycle.nodes:
            trace_id = node.trace_id
            waiting = traces.get(trace_id)
            if waiting is not None:
                waiting.touched_ns = now
                traces.move_to_end(trace_id)
            started = node.started
            if started is not None:  # a start marker: names its agent step before it ends
                if node.agent is not None and node.tool_name is None:
                    self._learn_step(trace_id, started, node.agent, node.task_class)
                    if waiting is not None:
                        self._arrived(waiting, trace_id, started, graphs, now, found)
                continue
            span_id = node.span_id
            if node.agent is not None:  # an agent (or node) step, as the graph builder reads it
                self._learn_step(trace_id, span_id, node.agent, node.task_class)
            elif node.operation == _CHAT:  # a call (its chain is walked from its parent)
                if not node.error:
                    self._place(node, node.parent_id, graphs, now, found)
                continue
            else:  # a span that may lie between a call and its agent
                self._parents.set((trace_id, span_id), node.parent_id or "")
            if waiting is not None:
                self._arrived(waiting, trace_id, span_id, graphs, now, found)
        for trace_id, graph in graphs.items():
            waiting = traces.get(trace_id)
            if waiting is not None:
                waiting.complete = graph.complete
                if graph.run_id != trace_id:
                    waiting.run_id = graph.run_id
        found += self._give_up(now)
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """Score the waiting calls of runs that stopped waiting (see the module docstring).

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            Spikes among those calls.
        """
        return self._give_up(now_ns)

    def normal(
        self, metric: Metric, agent: str | None, model: str | None, task_class: str | None
    ) -> float | None:
        """Return a key's normal value (median of its recent values).

        Args:
            metric: ``latency`` (seconds), ``tokens`` or ``cost`` (US dollars).
            agent: The agent (``None``: calls not attributed to one).
            model: The model.
            task_class: The task class.

        Returns:
            The normal, or ``None`` while the key has no value of that metric.
        """
        streams = self._keys.get((agent, model, task_class))
        stream = None if streams is None else streams.get(metric)
        if stream is None or not stream.baseline.seen:
            return None
        return stream.baseline.normal

    def snapshot(self) -> dict[str, JsonValue]:
        """Return every key's models and rings as JSON-ready data.

        Returns:
            The state; :meth:`restore` takes it back.
        """
        keys: list[JsonValue] = []
        for (agent, model, task_class), streams in self._keys.items():
            keys.append(
                {
                    "agent": agent,
                    "model": model,
                    "task_class": task_class,
                    "streams": {
                        metric: {
                            "baseline": stream.baseline.snapshot(),
                            "model": None if stream.model is None else stream.model.snapshot(),
                        }
                        for metric, stream in streams.items()
                    },
                }
            )
        return {"version": 1, "keys": keys}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Replace every key's models and rings by a snapshot's.

        Args:
            state: What :meth:`snapshot` returned.

        Raises:
            DetectionError: The state is not a snapshot of this detector.
        """
        restored: OrderedDict[_Key, dict[Metric, _Stream]] = OrderedDict()
        for raw_item in as_list(as_map(state, "state").get("keys"), "keys"):
            raw = as_map(raw_item, "key")
            key: _Key = (
                as_opt_str(raw.get("agent"), "agent"),
                as_opt_str(raw.get("model"), "model"),
                as_opt_str(raw.get("task_class"), "task class"),
            )
            streams: dict[Metric, _Stream] = {}
            for metric, raw_stream in as_map(raw.get("streams"), "streams").items():
                if metric not in self.metrics:
                    continue
                fields = as_map(raw_stream, "stream")
                baseline = self._new_baseline()
                baseline.restore(as_map(fields.get("baseline"), "baseline"))
                raw_model = fields.get("model")
                model = None
                if raw_model is not None:
                    model_state = as_map(raw_model, "model")
                    if model_state.get("kind") == ROBUST_LOG:
                        model = self._new_baseline()
                        model.restore(model_state)
                    else:
                        model = model_from_snapshot(model_state)
                streams[_metric(metric)] = _Stream(baseline, model)
            restored[key] = streams
        while len(restored) > self.max_keys:
            restored.popitem(last=False)
        self._keys = restored

    def _new_baseline(self) -> RobustLogBaseline:
        # Median and MAD of a large ring move little between refreshes: refresh every quarter.
        return RobustLogBaseline(
            size=self.ring_size, warmup=self.min_samples, refresh=max(8, self.ring_size // 4)
        )

    def _learn_step(self, trace_id: str, step_id: str, agent: str, task_class: str | None) -> None:
        """Remember an agent step: from its start marker or its span."""
        steps = self._steps
        key = (trace_id, step_id)
        if key not in steps:
            steps[key] = (agent, task_class)
            if len(steps) > self.max_steps:
                steps.popitem(last=False)

    def _place(
        self,
        call: GraphNode,
        parent_id: str | None,
        graphs: Mapping[str, RunGraph],
        now_ns: int,
        found: list[Detection],
    ) -> None:
        """Score a call if its chain from ``parent_id`` up to an agent is known, else wait.

        The walk is the graph builder's: the nearest ancestor that is an agent step; none when
        the root is reached first.
        """
        trace_id = call.trace_id
        steps = self._steps
        parents = self._parents
        agent: str | None = None
        task_class = call.task_class
        for _ in range(_MAX_CHAIN):  # bounds the walk even if ids form a cycle
            if parent_id is None:
                break  # the root: the call is outside any agent
            key = (trace_id, parent_id)
            step = steps.get(key)
            if step is not None:
                agent, task_class = step[0], task_class or step[1]
                break
            parent = parents.get(key)
            if parent is None:  # not arrived yet: wait for it
                waiting = self._traces.get(trace_id)
                if waiting is None:
                    waiting = self._traces[trace_id] = _Waiting(now_ns)
                waiting.calls.setdefault(parent_id, []).append(call)
                self._held += 1
                return
            parent_id = parent or None
        run_id = run_id_of(graphs.get(trace_id), call.run_id, trace_id)
        self._score(call, agent, task_class, run_id, found)

    def _arrived(
        self,
        waiting: _Waiting,
        trace_id: str,
        span_id: str,
        graphs: Mapping[str, RunGraph],
        now_ns: int,
        found: list[Detection],
    ) -> None:
        """Walk on from a span that calls waited for."""
        calls = waiting.calls.pop(span_id, None)
        if calls is None:
            return
        self._held -= len(calls)
        for call in calls:  # those that wait again wait in the same trace
            self._place(call, span_id, graphs, now_ns, found)
        if not waiting.calls:
            del self._traces[trace_id]

    def _give_up(self, now_ns: int) -> list[Detection]:
        """Score as attributed to no agent the waiting calls of runs that stop waiting.

        Those of the least recently active runs past ``max_traces`` or ``max_waiting``, of
        complete runs quiet for the linger time and of runs quiet for the idle time.
        """
        traces = self._traces
        if not traces:
            return []
        gone: list[tuple[str, _Waiting]] = []
        while traces and (len(traces) > self.max_traces or self._held > self.max_waiting):
            gone.append(traces.popitem(last=False))
            self._held -= gone[-1][1].held()
        due: list[str] = []
        for trace_id, waiting in traces.items():  # least recently active first
            quiet = now_ns - waiting.touched_ns
            if quiet < self._linger_ns:
                break
            if waiting.complete or quiet >= self._idle_ns:
                due.append(trace_id)
        for trace_id in due:
            gone.append((trace_id, traces.pop(trace_id)))
            self._held -= gone[-1][1].held()
        found: list[Detection] = []
        for trace_id, waiting in gone:
            for calls in waiting.calls.values():
                for call in calls:
                    run_id = run_id_of(None, waiting.run_id or call.run_id, trace_id)
                    self._score(call, None, call.task_class, run_id, found)
        return found

    def _score(
        self,
        node: GraphNode,
        agent: str | None,
        task_class: str | None,
        run_id: str,
        found: list[Detection],
    ) -> None:
        """Score a call's metrics against its key's baselines; append spikes to ``found``."""
        key: _Key = (agent, node.model, task_class)
        streams = self._keys.get(key)
        if streams is None:
            streams = self._keys[key] = {}
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        threshold, min_samples, log_ratio = self.score_threshold, self.min_samples, self._log_ratio
        for metric in self.metrics:
            if metric == "latency":
                value = (node.end_ns - node.start_ns) / 1e9
            elif metric == "tokens":
                value = float(node.input_tokens + node.output_tokens)
            else:
                value = node.cost_usd
            if value <= 0.0:
                continue
            stream = streams.get(metric)
            if stream is None:
                factory = self._factory
                stream = streams[metric] = _Stream(
                    self._new_baseline(), None if factory is None else factory()
                )
            baseline = stream.baseline
            logged = math.log(value)
            score = baseline.update_log(logged)
            median = baseline.scored_median
            if stream.model is not None:
                score = stream.model.update(value, node.end_ns / 1e9)
            if score >= threshold and baseline.seen > min_samples and logged - median >= log_ratio:
                normal = math.exp(median)
                if metric == "latency" and value - normal < self.min_latency_excess_seconds:
                    continue  # many times a few milliseconds is still a few milliseconds
                detection = self._report(metric, key, node, run_id, value, normal, score)
                if detection is not None:
                    found.append(detection)

    def _report(
        self,
        metric: Metric,
        key: _Key,
        node: GraphNode,
        run_id: str,
        value: float,
        normal: float,
        score: float,
    ) -> Detection | None:
        type_ = _TYPES[metric]
        seen = (type_, node.trace_id, key)
        if seen in self._reported:
            return None
        self._reported[seen] = None
        if len(self._reported) > self.max_reported:
            self._reported.popitem(last=False)
        agent, model, task_class = key
        who = f"by agent {agent}" if agent is not None else "(no agent in the run graph)"
        task = f", task class {task_class}" if task_class is not None else ""
        ratio = value / normal
        what = {
            "latency": f"took {_seconds(value)}, {ratio:.1f}x its usual {_seconds(normal)}",
            "tokens": f"used {value:,.0f} tokens, {ratio:.1f}x its usual {normal:,.0f}",
            "cost": f"cost ${value:.4f}, {ratio:.1f}x its usual ${normal:.4f}",
        }[metric]
        return Detection(
            id=detection_id(type_, node.trace_id, f"{agent}|{model}|{task_class}"),
            type=type_,
            severity="warning",
            trace_id=node.trace_id,
            run_id=run_id,
            agent=agent,
            span_ids=(node.span_id,),
            explanation=(
                f"{metric} spike in run {run_id}: a call to {model or 'an unknown model'} "
                f"{who}{task} {what}"
            ),
            detected_at_ns=self._clock(),
            details={
                "metric": metric,
                "value": value,
                "normal": normal,
                "ratio": ratio,
                "score": score,
                "agent": agent,
                "model": model,
                "provider": node.provider,
                "task_class": task_class,
                "min_ratio": self.min_ratio,
                "score_threshold": self.score_threshold,
            },
        )


def _seconds(value: float) -> str:
    """A duration for an explanation: milliseconds below a tenth of a second."""
    return f"{value * 1000:.0f} ms" if value < 0.1 else f"{value:.2f} s"


def _metric(name: str) -> Metric:
    if name == "latency":
        return "latency"
    if name == "tokens":
        return "tokens"
    if name == "cost":
        return "cost"
    raise DetectionError(f"snapshot stream: unknown metric {name!r}")
