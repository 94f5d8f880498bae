"""The router trainer: joins routing decisions with their outcomes and publishes the route table.

The trainer watches the span stream like a detector (:attr:`RouterTrainer.observer`). Every
model call that carries a routing decision is an outcome for the model that answered it
(``gen_ai.request.model`` as routed, so names match the route table's candidates), in the
decision's task class and prompt cluster:

- quality 1.0 when the call succeeded, 0.0 when it failed; each model the router fell back
  from on the way (``agentmesh.route.fallback`` events) gets a failed outcome too;
- an explicit score (``agentmesh.feedback.score``, on the call's span or later on a feedback
  span naming the decision: ``POST /v1/feedback``) replaces the assumed quality; a score that
  arrives before its decision is held (at most ``max_held_feedback``, the oldest dropped
  beyond) for ``feedback_grace_s`` seconds and applied when the decision arrives within them,
  else dropped as an orphan: counted, and logged once per sweep
  (:meth:`RouterTrainer.expire_feedback`, run from the pipeline's ticks);
- a detection naming the call's span or the step it ran in (its parent span: an agent in a
  loop, a runaway, a context loss…) takes
  :data:`~agentmesh.collector.routing.outcomes.DETECTION_PENALTY` off it, once per detection
  type, unless an explicit score was given (the score wins): the rule of
  :func:`~agentmesh.collector.routing.outcomes.outcome_quality`, which the decisions API and
  ``agentmesh export decisions`` apply too, so offline training learns what the trainer does.

Outcomes update the route table's :class:`~agentmesh.router.learned.predictor.Predictor`
online (keeping the clusters an offline training gave it) and the observed statistics of each
model (calls, errors, latency p50 / p95, mean cost, mean quality). At most every
``publish_interval_s`` seconds, when something changed, the trainer publishes the next table
(:meth:`~agentmesh.collector.routing.table_state.RouteTableState.publish`: Redis key and
``GET /v1/route-table``). The learned state lives in the table itself, so a collector that
restarts on the same Redis carries on from the last published table.

Example:
    >>> from agentmesh.collector.routing.table_state import MemoryRouteTableState
    >>> async def main() -> int:
    ...     async with MemoryRouteTableState() as state:
    ...         async with RouterTrainer(state, publish_interval_s=0.01) as trainer:
    ...             trainer.record_outcome("qa", 0, "gpt-4o-mini", 1.0, latency_s=0.4)
    ...             await trainer.publish_now()
    ...         return state.published.models["gpt-4o-mini"].calls
    >>> import asyncio
    >>> asyncio.run(main())
    1
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self, cast

from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.node_feed import NodeFeed
from agentmesh.collector.graph.node import GraphNode
from agentmesh.collector.routing.configured import tradeoffs_from_settings, with_configuration
from agentmesh.collector.routing.outcomes import outcome_quality
from agentmesh.collector.routing.table_state import RouteTableState
from agentmesh.core import semconv
from agentmesh.core.errors import ConfigError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait
from agentmesh.router.learned.predictor import Predictor
from agentmesh.router.learned.quality import QualityModel
from agentmesh.router.request import RouteMode
from agentmesh.router.table import ModelStats, RouteTable, Tradeoff

if TYPE_CHECKING:
    from agentmesh.collector.settings import CollectorSettings

__all__ = [
    "RouterTrainer",
    "TrainerObserver",
    "load_predictor",
    "make_router_trainer",
]

_log = get_logger(__name__)

_LATENCY_WINDOW: Final = 512
_DECISIONS_KEPT: Final = 65_536
_FEEDBACK_HELD_MAX: Final = 16_384
_SWEEP_MIN_S: Final = 1.0
_SWEEP_MAX_S: Final = 60.0


class _Decision:
    """A decision the trainer learned from, kept to correct its outcome later."""

    __slots__ = ("cluster", "error", "feedback", "model", "penalties", "quality", "task")

    def __init__(
        self, task: str | None, cluster: int, model: str, error: bool, feedback: float | None
    ) -> None:
        self.task = task
        self.cluster = cluster
        self.model = model
        self.error = error
        self.feedback = feedback
        self.penalties: set[str] = set()
        self.quality = outcome_quality(error=error, feedback=feedback, penalties=0)


class _Observed:
    """Running statistics of one model."""

    __slots__ = ("calls", "cost", "cost_n", "errors", "latencies", "quality", "quality_n")

    def __init__(self, base: ModelStats | None = None) -> None:
        self.calls = base.calls if base else 0
        self.errors = base.errors if base else 0
        self.latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        if base is not None and base.latency_p50_s is not None:
            self.latencies.append(base.latency_p50_s)
        self.cost = self.cost_n = self.quality = self.quality_n = 0
        if base is not None and base.cost_mean_usd is not None:
            self.cost, self.cost_n = base.cost_mean_usd * base.calls, base.calls
        if base is not None and base.quality_mean is not None:
            self.quality, self.quality_n = base.quality_mean * base.calls, base.calls

    def stats(self) -> ModelStats:
        ordered = sorted(self.latencies)

        def pick(q: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        return ModelStats(
            calls=self.calls,
            errors=min(self.errors, self.calls),
            latency_p50_s=pick(0.5),
            latency_p95_s=pick(0.95),
            cost_mean_usd=self.cost / self.cost_n if self.cost_n else None,
            quality_mean=self.quality / self.quality_n if self.quality_n else None,
        )


class TrainerObserver(NodeFeed):
    """The trainer's eyes on the span stream (a pipeline detector that reports nothing).

    Its ticks sweep the feedback held for decisions not seen (:meth:`RouterTrainer.expire_feedback`)
    every tenth of the grace period (at least every second, at most every minute apart), so an
    orphan is dropped, and logged with the others of its sweep, shortly after its grace period.

    Args:
        trainer: The trainer it feeds.
    """

    def __init__(self, trainer: RouterTrainer) -> None:
        super().__init__("router_trainer", trainer.observe_nodes)
        self._trainer = trainer
        sweep_s = min(_SWEEP_MAX_S, max(_SWEEP_MIN_S, trainer.feedback_grace_s / 10))
        self._sweep_ns = int(sweep_s * 1e9)
        self._next_sweep_ns: int | None = None

    def tick(self, now_ns: int) -> list[Detection]:
        """Sweep the held feedback when a sweep is due.

        Args:
            now_ns: Wall-clock time, Unix nanoseconds (paces the sweeps only).

        Returns:
            Nothing (an empty list).
        """
        if self._next_sweep_ns is None:
            self._next_sweep_ns = now_ns + self._sweep_ns
        elif now_ns >= self._next_sweep_ns:
            self._next_sweep_ns = now_ns + self._sweep_ns
            self._trainer.expire_feedback()
        return []


class RouterTrainer:
    """Learns from outcomes and publishes the route table; an async context manager.

    Args:
        state: Where the route table is published.
        publish_interval_s: Least time between two publications.
        base: The predictor to start from when the published table has none (for example one
            trained offline); an empty one (task classes only) by default.
        modes: Routing mode per task class to push to apps (``"*"``: every other class);
            ``None`` leaves the table's modes as they are.
        tradeoffs: Trade-off per task class to push to apps (``"*"``: default); ``None`` leaves
            the table's as they are.
        feedback_grace_s: How long a score whose decision has not been seen is held for it
            (the decision's span may arrive later); after that it is an orphan, dropped by
            :meth:`expire_feedback`.
        max_held_feedback: Most scores held at once; beyond, the oldest is dropped (counted in
            :attr:`feedback_orphans_evicted`).
        clock: Monotonic seconds, for the grace period (``time.monotonic``).

    Raises:
        ConfigError: ``feedback_grace_s`` is not positive or ``max_held_feedback`` below 1.
    """

    def __init__(
        self,
        state: RouteTableState,
        *,
        publish_interval_s: float = 2.0,
        base: Predictor | None = None,
        modes: Mapping[str, RouteMode] | None = None,
        tradeoffs: Mapping[str, Tradeoff] | None = None,
        feedback_grace_s: float = 600.0,
        max_held_feedback: int = _FEEDBACK_HELD_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if feedback_grace_s <= 0 or max_held_feedback < 1:
            raise ConfigError("feedback_grace_s must be positive and max_held_feedback at least 1")
        self._state = state
        self._modes = dict(modes) if modes is not None else None
        self._tradeoffs = dict(tradeoffs) if tradeoffs is not None else None
        self._interval = publish_interval_s
        self._base = base
        self._predictor = base if base is not None else Predictor(QualityModel())
        self._observed: dict[str, _Observed] = {}
        self._decisions: OrderedDict[str, _Decision] = OrderedDict()
        self._by_span: OrderedDict[str, str] = OrderedDict()
        self._by_step: OrderedDict[str, list[str]] = OrderedDict()
        self._grace_s = feedback_grace_s
        self._held_max = max_held_feedback
        self._clock = clock
        self._held: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """Scores waiting for their decision: decision id -> (score, when held), oldest first."""
        self._evicted_unlogged = 0
        self._first_evicted: str | None = None
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.outcomes = 0
        """Outcomes learned."""
        self.feedback_joined_late = 0
        """Held scores applied when their decision arrived within the grace period."""
        self.feedback_orphans_expired = 0
        """Held scores dropped because their decision did not arrive within the grace period."""
        self.feedback_orphans_evicted = 0
        """Held scores dropped, oldest first, to keep at most ``max_held_feedback``."""
        self._observer = TrainerObserver(self)

    @property
    def observer(self) -> TrainerObserver:
        """The pipeline detector that feeds the trainer."""
        return self._observer

    @property
    def predictor(self) -> Predictor:
        """The predictor being trained."""
        return self._predictor

    @property
    def feedback_grace_s(self) -> float:
        """How long a score waits for a decision not seen yet."""
        return self._grace_s

    @property
    def feedback_held(self) -> int:
        """Scores held now, waiting for their decision."""
        return len(self._held)

    async def __aenter__(self) -> Self:
        self._resume_from(self._state.published)
        if self._modes is not None or self._tradeoffs is not None or self._base is not None:
            self._dirty.set()  # apps get the configuration without waiting for outcomes
        self._task = asyncio.create_task(self._run(), name="agentmesh-router-trainer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._dirty.is_set():
            with contextlib.suppress(Exception):
                await self.publish_now()

    def _resume_from(self, table: RouteTable) -> None:
        if table.predictor is not None:  # what was learned before a restart wins over the base
            try:
                self._predictor = Predictor.from_dict(table.predictor)
            except (ValueError, TypeError) as exc:
                _log.warning("router.trainer_predictor_invalid", error=str(exc))
        self._observed = {m: _Observed(s) for m, s in table.models.items()}

    # --- learning -----------------------------------------------------------------------------

    def record_outcome(
        self,
        task_class: str | None,
        cluster: int,
        model: str,
        quality: float,
        *,
        cost_usd: float | None = None,
        latency_s: float | None = None,
        error: bool = False,
    ) -> None:
        """Learn from one outcome.

        Args:
            task_class: The call's task class.
            cluster: The prompt's cluster.
            model: The model that answered (or failed).
            quality: The outcome's quality in [0, 1].
            cost_usd: What the call cost.
            latency_s: How long it took.
            error: Whether the call failed.
        """
        self._predictor.quality.update(
            task_class, cluster, model, quality, cost_usd=cost_usd, latency_s=latency_s
        )
        observed = self._observed.get(model)
        if observed is None:
            observed = self._observed[model] = _Observed()
        observed.calls += 1
        observed.errors += int(error)
        if latency_s is not None and not error:
            observed.latencies.append(latency_s)
        if cost_usd is not None:
            observed.cost += cost_usd
            observed.cost_n += 1
        observed.quality += quality
        observed.quality_n += 1
        self.outcomes += 1
        self._dirty.set()

    def _rescore(
        self, decision_id: str, *, feedback: float | None = None, penalty: str | None = None
    ) -> None:
        """Correct a decision's outcome for a score or a detection that came after it.

        A score for a decision not seen yet is held (see :meth:`_hold`); a detection for one
        is not (it names spans the trainer has not seen, or forgot).
        """
        known = self._decisions.get(decision_id)
        if known is None:
            if feedback is not None:
                self._hold(decision_id, feedback)
            return
        if feedback is not None:
            known.feedback = feedback
        if penalty is not None:
            known.penalties.add(penalty)
        quality = outcome_quality(
            error=known.error, feedback=known.feedback, penalties=len(known.penalties)
        )
        delta = quality - known.quality
        if delta:
            self._predictor.quality.adjust(known.task, known.cluster, known.model, delta)
            observed = self._observed.get(known.model)
            if observed is not None:
                observed.quality += delta
            known.quality = quality
            self._dirty.set()

    def _hold(self, decision_id: str, score: float) -> None:
        """Keep a score for a decision not seen (yet); the latest score of a decision wins."""
        self._held.pop(decision_id, None)
        self._held[decision_id] = (score, self._clock())
        while len(self._held) > self._held_max:
            evicted, _ = self._held.popitem(last=False)
            self.feedback_orphans_evicted += 1
            self._evicted_unlogged += 1
            if self._first_evicted is None:
                self._first_evicted = evicted

    def expire_feedback(self) -> int:
        """Drop the held scores whose decision did not arrive within the grace period.

        What this sweep dropped, and what the cap dropped since the previous sweep, is logged
        in one warning (how many, the oldest decision id), not one line per score.

        Returns:
            How many scores expired.
        """
        deadline = self._clock() - self._grace_s
        expired = 0
        oldest: str | None = None
        while self._held:
            decision_id, (_score, held_at) = next(iter(self._held.items()))
            if held_at > deadline:
                break
            del self._held[decision_id]
            expired += 1
            if oldest is None:
                oldest = decision_id
        self.feedback_orphans_expired += expired
        evicted, first_evicted = self._evicted_unlogged, self._first_evicted
        self._evicted_unlogged, self._first_evicted = 0, None
        if expired or evicted:
            _log.warning(
                "router.feedback_orphans_dropped",
                expired=expired,
                evicted=evicted,
                oldest_decision_id=first_evicted or oldest,
                grace_seconds=self._grace_s,
                held=len(self._held),
                hint="no routed call with these decision ids reached this collector in time: "
                "check the decision_id sent and that the app's spans reach this collector",
            )
        return expired

    def _remember(self, node: GraphNode, decision: _Decision) -> None:
        route = node.route
        assert route is not None
        self._decisions[route.decision_id] = decision
        self._by_span[node.span_id] = route.decision_id
        if node.parent_id is not None:  # the step it ran in: a detection may name that
            self._by_step.setdefault(node.parent_id, []).append(route.decision_id)
        while len(self._decisions) > _DECISIONS_KEPT:
            self._decisions.popitem(last=False)
        while len(self._by_span) > _DECISIONS_KEPT:
            self._by_span.popitem(last=False)
        while len(self._by_step) > _DECISIONS_KEPT:
            self._by_step.popitem(last=False)

    def observe_nodes(self, nodes: Iterable[GraphNode]) -> None:
        """Learn from the routed model calls and feedback spans among the nodes.

        Args:
            nodes: Spans as graph nodes.
        """
        for node in nodes:
            route = node.route
            if route is None:
                continue
            if node.operation != semconv.Operation.CHAT:
                if route.feedback_score is not None:
                    self._rescore(route.decision_id, feedback=route.feedback_score)
                continue
            model = node.request_model or node.model  # the model sent last: the one answering
            if model is None:
                continue
            for failed, _error, _to in node.failed_attempts:
                self.record_outcome(route.task_class, route.cluster, failed, 0.0, error=True)
            decision = _Decision(
                route.task_class, route.cluster, model, node.error, route.feedback_score
            )
            latency = node.duration_ns / 1e9
            self.record_outcome(
                route.task_class,
                route.cluster,
                model,
                decision.quality,
                cost_usd=node.cost_usd if node.cost_usd else None,
                latency_s=latency if not node.failed_attempts else None,
                error=node.error,
            )
            self._remember(node, decision)
            held = self._held.pop(route.decision_id, None)
            if held is not None:  # the score came first, within the grace period
                self.feedback_joined_late += 1
                self._rescore(route.decision_id, feedback=held[0])

    async def on_detection(self, detection: Detection) -> None:
        """Take a detection's penalty off the decisions whose call, or whose step, it names.

        Once per detection type and decision; not when an explicit score was given.

        Args:
            detection: The detection.
        """
        penalised: set[str] = set()
        for span_id in detection.span_ids:
            decision = self._by_span.get(span_id)
            if decision is not None:
                penalised.add(decision)
            penalised.update(self._by_step.get(span_id, ()))
        for decision in penalised:
            self._rescore(decision, penalty=detection.type)

    # --- publishing ---------------------------------------------------------------------------

    def _change(self, table: RouteTable) -> RouteTable:
        models = dict(table.models)
        models.update({m: o.stats() for m, o in self._observed.items()})
        table = replace(table, predictor=self._predictor.to_dict(), models=models)
        return with_configuration(table, self._modes, self._tradeoffs)

    async def publish_now(self) -> RouteTable:
        """Publish the table with what was learned so far.

        Returns:
            The published table.
        """
        self._dirty.clear()
        return await self._state.publish(self._change)

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            try:
                await self.publish_now()
            except Exception as exc:  # noqa: BLE001 - any backend failure: keep learning, retry
                _log.warning("router.trainer_publish_failed", error=str(exc))
                self._dirty.set()
            await asyncio.sleep(self._interval)


def load_predictor(path: Path) -> Predictor:
    """Read a predictor trained offline (the JSON of ``Predictor.to_dict``).

    Args:
        path: The file.

    Returns:
        The predictor.

    Raises:
        ConfigError: The file cannot be read or is not a predictor (the message says why).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("the file does not hold a JSON object")
        return Predictor.from_dict(cast("dict[str, object]", raw))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"AGENTMESH_COLLECTOR_ROUTER_PREDICTOR_PATH: cannot load a predictor from {path}: {exc}"
        ) from exc


def make_router_trainer(
    settings: CollectorSettings, state: RouteTableState
) -> RouterTrainer | None:
    """Build the trainer the settings ask for (``None`` when training is off).

    Args:
        settings: The collector's settings.
        state: Where the route table is published.

    Returns:
        The trainer, not entered.

    Raises:
        ConfigError: The predictor file or a trade-off is invalid.
    """
    if not settings.router_training:
        return None
    base = (
        load_predictor(settings.router_predictor_path) if settings.router_predictor_path else None
    )
    tradeoffs = tradeoffs_from_settings(settings)
    return RouterTrainer(
        state,
        publish_interval_s=settings.router_publish_seconds,
        base=base,
        modes=settings.router_modes or None,
        tradeoffs=tradeoffs,
        feedback_grace_s=settings.router_feedback_grace_seconds,
    )
