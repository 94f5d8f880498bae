"""Latency, token and cost spikes of model calls against per-(agent, model, task class) norms.

Every successful ``chat`` span is scored three times — its latency (seconds), its tokens (input
plus output) and its cost (US dollars) — each against the stream of its key
``(agent, model, task class)``. A stream is a
:class:`~agentmesh.collector.detectors._baseline_robust.RobustLogBaseline`: the median and MAD of
the logarithms of its last ``ring_size`` values (latencies, tokens and costs are skewed; their
variation is multiplicative). The median is the key's *normal*; a value's score grows with its
robust z above it (0.5 at z = 4). A call is a spike when both

- its score is at least ``score_threshold`` (after ``min_samples`` values: the cold start), and
- the value is at least ``min_ratio`` times the normal,

so latency jitter, twice the usual tokens or a value far *below* normal never fire. Values of
0 (not recorded) are skipped. Any other
:class:`~agentmesh.collector.anomaly.StreamingAnomalyModel` can score instead (``model_factory``,
fed the raw value); the robust baseline then still gives the normal for the ratio test. The
package's default :class:`~agentmesh.collector.anomaly.AdaptiveSpikeModel` is not the default
here: it alerts on record-breaking departures only and rests after an alert, which suits one
long series (NAB) but would hide a run's spike behind an earlier, larger one of another run.

**Which agent.** A call's agent is its nearest agent ancestor, but spans arrive when they end,
so the agent span usually arrives after its calls. The detector therefore attributes a call
from what is known when it arrives: (1) its parent is an agent or node step whose start
marker (or span) was seen — the usual case, since markers are exported when a step starts;
(2) else the latest agent step of the trace whose start marker was seen, that started before
the call did and has not ended (calls made inside a tool; sequential agents); (3) else the
agent is unknown (``None``) and the call is scored in the ``(None, model, task class)``
stream — apps without start markers get per-model baselines. A key's attribution is thus
stable for a given app, which is what a baseline needs. The task class is the call's own
``agentmesh.run.task_class``, else its step's (from the start marker).

**Episodes.** A spike is reported once per ``(type, trace, key)``: further spikes of the same
key in the same run add nothing new. The id is ``detection_id(type, trace_id, key)``, so a
replay yields the same id.

Memory: at most ``max_keys`` keys (least recently used dropped), each with three rings of
``ring_size`` values; ``max_steps`` step names and ``max_traces`` per-trace
attributions; ``max_reported`` reported findings. Cost: spans other than ``chat`` spans,
agent/node spans and start markers cost two comparisons.
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
from agentmesh.collector.detectors._window_state import as_list, as_map, as_opt_str
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode
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
_AGENT_OPS: Final = frozenset({semconv.Operation.INVOKE_AGENT, semconv.Operation.INVOKE_NODE})

_Key = tuple[str | None, str | None, str | None]
"""``(agent, model, task class)``."""


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
        max_steps: Agent steps remembered for attributing calls.
        max_traces: Traces whose latest agent is remembered.
        max_reported: Findings remembered so each is reported once.
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
        if min(max_keys, max_steps, max_traces, max_reported) < 1:
            raise DetectionError("max_keys, max_steps, max_traces, max_reported must be >= 1")
        self.metrics: tuple[Metric, ...] = chosen
        self.score_threshold = score_threshold
        self.min_ratio = min_ratio
        self.min_samples = min_samples
        self.ring_size = ring_size
        self.max_keys = max_keys
        self.max_steps = max_steps
        self.max_traces = max_traces
        self.max_reported = max_reported
        self._log_ratio = math.log(min_ratio)
        self._factory = model_factory
        self._clock = clock
        self._keys: OrderedDict[_Key, dict[Metric, _Stream]] = OrderedDict()
        self._steps: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        """Agent step span id → (agent, task class)."""
        self._traces: OrderedDict[str, tuple[int, str, str | None, str | None]] = OrderedDict()
        """Trace id → (start, step id, agent, task class) of its latest agent step still open."""
        self._reported: OrderedDict[tuple[str, str, _Key], None] = OrderedDict()

    @property
    def name(self) -> str:
        """A short name for logs: ``spikes`` (types: ``latency_spike``, ``token_spike``…)."""
        return "spikes"

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Score the cycle's model calls and report spikes.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            One detection per new ``(type, trace, key)`` spike.
        """
        found: list[Detection] = []
        learn = self._learn_step
        for node in cycle.nodes:
            operation = node.operation
            if operation == _CHAT:
                if not node.error:
                    self._score(node, found)
                continue
            started = node.started
            if started is not None:
                if node.agent is not None and node.tool_name is None:
                    learn(node.trace_id, started, node, started=True)
            elif operation in _AGENT_OPS and node.agent is not None:
                learn(node.trace_id, node.span_id, node, started=False)
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """Nothing to report with time alone.

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            No detections.
        """
        del now_ns
        return []

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

    def _learn_step(self, trace_id: str, step_id: str, node: GraphNode, *, started: bool) -> None:
        """Remember an agent step: at its start marker (``started``) or when its span ends."""
        steps = self._steps
        if step_id not in steps:
            steps[step_id] = (node.agent or "", node.task_class)
            if len(steps) > self.max_steps:
                steps.popitem(last=False)
        traces = self._traces
        latest = traces.get(trace_id)
        if not started:  # the step ended: it is no longer where the trace's calls come from
            if latest is not None and latest[1] == step_id:
                del traces[trace_id]
            return
        if latest is None or latest[0] <= node.start_ns:
            traces[trace_id] = (node.start_ns, step_id, node.agent, node.task_class)
            traces.move_to_end(trace_id)
            if len(traces) > self.max_traces:
                traces.popitem(last=False)

    def _attribute(self, node: GraphNode) -> tuple[str | None, str | None]:
        """Return ``(agent, task class)`` of a call, from what is known now."""
        task_class = node.task_class
        parent = node.parent_id
        step = None if parent is None else self._steps.get(parent)
        if step is not None:
            return step[0], task_class or step[1]
        latest = self._traces.get(node.trace_id)
        if latest is not None and latest[0] <= node.start_ns:
            return latest[2], task_class or latest[3]
        return None, task_class

    def _score(self, node: GraphNode, found: list[Detection]) -> None:
        """Score a call's metrics against its key's baselines; append spikes to ``found``."""
        agent, task_class = self._attribute(node)
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
                detection = self._report(metric, key, node, value, math.exp(median), score)
                if detection is not None:
                    found.append(detection)

    def _report(
        self, metric: Metric, key: _Key, node: GraphNode, value: float, normal: float, score: float
    ) -> Detection | None:
        type_ = _TYPES[metric]
        seen = (type_, node.trace_id, key)
        if seen in self._reported:
            return None
        self._reported[seen] = None
        if len(self._reported) > self.max_reported:
            self._reported.popitem(last=False)
        agent, model, task_class = key
        who = f"agent {agent}" if agent is not None else "an unattributed agent"
        task = f", task class {task_class}" if task_class is not None else ""
        ratio = value / normal
        what = {
            "latency": f"took {value:.2f} s, {ratio:.1f}x its usual {normal:.2f} s",
            "tokens": f"used {value:,.0f} tokens, {ratio:.1f}x its usual {normal:,.0f}",
            "cost": f"cost ${value:.4f}, {ratio:.1f}x its usual ${normal:.4f}",
        }[metric]
        run_id = node.run_id or node.trace_id
        return Detection(
            id=detection_id(type_, node.trace_id, f"{agent}|{model}|{task_class}"),
            type=type_,
            severity="warning",
            trace_id=node.trace_id,
            run_id=run_id,
            agent=agent,
            span_ids=(node.span_id,),
            explanation=(
                f"{metric} spike in run {run_id}: a call to {model or 'an unknown model'} by "
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


def _metric(name: str) -> Metric:
    if name == "latency":
        return "latency"
    if name == "tokens":
        return "tokens"
    if name == "cost":
        return "cost"
    raise DetectionError(f"snapshot stream: unknown metric {name!r}")
