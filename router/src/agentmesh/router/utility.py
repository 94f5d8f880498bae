"""The learned policy: the candidate with the best expected utility, with bounded exploration.

For each call the policy

1. takes the candidates of the call's task class (configured; by default the requested model
   and its fallback chain) and drops those that cannot serve it: another vendor's model the
   SDK cannot reach, a missing capability (tools, vision, JSON mode), a context window smaller
   than the prompt, an expected cost above the call's budget, an open circuit breaker;
2. asks the route table's :class:`~agentmesh.router.learned.predictor.Predictor` what each
   remaining model is expected to deliver for this task class and prompt cluster;
3. scores ``utility = quality - λ·cost_usd - μ·latency_s`` (λ, μ per task class from the route
   table's tradeoffs, or the policy's own) and chooses the best; the others follow as
   fallbacks, best first (a list of 64 candidates or more is scored with numpy arrays when
   the ``learned`` extra is installed: :mod:`agentmesh.router.learned.ranking`, same result);
4. explores: with probability ``exploration`` (0.05 by default, 0 turns it off) it tries the
   feasible candidate with the fewest outcomes in this task class instead, so that a model
   nobody chose yet gets a record; never an excluded one.

The reason of a decision that chooses names the candidates left out for an open circuit, best
first (``; circuit open for <model>``; at most three, the others counted): the
instrumentation says ``cooldown for <model>`` for those cooling down in the process.

A model with no outcome at all in the task class is not chosen greedily: until the table
knows something, the requested model stands (``reason`` says so). While the route table
carries no predictor at all, decisions are the pass-through policy's. Decisions are memo-free
except for the candidate lists and the predictor, which are rebuilt when the route table
changes; the policy never does I/O.

Example:
    >>> from agentmesh.router.learned.quality import QualityModel
    >>> from agentmesh.router.learned.predictor import Predictor
    >>> from agentmesh.router.table import RouteTable, Tradeoff
    >>> q = QualityModel()
    >>> for _ in range(30):
    ...     q.update("chat", 0, "gpt-4o", 0.92, cost_usd=0.004)
    ...     q.update("chat", 0, "gpt-4o-mini", 0.90, cost_usd=0.0003)
    >>> table = RouteTable(version=3, predictor=Predictor(q).to_dict(),
    ...                    tradeoffs={"*": Tradeoff(cost_weight=20.0)})
    >>> policy = UtilityPolicy(lambda: table, candidates={"*": ("gpt-4o", "gpt-4o-mini")},
    ...                        exploration=0.0)
    >>> policy.decide(RouteRequest("openai", "gpt-4o", task_class="chat")).chosen
    'gpt-4o-mini'
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

from agentmesh.core.log import get_logger
from agentmesh.router.budget import CHARS_PER_TOKEN, DEFAULT_OUTPUT_TOKENS, estimated_cost
from agentmesh.router.catalog import ModelCatalog, default_catalog
from agentmesh.router.chains import FallbackChains, reachable
from agentmesh.router.decision import RouteDecision
from agentmesh.router.learned.parse_ahead import parse, parsed, retire
from agentmesh.router.learned.predictor import Predictor
from agentmesh.router.learned.quality import ARRAY_MIN_CANDIDATES
from agentmesh.router.policy import PassThroughPolicy, budgeted
from agentmesh.router.request import RouteRequest
from agentmesh.router.table import ModelStats, RouteTable, Tradeoff

__all__ = ["UtilityPolicy"]

_log = get_logger(__name__)

_DEFAULT_LATENCY_S: Final = 1.0
_MAX_RECORDED: Final = 8
_NAMED_MAX: Final = 3
"""Candidates left out for an open circuit a reason names (the others are counted)."""
_MAX_CACHED: Final = 4096
_CHARS_BUCKET: Final = 512
_VECTOR_MIN: Final = ARRAY_MIN_CANDIDATES
"""Candidates from which a ranking is scored with numpy arrays, when numpy is installed."""
_CAPABILITY_OF: Final = (
    ("has_tools", "tools"),
    ("has_images", "vision"),
    ("wants_json", "json_mode"),
)


class UtilityPolicy:
    """Choose the candidate with the best predicted quality for its cost and latency.

    Args:
        table: Returns the route table in force (called once per decision; must not block).
        candidates: Task class → the models it may be routed to; ``"*"`` for every other
            task class. When a task class has no entry, the candidates are the requested model
            and its fallback chain.
        fallbacks: Fallback chains (also the default candidates).
        catalog: Prices, context windows and capabilities; the bundled catalog by default.
        tradeoff: λ and μ used when the route table has none for the task class.
        exploration: Share of decisions that explore (0 to 1).
        min_evidence: Outcomes a model needs in a task class before it is chosen greedily.
        seed: Seed of the exploration's random draws (``None``: unpredictable).
    """

    def __init__(
        self,
        table: Callable[[], RouteTable],
        *,
        candidates: Mapping[str, Sequence[str]] | None = None,
        fallbacks: FallbackChains | None = None,
        catalog: ModelCatalog | None = None,
        tradeoff: Tradeoff | None = None,
        exploration: float = 0.05,
        min_evidence: int = 1,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= exploration <= 1.0:
            raise ValueError(f"exploration must be within [0, 1], not {exploration}")
        self._table = table
        self._configured = {k: tuple(v) for k, v in (candidates or {}).items()}
        self._fallbacks = fallbacks if fallbacks is not None else FallbackChains()
        self._catalog = catalog if catalog is not None else (
            self._fallbacks.catalog if fallbacks is not None else default_catalog()
        )  # fmt: skip
        self._tradeoff = tradeoff if tradeoff is not None else Tradeoff()
        self._exploration = exploration
        self._min_evidence = min_evidence
        self._random = random.Random(seed)
        self._seen_raw: object = None
        self._predictor: Predictor | None = None
        self._candidate_cache: dict[tuple[object, ...], tuple[str, ...]] = {}
        self._pass_through = PassThroughPolicy(self._fallbacks)
        self._rankings: dict[_RankKey, _Ranking] = {}
        self._name_orders: dict[tuple[str, ...], array[int]] = {}
        self._ranked_table: RouteTable | None = None

    @property
    def name(self) -> str:
        """``utility``."""
        return "utility"

    @property
    def needs_text(self) -> bool:
        """Whether the route table's predictor reads the prompt text (to find its cluster)."""
        return self.text_chars > 0

    @property
    def text_chars(self) -> int:
        """Characters of the prompt's end the route table's predictor reads (0: none)."""
        predictor = self._predictor_of(self._table())
        return predictor.text_chars if predictor is not None else 0

    @property
    def predictor(self) -> Predictor | None:
        """The predictor of the route table in force (parsed once per table's predictor)."""
        return self._predictor_of(self._table())

    def _predictor_of(self, table: RouteTable) -> Predictor | None:
        if table.predictor is self._seen_raw:
            return self._predictor
        ready = parsed(table) or parse(table)  # parsed ahead by the route table's receiver
        if ready.error is not None:
            _log.warning("router.predictor_invalid", version=table.version, error=ready.error)
        predictor = ready.predictor
        if self._predictor is not None:
            retire((self._seen_raw, self._predictor))  # freed off the hot path
        self._seen_raw, self._predictor = table.predictor, predictor
        return predictor  # the candidate lists do not depend on it: they are kept

    def _candidates(self, request: RouteRequest) -> tuple[str, ...]:
        f = request.features
        context_bucket = (f.total_chars // 4096) if f.total_chars else 0
        key = (
            request.provider, request.requested_model, request.task_class,
            f.has_tools, f.has_images, f.wants_json, context_bucket,
        )  # fmt: skip
        cached = self._candidate_cache.get(key)
        if cached is not None:
            return cached
        configured = self._configured.get(request.task_class or "*") or self._configured.get("*")
        if configured is None:
            pool = self._fallbacks.candidates(request.provider, request.requested_model)
        else:
            pool = tuple(m for m in configured if reachable(request.provider, m, self._catalog))
        needed = [cap for flag, cap in _CAPABILITY_OF if getattr(f, flag)]
        tokens = f.total_chars / CHARS_PER_TOKEN
        out: list[str] = []
        for model in pool:
            info = self._catalog.get(model)
            if info is not None and (
                any(cap not in info.capabilities for cap in needed)
                or tokens + DEFAULT_OUTPUT_TOKENS > info.context_window
            ):
                continue
            out.append(model)
        result = tuple(out)
        if len(self._candidate_cache) >= _MAX_CACHED:
            self._candidate_cache.clear()
        self._candidate_cache[key] = result
        return result

    def _catalog_cost(self, model: str, chars: int) -> float | None:
        return estimated_cost(self._catalog, model, chars)

    def decide(self, request: RouteRequest) -> RouteDecision:
        """Choose a model for the call.

        Args:
            request: The call (its ``text`` is read when the predictor has clusters).

        Returns:
            The decision: candidates best first (at most eight recorded), utilities as
            scores, and the reason in words.
        """
        table = self._table()
        predictor = self._predictor_of(table)
        if table is not self._ranked_table:  # trade-offs or stats may have changed
            if self._ranked_table is not None:
                retire((self._ranked_table, self._rankings))  # freed off the hot path
            self._ranked_table = table
            self._rankings = {}
        candidates = self._candidates(request)
        if not candidates:
            return _keep(
                request, self.name, (), "no candidate has the capabilities and context it needs"
            )
        if predictor is None:  # nothing learned yet: the requested model and its chain
            if request.budget_usd is not None:  # the catalog still keeps the budget
                model, reason, order = budgeted(
                    request, self._catalog, candidates, request.requested_model, "requested model"
                )
                if model != request.requested_model:
                    order = order[:_MAX_RECORDED]
                    return RouteDecision.new(
                        request, self.name, order, (1.0,) + (0.0,) * (len(order) - 1), model,
                        f"{reason}; nothing learned yet",
                    )  # fmt: skip
            return self._pass_through.decide(request)
        cluster = predictor.cluster_of(request.text)  # 0 when it reads no text
        budget = request.budget_usd
        bucket = request.features.total_chars // _CHARS_BUCKET
        key = (
            predictor.quality.updates, request.task_class, cluster, candidates,
            request.open_circuits, budget, bucket,
        )  # fmt: skip
        ranking = self._rankings.get(key)
        if ranking is None:
            ranking = self._rank(table, predictor, key)
        if (
            self._exploration
            # one feasible candidate the greedy pick takes anyway: nothing to explore
            and (len(ranking.order) > 1 or ranking.chosen is None)
            and self._random.random() < self._exploration
            and ranking.pool
        ):
            pick = ranking.pool[self._random.randrange(len(ranking.pool))]
            rest = [i for i in ranking.order[: _MAX_RECORDED + 1] if i != pick]
            order = [pick, *rest][:_MAX_RECORDED]
            names = tuple([candidates[i] for i in order])
            scores = tuple([ranking.utilities[i] for i in order])
            chosen = candidates[pick]
            reason = f"exploring {chosen} ({ranking.evidence[pick]} outcomes in this task class)"
            reason += ranking.skipped
        elif ranking.chosen is None:
            return _keep(request, self.name, candidates, ranking.reason)
        else:
            names, scores, chosen, reason = (
                ranking.names, ranking.scores, ranking.chosen, ranking.reason
            )  # fmt: skip
        return RouteDecision.new(
            request, "utility", names, scores, chosen, reason,
            cluster=cluster, table_version=table.version,
        )  # fmt: skip

    def _rank(self, table: RouteTable, predictor: Predictor, key: _RankKey) -> _Ranking:
        _, task, cluster, candidates, blocked, budget, bucket = key
        tradeoff = (
            table.tradeoffs.get(task or "*") or table.tradeoffs.get("*") or self._tradeoff
        )  # fmt: skip
        lam, mu = tradeoff.cost_weight, tradeoff.latency_weight
        arrays = (
            predictor.quality.predict_arrays(task, cluster, candidates)
            if len(candidates) >= _VECTOR_MIN
            else None
        )
        if arrays is not None:  # numpy is there: a long list is scored with arrays
            from agentmesh.router.learned.ranking import rank

            chars = _bucket_chars(bucket)
            observed = table.models
            scored = rank(
                arrays, candidates, lam, mu, self._by_name(candidates), blocked, budget,
                self._min_evidence,
                lambda model: self._catalog_cost(model, chars),
                lambda model: _observed_latency(observed.get(model)),
            )  # fmt: skip
            utilities, evidence, order = scored.utilities, scored.evidence, scored.order
            pool, pick = scored.pool, scored.pick
        else:
            utilities, evidence, order, pool, pick = self._scored(
                table, predictor, key, lam, mu
            )  # fmt: skip
        skipped = ""  # the candidates left out for an open circuit, named when another is chosen
        if order and blocked:
            skipped = _skipped(candidates, blocked, utilities, self._by_name(candidates))
        if not order:
            chosen, names, scores = None, (), ()
            reason = "no candidate within budget and circuits"
        elif pick is None:
            chosen, names, scores = None, (), ()
            reason = "no outcomes yet for any candidate"
        else:
            top = [pick, *(i for i in order[:_MAX_RECORDED] if i != pick)][:_MAX_RECORDED]
            chosen = candidates[pick]
            names = tuple([candidates[i] for i in top])
            scores = tuple([utilities[i] for i in top])
            reason = (
                f"best utility {utilities[pick]:.3f} (quality - {lam:g}·cost - {mu:g}·latency)"
                f"{skipped}"
            )
        ranking = _Ranking(utilities, evidence, order, pool, chosen, names, scores, reason, skipped)
        if len(self._rankings) >= _MAX_CACHED:
            retire(self._rankings)  # thousands of rankings: freed off the hot path
            self._rankings = {}
        self._rankings[key] = ranking
        return ranking

    def _scored(
        self, table: RouteTable, predictor: Predictor, key: _RankKey, lam: float, mu: float
    ) -> tuple[array[float], array[int], array[int], array[int], int | None]:
        """Score and order the candidates in Python: utilities, evidence, order, pool, pick."""
        _, task, cluster, candidates, blocked, budget, bucket = key
        predictions = predictor.quality.predict(task, cluster, candidates)
        costs = [p.cost_usd for p in predictions]
        if None in costs:  # the catalog's price for a prompt of this size
            chars = _bucket_chars(bucket)
            costs = [
                self._catalog_cost(model, chars) if cost is None else cost
                for model, cost in zip(candidates, costs, strict=True)
            ]
        known = [p.latency_s for p in predictions]
        if None in known:  # the route table's observed latency, else a default
            observed = table.models
            latencies = [
                latency if latency is not None else _observed_latency(observed.get(model))
                for model, latency in zip(candidates, known, strict=True)
            ]
        else:
            latencies = cast(list[float], known)
        utility_of = [
            p.quality - lam * (cost or 0.0) - mu * latency
            for p, cost, latency in zip(predictions, costs, latencies, strict=True)
        ]
        evidence = array("q", [p.evidence for p in predictions])
        # Best first; equal utilities by name, descending (a stable sort of the name order).
        order = list(self._by_name(candidates))
        if blocked or budget is not None:
            # a learned cost is a mean per call: this call's prompt may cost more
            chars = _bucket_chars(bucket)
            order = [
                i
                for i in order
                if candidates[i] not in blocked
                and not (budget is not None and self._over(candidates[i], costs[i], chars, budget))
            ]
        order.sort(key=utility_of.__getitem__, reverse=True)  # a list: no float made per key
        if len(order) == len(candidates):  # none left out: whole-array minimum and maximum
            fewest = min(evidence, default=0)
            everyone = fewest == max(evidence, default=0)
        else:
            fewest = min((evidence[i] for i in order), default=0)
            everyone = False
        pool = array("q", order if everyone else [i for i in order if evidence[i] == fewest])
        pick = next((i for i in order if evidence[i] >= self._min_evidence), None)
        return array("d", utility_of), evidence, array("q", order), pool, pick

    def _over(self, model: str, learned: float | None, chars: int, budget: float) -> bool:
        """Whether a call of this prompt size would cost ``model`` more than ``budget``."""
        priced = self._catalog_cost(model, chars)
        known = [cost for cost in (learned, priced) if cost is not None]
        return bool(known) and max(known) > budget

    def _by_name(self, candidates: tuple[str, ...]) -> array[int]:
        """Indices of ``candidates`` by name, descending (kept per candidate list)."""
        found = self._name_orders.get(candidates)
        if found is None:
            found = array("q", sorted(range(len(candidates)), key=candidates.__getitem__))
            found.reverse()
            if len(self._name_orders) >= _MAX_CACHED:
                self._name_orders.clear()
            self._name_orders[candidates] = found
        return found


def _bucket_chars(bucket: int) -> int:
    """The prompt size the catalog prices a call at, for a size bucket (its middle)."""
    return bucket * _CHARS_BUCKET + _CHARS_BUCKET // 2


def _observed_latency(observed: ModelStats | None) -> float:
    """The latency the route table observed for a model, else :data:`_DEFAULT_LATENCY_S`."""
    latency = observed.latency_p50_s if observed is not None else None
    return latency if latency is not None else _DEFAULT_LATENCY_S


_RankKey = tuple[int, str | None, int, tuple[str, ...], frozenset[str], float | None, int]


@dataclass(frozen=True, slots=True)
class _Ranking:
    """The candidates of one (table, task class, cluster, constraints), scored and sorted.

    Held as arrays of the candidates' indices and figures, not an object per candidate: a new
    route table drops every ranking at once, and with 1,000 candidates freeing a tuple per
    candidate cost the first decision after the change about 2 ms.
    """

    utilities: array[float]  # per candidate
    evidence: array[int]  # per candidate: outcomes in the task class
    order: array[int]  # the feasible candidates, best first
    pool: array[int]  # the least-observed of them, in that order: what exploration tries
    chosen: str | None
    names: tuple[str, ...]
    scores: tuple[float, ...]
    reason: str
    skipped: str  # "; circuit open for <models>" when some were left out for it, else ""


def _skipped(
    candidates: tuple[str, ...],
    blocked: frozenset[str],
    utilities: array[float],
    by_name: array[int],
) -> str:
    """The reason's clause naming the candidates left out for an open circuit, best first.

    ``"; circuit open for <model>, <model>"``, at most :data:`_NAMED_MAX` named and the others
    counted; ``""`` when none was left out. The instrumentation says ``cooldown for`` instead
    for the models cooling down in the process, as for the other policies.
    """
    shut = [i for i in by_name if candidates[i] in blocked]  # equal utilities: as ranked
    if not shut:
        return ""
    shut.sort(key=utilities.__getitem__, reverse=True)
    named = ", ".join([candidates[i] for i in shut[:_NAMED_MAX]])
    more = len(shut) - _NAMED_MAX
    return f"; circuit open for {named}" + (f"; {more} more skipped" if more > 0 else "")


def _keep(
    request: RouteRequest, policy: str, candidates: tuple[str, ...], why: str
) -> RouteDecision:
    requested = request.requested_model
    rest = tuple(m for m in candidates if m != requested)[: _MAX_RECORDED - 1]
    order = (requested, *rest)
    return RouteDecision.new(
        request, policy, order, (1.0,) + (0.0,) * len(rest), requested, f"requested model: {why}"
    )
