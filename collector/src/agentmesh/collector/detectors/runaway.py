"""Runaway runs: cost or tokens over the run's budget, or far over its workflow's norm.

:class:`RunawayDetector` reports ``runaway`` on two grounds, each at most once per run:

- **budget** (severity ``critical``): the run's cost so far exceeds its budget
  (``agentmesh.run.budget_usd`` on any of its spans; the smallest when they differ), or the
  optional caps every run gets (``max_run_cost_usd``, ``max_run_tokens``). Checked each cycle
  on the run's graph totals (the builder counts each LLM call once), so the finding comes with
  the ``chat`` span that crossed the line, while the run is still going.
- **norm** (severity ``error``): the run's running total exceeds what completed runs of the same
  workflow (``gen_ai.workflow.name``) cost, by far. Per workflow the detector keeps the totals
  (cost and tokens) of the last ``window`` completed runs (graph ``complete``); once it holds
  ``min_runs`` of them, the threshold of each metric is ``max(p95_factor * p95, median +
  mad_factor * MAD)`` (MAD: median absolute deviation). With the defaults (3 * p95, median + 8
  MAD) a run must cost three times what the 95th percentile run cost; runs whose length varies
  two-fold never come near. A metric whose threshold is 0 (workflows that record no cost) is
  not judged. Runs reported as runaway are not learned from.

The per-workflow history is the learned state: :meth:`RunawayDetector.snapshot` and
:meth:`RunawayDetector.restore` carry it across restarts. Per-run state (budgets, what was
reported) is forgotten after the run's graph completes.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from agentmesh.collector.detection import Detection, JsonValue, Severity, detection_id
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
from agentmesh.core.errors import DetectionError

__all__ = ["RUNAWAY", "RunawayDetector", "WorkflowNorm"]

RUNAWAY: Final = "runaway"
"""Detection type of :class:`RunawayDetector`."""

_CHAT: Final = semconv.Operation.CHAT
_SNAPSHOT_VERSION: Final = 1


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted values."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class WorkflowNorm:
    """What completed runs of one workflow cost: a window of totals and the thresholds.

    The medians and thresholds are recomputed (sorting the window) when a twentieth of the
    window is new, not on every run: they move slowly, and learning stays cheap.

    Args:
        window: Completed runs kept (the oldest are dropped).
        p95_factor: Multiple of the 95th percentile a run must exceed.
        mad_factor: MADs above the median a run must exceed.

    Example:
        >>> norm = WorkflowNorm(window=100)
        >>> for cost in [1.0, 1.2, 0.8, 1.1, 0.9]:
        ...     norm.add(cost, 1000)
        >>> round(norm.cost_threshold, 2), norm.runs
        (3.54, 5)
    """

    __slots__ = (
        "cost_median",
        "cost_threshold",
        "costs",
        "mad_factor",
        "p95_factor",
        "stale",
        "token_median",
        "token_threshold",
        "tokens",
    )

    def __init__(self, window: int, p95_factor: float = 3.0, mad_factor: float = 8.0) -> None:
        self.costs: deque[float] = deque(maxlen=window)
        self.tokens: deque[float] = deque(maxlen=window)
        self.p95_factor = p95_factor
        self.mad_factor = mad_factor
        self.cost_median = self.cost_threshold = 0.0
        self.token_median = self.token_threshold = 0.0
        self.stale = 0  # runs added since the thresholds were computed

    @property
    def runs(self) -> int:
        """Completed runs in the window."""
        return len(self.costs)

    def add(self, cost_usd: float, tokens: float) -> None:
        """Learn a completed run's totals.

        Args:
            cost_usd: Its cost.
            tokens: Its tokens (input and output).
        """
        self.costs.append(cost_usd)
        self.tokens.append(tokens)
        self.stale += 1
        if self.stale * 20 >= len(self.costs):
            self.refresh()

    def refresh(self) -> None:
        """Recompute the medians and thresholds from the window now."""
        self.stale = 0
        if not self.costs:
            return
        self.cost_median, self.cost_threshold = self._threshold(self.costs)
        self.token_median, self.token_threshold = self._threshold(self.tokens)

    def to_json(self) -> dict[str, JsonValue]:
        """Return the window and the statistics as JSON-ready data.

        Returns:
            ``{"cost": [...], "tokens": [...], "stats": [cost median, cost threshold,
            token median, token threshold, stale]}``.
        """
        cost: list[JsonValue] = list(self.costs)
        tokens: list[JsonValue] = list(self.tokens)
        stats: list[JsonValue] = [
            self.cost_median,
            self.cost_threshold,
            self.token_median,
            self.token_threshold,
            self.stale,
        ]
        return {"cost": cost, "tokens": tokens, "stats": stats}

    def load_json(self, data: Mapping[str, JsonValue]) -> None:
        """Take back what :meth:`to_json` returned.

        Args:
            data: The window and statistics.

        Raises:
            DetectionError: They are malformed.
        """
        costs, tokens, stats = data.get("cost"), data.get("tokens"), data.get("stats")
        if not isinstance(costs, list) or not isinstance(tokens, list) or len(costs) != len(tokens):
            raise DetectionError("a workflow norm needs cost and tokens lists of one length")
        for value in (*costs, *tokens):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DetectionError(f"a workflow norm holds a non-number: {value!r}")
        self.costs.clear()
        self.tokens.clear()
        self.costs.extend(float(v) for v in costs if isinstance(v, int | float))
        self.tokens.extend(float(v) for v in tokens if isinstance(v, int | float))
        numbers = (
            [v for v in stats if isinstance(v, int | float)] if isinstance(stats, list) else []
        )
        if len(numbers) == 5:
            self.cost_median, self.cost_threshold = float(numbers[0]), float(numbers[1])
            self.token_median, self.token_threshold = float(numbers[2]), float(numbers[3])
            self.stale = int(numbers[4])
        else:
            self.refresh()

    def _threshold(self, values: deque[float]) -> tuple[float, float]:
        ordered = sorted(values)
        median = _quantile(ordered, 0.5)
        mad = _quantile(sorted(abs(v - median) for v in ordered), 0.5)
        threshold = max(self.p95_factor * _quantile(ordered, 0.95), median + self.mad_factor * mad)
        return median, threshold


@dataclass(slots=True)
class _Run:
    budget_usd: float | None = None
    workflow: str | None = None
    cost_seen: float = 0.0  # graph cost at the previous check
    budget_reported: bool = False
    norm_reported: bool = False
    learned: bool = False
    run_id: str | None = None
    chats: list[GraphNode] = field(default_factory=lambda: [])  # this cycle's


class RunawayDetector:
    """Flags runs over their budget, or far over what their workflow's runs cost.

    Args:
        min_runs: Completed runs of a workflow needed before its norm is judged.
        window: Completed runs per workflow kept for the norm.
        p95_factor: The norm's threshold is at least this multiple of the p95 run.
        mad_factor: ... and at least the median plus this many MADs.
        max_run_cost_usd: Cost cap of every run (in addition to its own budget); ``None``: none.
        max_run_tokens: Token cap of every run; ``None``: none.
        max_workflows: Workflows whose norm is kept (the least recently completed go first).
        max_traces: Runs held at most (past it the oldest are forgotten first).
        linger_seconds: How long a finished run's state stays for late spans.
        idle_seconds: How long an unfinished run's state stays without new spans.
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.

    Example:
        >>> from agentmesh.collector.testing import SpanFactory, cycle_of, with_attributes
        >>> f = SpanFactory()
        >>> root = f.workflow("research", run_id="run-2")
        >>> agent = with_attributes(
        ...     f.agent("researcher", parent=root, run_id="run-2"),
        ...     {semconv.AGENTMESH_RUN_BUDGET_USD: 0.5},
        ... )
        >>> chats = [f.chat(parent=agent, cost_usd=0.2) for _ in range(3)]
        >>> (found,) = RunawayDetector().observe(cycle_of([*chats, agent]))
        >>> found.explanation
        'run run-2 has cost $0.6000 so far, over its budget of $0.5000'
    """

    def __init__(
        self,
        *,
        min_runs: int = 20,
        window: int = 500,
        p95_factor: float = 3.0,
        mad_factor: float = 8.0,
        max_run_cost_usd: float | None = None,
        max_run_tokens: int | None = None,
        max_workflows: int = 1_000,
        max_traces: int = DEFAULT_MAX_TRACES,
        linger_seconds: float = DEFAULT_LINGER_NS / 1e9,
        idle_seconds: float = DEFAULT_IDLE_NS / 1e9,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if min_runs < 1 or window < min_runs:
            raise DetectionError(f"need 1 <= min_runs <= window, got {min_runs} and {window}")
        if p95_factor < 1 or mad_factor < 0:
            raise DetectionError(
                f"need p95_factor >= 1 and mad_factor >= 0, got {p95_factor} and {mad_factor}"
            )
        if max_workflows < 1:
            raise DetectionError(f"max_workflows must be at least 1, got {max_workflows}")
        self.min_runs = min_runs
        self.window = window
        self.p95_factor = p95_factor
        self.mad_factor = mad_factor
        self.max_run_cost_usd = max_run_cost_usd
        self.max_run_tokens = max_run_tokens
        self.max_workflows = max_workflows
        self._cost_cap = math.inf if max_run_cost_usd is None else max_run_cost_usd
        self._token_cap = math.inf if max_run_tokens is None else max_run_tokens
        self._clock = clock
        self._norms: OrderedDict[str, WorkflowNorm] = OrderedDict()
        self._runs: RunStates[_Run] = RunStates(
            _Run,
            max_traces=max_traces,
            linger_ns=int(linger_seconds * 1e9),
            idle_ns=int(idle_seconds * 1e9),
        )

    @property
    def name(self) -> str:
        """The detection type reported: ``runaway``."""
        return RUNAWAY

    @property
    def runs_held(self) -> int:
        """Runs whose state is held."""
        return len(self._runs)

    def norm(self, workflow: str) -> WorkflowNorm | None:
        """Return what completed runs of a workflow cost, when any was learned.

        Args:
            workflow: The workflow name.

        Returns:
            Its norm, or ``None``.
        """
        return self._norms.get(workflow)

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Check the runs the cycle changed against their budgets and norms; learn finished runs.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            New detections.
        """
        runs = self._runs
        now = cycle.now_ns
        active: dict[str, _Run] = {}
        touch = runs.touch
        for node in cycle.nodes:
            budget = node.budget_usd
            workflow = node.workflow_name
            run_id = node.run_id
            trace_id = node.trace_id
            if node.operation == _CHAT:
                run = active.get(trace_id)
                if run is None:
                    run = active[trace_id] = touch(trace_id, now)
                run.chats.append(node)
            elif budget is None and workflow is None and run_id is None:
                continue
            else:
                run = active.get(trace_id)
                if run is None:
                    run = active[trace_id] = touch(trace_id, now)
            if run.run_id is None:
                run.run_id = run_id
            if workflow is not None and run.workflow is None:
                run.workflow = workflow
            if (
                budget is not None
                and budget > 0
                and (run.budget_usd is None or budget < run.budget_usd)
            ):
                run.budget_usd = budget
        found: list[Detection] = []
        graphs = cycle.graphs
        check = self._check
        for trace_id, run in active.items():
            graph = graphs.get(trace_id)
            if graph is not None:
                check(graph, run, found)
            run.chats.clear()
        for trace_id, graph in graphs.items():
            if graph.complete:
                run = runs.get(trace_id)
                if run is None:
                    run = runs.touch(trace_id, now)
                if not run.learned:
                    self._learn(graph, run)
                    runs.finish(trace_id, now)
        runs.sweep(now)
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """Forget finished and idle runs.

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            Nothing: runaways are found when LLM calls arrive.
        """
        self._runs.sweep(now_ns)
        return []

    def snapshot(self) -> dict[str, JsonValue]:
        """Return the per-workflow history of completed runs.

        Returns:
            ``{"version": 1, "workflows": {name: WorkflowNorm.to_json()}}``.
        """
        workflows: dict[str, JsonValue] = {
            name: norm.to_json() for name, norm in self._norms.items()
        }
        return {"version": _SNAPSHOT_VERSION, "workflows": workflows}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Replace the per-workflow history by a snapshot's.

        Args:
            state: What :meth:`snapshot` returned.

        Raises:
            DetectionError: The snapshot is of another version or malformed.
        """
        if state.get("version") != _SNAPSHOT_VERSION:
            raise DetectionError(f"runaway snapshot version {state.get('version')!r} unknown")
        workflows = state.get("workflows")
        if not isinstance(workflows, dict):
            raise DetectionError("runaway snapshot has no workflows mapping")
        norms: OrderedDict[str, WorkflowNorm] = OrderedDict()
        for name, entry in workflows.items():
            if not isinstance(entry, dict):
                raise DetectionError(f"runaway snapshot entry for {name!r} is not a mapping")
            norm = WorkflowNorm(self.window, self.p95_factor, self.mad_factor)
            norm.load_json(entry)
            norms[name] = norm
        while len(norms) > self.max_workflows:
            norms.popitem(last=False)
        self._norms = norms

    def _check(self, graph: RunGraph, run: _Run, found: list[Detection]) -> None:
        """Check a run against its budget and its workflow's norm; append what it exceeds."""
        cost = graph.cost_usd
        tokens = graph.input_tokens + graph.output_tokens
        budget = run.budget_usd
        if not run.budget_reported and (
            (budget is not None and cost > budget)
            or cost > self._cost_cap
            or tokens > self._token_cap
        ):
            detection = self._over_budget(graph, run, cost, tokens)
            if detection is not None:
                run.budget_reported = True
                found.append(detection)
        workflow = run.workflow or graph.workflow_name
        norm = None if workflow is None else self._norms.get(workflow)
        if (
            norm is not None
            and not run.norm_reported
            and norm.runs >= self.min_runs
            and ((0 < norm.cost_threshold < cost) or (0 < norm.token_threshold < tokens))
        ):
            detection = self._over_norm(graph, run, cost, tokens)
            if detection is not None:
                run.norm_reported = True
                found.append(detection)
        run.cost_seen = cost

    def _crossing(self, run: _Run, limit: float) -> str | None:
        """The cycle's chat span that took the cost over ``limit`` (the last one if unclear)."""
        total = run.cost_seen
        for chat in run.chats:
            total += chat.cost_usd
            if total > limit:
                return chat.span_id
        return run.chats[-1].span_id if run.chats else None

    def _over_budget(
        self, graph: RunGraph, run: _Run, cost: float, tokens: int
    ) -> Detection | None:
        rid = run_id_of(graph, run.run_id, graph.trace_id)
        limits = [b for b in (run.budget_usd, self.max_run_cost_usd) if b is not None]
        budget = min(limits) if limits else None
        if budget is not None and cost > budget:
            span_id = self._crossing(run, budget)
            explanation = f"run {rid} has cost ${cost:.4f} so far, over its budget of ${budget:.4f}"
            facts: dict[str, JsonValue] = {"limit_usd": budget, "budget_usd": run.budget_usd}
        elif self.max_run_tokens is not None and tokens > self.max_run_tokens:
            span_id = run.chats[-1].span_id if run.chats else None
            explanation = (
                f"run {rid} has used {tokens:,} tokens so far, over the cap of "
                f"{self.max_run_tokens:,}"
            )
            facts = {"limit_tokens": self.max_run_tokens}
        else:
            return None
        return self._detection(graph, run, "budget", "critical", span_id, explanation, facts)

    def _over_norm(self, graph: RunGraph, run: _Run, cost: float, tokens: int) -> Detection | None:
        workflow = run.workflow or graph.workflow_name
        norm = None if workflow is None else self._norms.get(workflow)
        if norm is None or norm.runs < self.min_runs:
            return None  # cold start: no verdict
        if norm.cost_threshold > 0 and cost > norm.cost_threshold:
            metric, value, median, threshold = (
                "cost_usd",
                cost,
                norm.cost_median,
                norm.cost_threshold,
            )
            span_id = self._crossing(run, threshold)
            shown = f"cost ${cost:.4f}"
            against = f"the median ${median:.4f}"
            limit = f"${threshold:.4f}"
        elif norm.token_threshold > 0 and tokens > norm.token_threshold:
            metric, value, median = "tokens", float(tokens), norm.token_median
            threshold = norm.token_threshold
            span_id = run.chats[-1].span_id if run.chats else None
            shown = f"used {tokens:,} tokens"
            against = f"the median {median:,.0f}"
            limit = f"{threshold:,.0f}"
        else:
            return None
        ratio = f"{value / median:.1f} times " if median > 0 else ""
        rid = run_id_of(graph, run.run_id, graph.trace_id)
        explanation = (
            f"run {rid} has {shown} so far, {ratio}{against} of {norm.runs} completed "
            f"runs of workflow {workflow} (threshold {limit})"
        )
        facts: dict[str, JsonValue] = {
            "metric": metric,
            "value": value,
            "median": median,
            "threshold": threshold,
            "runs": norm.runs,
            "p95_factor": self.p95_factor,
            "mad_factor": self.mad_factor,
        }
        return self._detection(graph, run, "norm", "error", span_id, explanation, facts)

    def _detection(
        self,
        graph: RunGraph,
        run: _Run,
        basis: str,
        severity: Severity,
        span_id: str | None,
        explanation: str,
        facts: dict[str, JsonValue],
    ) -> Detection:
        details: dict[str, JsonValue] = {
            "basis": basis,
            "cost_usd": graph.cost_usd,
            "tokens": graph.input_tokens + graph.output_tokens,
            "llm_calls": graph.llm_calls,
            "workflow": run.workflow or graph.workflow_name,
            **facts,
        }
        return Detection(
            id=detection_id(RUNAWAY, graph.trace_id, basis),
            type=RUNAWAY,
            severity=severity,
            trace_id=graph.trace_id,
            run_id=run_id_of(graph, run.run_id, graph.trace_id),
            agent=None,
            span_ids=() if span_id is None else (span_id,),
            explanation=explanation,
            detected_at_ns=self._clock(),
            details=details,
        )

    def _learn(self, graph: RunGraph, run: _Run) -> None:
        run.learned = True
        workflow = run.workflow or graph.workflow_name
        if workflow is None or run.budget_reported or run.norm_reported:
            return  # unnamed workflows have no norm; runaways do not teach what is normal
        norm = self._norms.pop(workflow, None)
        if norm is None:
            norm = WorkflowNorm(self.window, self.p95_factor, self.mad_factor)
        self._norms[workflow] = norm  # most recently completed last
        while len(self._norms) > self.max_workflows:
            self._norms.popitem(last=False)
        norm.add(graph.cost_usd, float(graph.input_tokens + graph.output_tokens))
