"""The quality model's predictions for a whole candidate list at once, as numpy arrays.

:meth:`QualityModel.predict <agentmesh.router.learned.quality.QualityModel.predict>` makes one
:class:`~agentmesh.router.learned.quality.Prediction` per candidate: with 1,000 candidates,
about a millisecond of Python the first time a (task class, cluster) is seen after a route
table change. :class:`VectorPredictor` holds each level's sums as arrays over every model the
quality model knows and computes the same shrinkage for all of them in a few array
operations. Its figures equal ``predict``'s bit for bit: the same float64 operations in the
same order. A model it does not know (no outcome at any level) is predicted by ``predict``'s
own code, so priors given per model apply as they do there.

Needs numpy (the router's ``learned`` extra); the quality model imports this module only
when it is asked for arrays.

Example:
    >>> from agentmesh.router.learned.quality import QualityModel
    >>> model = QualityModel()
    >>> model.update("qa", 0, "small", 0.4, cost_usd=0.0001)
    >>> arrays = model.predict_arrays("qa", 0, ("small", "unseen"))
    >>> [round(q, 4) for q in arrays.quality.tolist()], arrays.evidence.tolist()
    ([0.4505, 0.5], [1, 0])
    >>> [p.quality for p in model.predict("qa", 0, ("small", "unseen"))] == arrays.quality.tolist()
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from agentmesh.router.learned.quality import Prediction, Shrinkage

__all__ = ["PredictionArrays", "VectorPredictor"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

_MAX_LISTS: Final = 4096
"""Candidate lists whose positions are kept (a full memo is cleared, not grown)."""

_FIELDS: Final = tuple(
    attrgetter(name) for name in ("q", "n", "cost", "n_cost", "latency", "n_latency")
)
"""The sums' fields, in :class:`_Level` order."""

_MAX_SHARED: Final = 256
"""Candidate lists whose positions are shared across predictors (long lists are few)."""

_Positions = tuple[tuple[str, ...], "Ints", list[int]]
_shared: dict[tuple[str, ...], _Positions] = {}
"""Candidate list → its positions in the model order they were found for, shared by every
vector predictor: a new route table usually knows the same models, so the first decisions
after a change compare the orders instead of looking each candidate up again."""


class _Sums(Protocol):
    """A level's running sums for one model, as the quality model keeps them."""

    q: float
    n: int
    cost: float
    n_cost: int
    latency: float
    n_latency: int


@dataclass(frozen=True, slots=True)
class PredictionArrays:
    """What the quality model expects of each candidate, one array entry per candidate.

    Attributes:
        quality: Expected quality in [0, 1].
        evidence: Outcomes behind it in the task class.
        cost: Mean cost of a call; NaN where unknown (``Prediction.cost_usd`` is ``None``).
        latency: Mean latency; NaN where unknown.
    """

    quality: Floats
    evidence: Ints
    cost: Floats
    latency: Floats


@dataclass(frozen=True, slots=True)
class _Level:
    """One level's sums (model overall, task class or cell), over the model order."""

    q: Floats
    n: Floats
    cost: Floats
    n_cost: Floats
    latency: Floats
    n_latency: Floats


@dataclass(frozen=True, slots=True)
class _Task:
    """A task class's figures over the model order (cost and latency fall back to overall)."""

    quality: Floats
    evidence: Ints
    cost: Floats
    latency: Floats


def _level(sums: Mapping[str, _Sums], index: Mapping[str, int], size: int) -> _Level:
    out = np.zeros((6, size), np.float64)
    if sums:
        count = len(sums)
        at = np.fromiter(map(index.__getitem__, sums), np.int64, count)
        values = sums.values()
        for row, field in enumerate(_FIELDS):
            out[row, at] = np.fromiter(map(field, values), np.float64, count)
    return _Level(*out)


def _mean(total: Floats, n: Floats, otherwise: Floats) -> Floats:
    """``total / n`` where ``n`` is not 0, else ``otherwise`` (as ``_mean(...) or ...``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, total / n, otherwise)


class VectorPredictor:
    """The shrinkage of :class:`QualityModel` over arrays of every model it knows.

    Built from the model's sums as they are; the model drops it at its next update.

    Args:
        shrinkage: The prior strengths (each must be positive).
        priors: Prior quality of particular models.
        names: Every model with sums at any level.
        models: The overall sums, by model.
        tasks: Task class → its sums, by model.
        cells: Task class → cluster → its sums, by model.
    """

    def __init__(
        self,
        shrinkage: Shrinkage,
        priors: Mapping[str, float],
        names: AbstractSet[str],
        models: Mapping[str, _Sums],
        tasks: Mapping[str, Mapping[str, _Sums]],
        cells: Mapping[str, Mapping[int, Mapping[str, _Sums]]],
    ) -> None:
        self._order = tuple(sorted(names))
        self._index = {model: i for i, model in enumerate(self._order)}
        self._size = len(self._order)
        self._s = shrinkage
        self._tasks_sums = tasks
        self._cells_sums = cells
        g = _level(models, self._index, self._size)
        prior = np.array([priors.get(m, shrinkage.prior) for m in self._order], np.float64)
        self._q_model = (g.q + shrinkage.model * prior) / (g.n + shrinkage.model)
        nan = np.full(self._size, np.nan)
        self._g_cost = _mean(g.cost, g.n_cost, nan)
        self._g_latency = _mean(g.latency, g.n_latency, nan)
        self._tasks: dict[str, _Task] = {}
        self._cells: dict[tuple[str, int], Floats] = {}
        self._positions: dict[tuple[str, ...], tuple[Ints, list[int]]] = {}

    def _task(self, task: str) -> _Task:
        found = self._tasks.get(task)
        if found is None:
            s = self._s
            t = _level(self._tasks_sums.get(task, {}), self._index, self._size)
            found = self._tasks[task] = _Task(
                (t.q + s.task * self._q_model) / (t.n + s.task),
                t.n.astype(np.int64),
                _mean(t.cost, t.n_cost, self._g_cost),
                _mean(t.latency, t.n_latency, self._g_latency),
            )
        return found

    def _cell(self, task: str, cluster: int) -> Floats:
        found = self._cells.get((task, cluster))
        if found is None:
            s = self._s
            sums = self._cells_sums.get(task, {}).get(cluster, {})
            c = _level(sums, self._index, self._size)
            found = (c.q + s.cell * self._task(task).quality) / (c.n + s.cell)
            self._cells[(task, cluster)] = found
        return found

    def warm(self) -> int:
        """Compute the arrays of every (task class, cluster) with outcomes; return how many."""
        pairs = [(task, cluster) for task, by in self._cells_sums.items() for cluster in by]
        for task, cluster in pairs:
            self._cell(task, cluster)
        return len(pairs)

    def _positions_of(self, models: tuple[str, ...]) -> tuple[Ints, list[int]]:
        found = self._positions.get(models)
        if found is not None:
            return found
        order = self._order
        shared = _shared.get(models)
        if shared is not None and (shared[0] is order or shared[0] == order):
            found = (shared[1], shared[2])
        else:
            index = self._index
            at = np.fromiter((index.get(m, 0) for m in models), np.int64, len(models))
            at.flags.writeable = False  # shared between predictors: read only
            found = (at, [i for i, m in enumerate(models) if m not in index])
            if len(_shared) >= _MAX_SHARED:
                _shared.clear()
            _shared[models] = (order, *found)
        if len(self._positions) >= _MAX_LISTS:
            self._positions.clear()
        self._positions[models] = found
        return found

    def predict(
        self,
        task: str,
        cluster: int,
        models: Sequence[str],
        one: Callable[[str, str, int], Prediction],
    ) -> PredictionArrays:
        """Return the predictions of ``models`` as arrays, in their order.

        Args:
            task: The task class (``""``: none).
            cluster: The prompt's cluster.
            models: The candidates, as a tuple.
            one: Predicts one model with ``predict``'s code, given the task class and
                cluster: for models without any outcome. (Passed per call, not kept: the
                predictor holds no reference back to the quality model, so dropping the
                model frees both at once, with no garbage cycle for the collector.)

        Returns:
            One entry per candidate, equal to ``QualityModel.predict``'s.
        """
        at, unknown = self._positions_of(tuple(models))
        t = self._task(task)
        quality = self._cell(task, cluster)[at]
        evidence = t.evidence[at]
        cost = t.cost[at]
        latency = t.latency[at]
        for i in unknown:  # no outcome anywhere: the prior alone, as predict makes it
            p = one(models[i], task, cluster)
            quality[i] = p.quality
            evidence[i] = p.evidence
            cost[i] = np.nan if p.cost_usd is None else p.cost_usd
            latency[i] = np.nan if p.latency_s is None else p.latency_s
        return PredictionArrays(quality, evidence, cost, latency)
