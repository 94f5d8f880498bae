"""The quality model: how good, how costly and how slow each model is, per task class and cluster.

Every outcome (a call's quality in [0, 1], its cost and latency) updates running sums at three
levels: the model overall, the model within a task class, and the model within a task class
and prompt cluster. A prediction shrinks each level towards the one above (a Beta-style prior
worth ``strength`` observations), so a cluster with three outcomes leans on its task class and
a task class nobody has seen yet leans on the model's overall record::

    q_model = (S_model + s0 * prior) / (N_model + s0)
    q_task  = (S_task + s1 * q_model) / (N_task + s1)
    q_cell  = (S_cell + s2 * q_task) / (N_cell + s2)

Updates are O(1) and exact, so the model learns online from every outcome the collector joins
(bandit feedback: only the chosen model's outcome is known) and is trained offline by replaying
logged outcomes. Predictions are memoised per (task class, cluster) until the next update.

Example:
    >>> model = QualityModel()
    >>> for _ in range(20):
    ...     model.update("qa", 0, "small", 0.4, cost_usd=0.0001)
    ...     model.update("qa", 0, "large", 0.9, cost_usd=0.002)
    >>> small, large = model.predict("qa", 0, ("small", "large"))
    >>> small.quality < large.quality, round(large.cost_usd or 0, 4)
    (True, 0.002)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:
    from agentmesh.router.learned.quality_arrays import PredictionArrays, VectorPredictor

__all__ = ["ARRAY_MIN_CANDIDATES", "Prediction", "QualityModel", "Shrinkage"]

ARRAY_MIN_CANDIDATES: Final = 64
"""Candidate lists from this length are predicted with :meth:`QualityModel.predict_arrays` by
the learned policy (when numpy is installed); shorter ones with :meth:`QualityModel.predict`."""

_NO_TASK: Final = ""


@dataclass(frozen=True, slots=True)
class Shrinkage:
    """How many observations each level's prior is worth.

    Attributes:
        prior: Quality assumed for a model with no outcome at all.
        model: Strength of ``prior`` against a model's overall record (s0).
        task: Strength of the model's overall record against a task class's (s1).
        cell: Strength of the task class's record against a cluster's (s2).
    """

    prior: float = 0.5
    model: float = 2.0
    task: float = 5.0
    cell: float = 10.0


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model expects of one candidate.

    Attributes:
        quality: Expected quality in [0, 1].
        evidence: Outcomes behind it in this task class (0: the model was never seen here).
        cost_usd: Mean cost of a call in this task class (or overall); ``None`` when unknown.
        latency_s: Mean latency of a call in this task class (or overall); ``None`` if unknown.
    """

    quality: float
    evidence: int
    cost_usd: float | None
    latency_s: float | None


class _Sums:
    """Running sums of one (level, model)."""

    __slots__ = ("cost", "latency", "n", "n_cost", "n_latency", "q")

    def __init__(self) -> None:
        self.q = 0.0
        self.n = 0
        self.cost = 0.0
        self.n_cost = 0
        self.latency = 0.0
        self.n_latency = 0

    def add(self, quality: float, cost: float | None, latency: float | None) -> None:
        self.q += quality
        self.n += 1
        if cost is not None:
            self.cost += cost
            self.n_cost += 1
        if latency is not None:
            self.latency += latency
            self.n_latency += 1

    def to_list(self) -> list[float]:
        return [self.q, self.n, self.cost, self.n_cost, self.latency, self.n_latency]

    @classmethod
    def from_list(cls, raw: object, where: str) -> _Sums:
        if not isinstance(raw, list) or len(cast("list[object]", raw)) != 6:
            raise ValueError(f"{where}: expected [q, n, cost, n_cost, latency, n_latency]")
        values = cast("list[object]", raw)
        if not all(isinstance(v, int | float) and v >= 0 for v in values):
            raise ValueError(f"{where}: sums must be non-negative numbers")
        q, n, cost, n_cost, latency, n_latency = cast("list[float]", values)
        sums = cls()
        sums.q, sums.n, sums.cost = float(q), int(n), float(cost)
        sums.n_cost, sums.latency, sums.n_latency = int(n_cost), float(latency), int(n_latency)
        if sums.q > sums.n:
            raise ValueError(f"{where}: quality sum {q} exceeds the {n} outcomes")
        return sums


_EMPTY: Final = _Sums()  # read only: the sums of a level with no outcome
_NO_SUMS: Final[Mapping[str, _Sums]] = {}  # read only: a level nobody recorded
_MAX_HELD: Final = 1_000_000
"""Most predictions the memos reference before they are cleared (about 100 MB at worst)."""


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None


class QualityModel:
    """Per-model outcome statistics at three levels, with shrinkage between them.

    Args:
        shrinkage: The prior strengths.
        priors: Prior quality of particular models (from a catalog or configuration); others
            get ``shrinkage.prior``.
    """

    def __init__(
        self, shrinkage: Shrinkage | None = None, priors: Mapping[str, float] | None = None
    ) -> None:
        self.shrinkage = shrinkage if shrinkage is not None else Shrinkage()
        self._priors = dict(priors or {})
        self._models: dict[str, _Sums] = {}
        self._tasks: dict[str, dict[str, _Sums]] = {}
        self._cells: dict[str, dict[int, dict[str, _Sums]]] = {}
        self._memo: dict[tuple[str, int, tuple[str, ...]], tuple[Prediction, ...]] = {}
        # (task, cluster) -> model -> prediction, for every model with outcomes: a new
        # candidate list then costs a lookup per model, not a prediction.
        self._by_cell: dict[tuple[str, int], dict[str, Prediction]] = {}
        self._held = 0  # predictions referenced by both memos (they are cleared past _MAX_HELD)
        self._vectors: VectorPredictor | None = None  # every model's figures as arrays (numpy)
        self._stray: frozenset[str] = frozenset()  # models with task or cell sums but no overall
        self.updates = 0

    def models(self) -> list[str]:
        """Return the models with at least one outcome, sorted."""
        return sorted(self._models)

    def update(
        self,
        task_class: str | None,
        cluster: int,
        model: str,
        quality: float,
        *,
        cost_usd: float | None = None,
        latency_s: float | None = None,
    ) -> None:
        """Record one outcome.

        Args:
            task_class: The call's task class (``None``: none).
            cluster: The prompt's cluster (0 when there are no clusters).
            model: The model that answered.
            quality: The outcome's quality, clipped to [0, 1].
            cost_usd: What the call cost, if known.
            latency_s: How long it took, if known.
        """
        task = task_class or _NO_TASK
        q = 0.0 if quality < 0.0 else 1.0 if quality > 1.0 else float(quality)
        for level in (
            self._models,
            self._tasks.setdefault(task, {}),
            self._cells.setdefault(task, {}).setdefault(cluster, {}),
        ):
            sums = level.get(model)
            if sums is None:
                sums = level[model] = _Sums()
            sums.add(q, cost_usd, latency_s)
        self.updates += 1
        if self._memo or self._by_cell or self._vectors is not None:
            self._forget()

    def adjust(self, task_class: str | None, cluster: int, model: str, delta: float) -> None:
        """Correct the quality of an outcome already recorded (late feedback), by ``delta``.

        The number of outcomes does not change; sums stay within [0, outcomes].

        Args:
            task_class: The outcome's task class.
            cluster: Its cluster.
            model: Its model.
            delta: New quality minus the quality recorded.
        """
        task = task_class or _NO_TASK
        for level in (
            self._models,
            self._tasks.get(task, {}),
            self._cells.get(task, {}).get(cluster, {}),
        ):
            sums = level.get(model)
            if sums is not None:
                sums.q = min(float(sums.n), max(0.0, sums.q + delta))
        if self._memo or self._by_cell or self._vectors is not None:
            self._forget()

    def predict(
        self, task_class: str | None, cluster: int, models: Sequence[str]
    ) -> tuple[Prediction, ...]:
        """Return what is expected of each model for a prompt of this task class and cluster.

        Args:
            task_class: The task class (``None``: none).
            cluster: The prompt's cluster.
            models: The candidates, as a tuple (it keys the memo).

        Returns:
            One prediction per model, in order.
        """
        task = task_class or _NO_TASK
        key = (task, cluster, tuple(models))
        memo = self._memo.get(key)
        if memo is not None:
            return memo
        known = self._by_cell.get((task, cluster))
        if known is None and 4 * len(key[2]) >= len(self._models):  # not a few among many
            known = self._cell(task, cluster)
        if known is None:
            known = {}
        tasks, cells = self._levels(task, cluster)
        result = tuple([known.get(m) or self._one(m, tasks, cells) for m in key[2]])
        if self._held + len(result) > _MAX_HELD:
            self._forget()
        self._held += len(result)
        self._memo[key] = result
        return result

    def predict_arrays(
        self, task_class: str | None, cluster: int, models: Sequence[str]
    ) -> PredictionArrays | None:
        """Return :meth:`predict`'s figures for every model at once, as numpy arrays.

        For long candidate lists: the arrays of every model the quality model knows are
        computed once per (task class, cluster) until the next update (or by :meth:`warm`),
        and each call gathers the candidates' entries. The figures equal :meth:`predict`'s.

        Args:
            task_class: The task class (``None``: none).
            cluster: The prompt's cluster.
            models: The candidates, as a tuple.

        Returns:
            The arrays; ``None`` without numpy (the router's ``learned`` extra) or when a
            shrinkage strength is 0 (use :meth:`predict`).
        """
        vectors = self._vectors
        if vectors is None:
            vectors = self._vectorised()
            if vectors is None:
                return None
        return vectors.predict(task_class or _NO_TASK, cluster, models, self._one_of)

    def _vectorised(self) -> VectorPredictor | None:
        s = self.shrinkage
        if min(s.model, s.task, s.cell) <= 0:  # a zero denominator: predict raises, not NaN
            return None
        try:
            from agentmesh.router.learned.quality_arrays import VectorPredictor
        except ImportError:  # numpy is an optional dependency of the router
            return None
        names = self._stray.union(self._models)
        vectors = VectorPredictor(s, self._priors, names, self._models, self._tasks, self._cells)
        self._vectors = vectors
        return vectors

    def _one_of(self, model: str, task: str, cluster: int) -> Prediction:
        return self._one(model, *self._levels(task, cluster))

    def _forget(self) -> None:
        self._memo.clear()
        self._by_cell.clear()
        self._vectors = None
        self._held = 0

    def warm(self, limit: int = 100_000) -> int:
        """Compute ahead the predictions of every model in every (task class, cluster) seen.

        Run off the hot path (the route table client's thread does it for a new table), so
        that the first decisions after a table change look predictions up instead of making
        them. With numpy, :meth:`predict_arrays`'s arrays are made (a few array operations
        per cell), and the per-model predictions only for fewer than
        ``4 * ARRAY_MIN_CANDIDATES`` models: with more, :meth:`predict` reads them only for a
        list of a quarter of the models or more, which the policy predicts with the arrays.
        Skipped when it would make more than ``limit`` predictions (they are then made per
        (task class, cluster) on first use).

        Args:
            limit: Most predictions to make.

        Returns:
            The predictions made ahead (0 when skipped).
        """
        pairs = [(task, cluster) for task, cells in self._cells.items() for cluster in cells]
        if not pairs or len(pairs) * len(self._models) > limit:
            return 0
        vectors = self._vectors or self._vectorised()
        if vectors is not None:  # long candidate lists read these
            vectors.warm()
        if vectors is None or len(self._models) < 4 * ARRAY_MIN_CANDIDATES:
            for task, cluster in pairs:
                if (task, cluster) not in self._by_cell:
                    self._cell(task, cluster)
        return len(pairs) * len(self._models)

    def _cell(self, task: str, cluster: int) -> dict[str, Prediction]:
        """Predict every model with outcomes for one (task class, cluster), and keep it."""
        tasks, cells = self._levels(task, cluster)
        known = {model: self._one(model, tasks, cells) for model in self._models}
        if self._held + len(known) > _MAX_HELD:
            self._forget()
        self._held += len(known)
        self._by_cell[(task, cluster)] = known
        return known

    def _levels(self, task: str, cluster: int) -> tuple[Mapping[str, _Sums], Mapping[str, _Sums]]:
        """The sums of one task class and of one of its cells, by model (empty if none)."""
        return self._tasks.get(task, _NO_SUMS), self._cells.get(task, {}).get(cluster, _NO_SUMS)

    def _one(
        self, model: str, tasks: Mapping[str, _Sums], cells: Mapping[str, _Sums]
    ) -> Prediction:
        s = self.shrinkage
        empty = _EMPTY
        g = self._models.get(model, empty)
        t = tasks.get(model, empty)
        c = cells.get(model, empty)
        prior = self._priors.get(model, s.prior)
        q_model = (g.q + s.model * prior) / (g.n + s.model)
        q_task = (t.q + s.task * q_model) / (t.n + s.task)
        q_cell = (c.q + s.cell * q_task) / (c.n + s.cell)
        cost = _mean(t.cost, t.n_cost)
        latency = _mean(t.latency, t.n_latency)
        return Prediction(
            q_cell,
            t.n,
            cost if cost is not None else _mean(g.cost, g.n_cost),
            latency if latency is not None else _mean(g.latency, g.n_latency),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the model as a JSON-ready dict.

        Returns:
            ``{"shrinkage": …, "priors": …, "models": …, "tasks": …, "cells": …}``.
        """
        s = self.shrinkage
        return {
            "shrinkage": {"prior": s.prior, "model": s.model, "task": s.task, "cell": s.cell},
            "priors": dict(self._priors),
            "models": {m: v.to_list() for m, v in self._models.items()},
            "tasks": {t: {m: v.to_list() for m, v in ms.items()} for t, ms in self._tasks.items()},
            "cells": {
                t: {str(c): {m: v.to_list() for m, v in ms.items()} for c, ms in cs.items()}
                for t, cs in self._cells.items()
            },
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> QualityModel:
        """Rebuild a model from :meth:`to_dict` output.

        Args:
            raw: The dict.

        Returns:
            The model.

        Raises:
            ValueError: The dict is malformed (the message names the part).
        """
        shr = raw.get("shrinkage", {})
        if not isinstance(shr, Mapping):
            raise ValueError("'shrinkage' must be an object")
        shr_map = cast("Mapping[str, object]", shr)
        values: dict[str, float] = {}
        for name in ("prior", "model", "task", "cell"):
            v = shr_map.get(name, getattr(Shrinkage(), name))
            if not isinstance(v, int | float) or v < 0:
                raise ValueError(f"shrinkage.{name} must be a non-negative number")
            values[name] = float(v)
        priors = raw.get("priors", {})
        if not isinstance(priors, Mapping) or not all(
            isinstance(v, int | float) for v in cast("Mapping[str, object]", priors).values()
        ):
            raise ValueError("'priors' must map model names to numbers")
        model = cls(Shrinkage(**values), cast("Mapping[str, float]", priors))
        model._models = _read_level(_obj(raw, "models"), "models")
        for t, ms in _obj(raw, "tasks").items():
            model._tasks[t] = _read_level(_obj({"x": ms}, "x", f"tasks.{t}"), f"tasks.{t}")
        for t, cs in _obj(raw, "cells").items():
            cells: dict[int, dict[str, _Sums]] = {}
            for c, ms in _obj({"x": cs}, "x", f"cells.{t}").items():
                if not c.isdigit():
                    raise ValueError(f"cells.{t}: cluster {c!r} is not a number")
                where = f"cells.{t}.{c}"
                cells[int(c)] = _read_level(_obj({"x": ms}, "x", where), where)
            model._cells[t] = cells
        stray = {m for by_model in model._tasks.values() for m in by_model}
        stray.update(
            m for by in model._cells.values() for by_model in by.values() for m in by_model
        )
        model._stray = frozenset(stray.difference(model._models))
        return model


_NUMBER: Final = frozenset({int, float})


def _read_level(raw: Mapping[str, object], where: str) -> dict[str, _Sums]:
    """One level's sums by model, read from ``{model: [q, n, cost, n_cost, latency, n_latency]}``.

    A route table of 1,000 models holds tens of thousands of these, parsed in the route table
    client's thread: plain lists of non-negative numbers take a fast path, anything else goes
    through :meth:`_Sums.from_list`, which accepts or refuses it exactly as before.
    """
    out: dict[str, _Sums] = {}
    new = _Sums.__new__
    number = _NUMBER
    for model, raw_values in raw.items():
        if type(raw_values) is list:
            values = cast("list[Any]", raw_values)
            if len(values) == 6:
                q, n, cost, n_cost, latency, n_latency = values
                if (
                    type(q) in number and type(n) in number and type(cost) in number
                    and type(n_cost) in number and type(latency) in number
                    and type(n_latency) in number and q >= 0 and n >= 0 and cost >= 0
                    and n_cost >= 0 and latency >= 0 and n_latency >= 0 and q <= int(n)
                ):  # fmt: skip
                    sums = new(_Sums)
                    sums.q, sums.n, sums.cost = float(q), int(n), float(cost)
                    sums.n_cost, sums.latency, sums.n_latency = (
                        int(n_cost), float(latency), int(n_latency)
                    )  # fmt: skip
                    out[model] = sums
                    continue
        out[model] = _Sums.from_list(cast(object, raw_values), f"{where}.{model}")
    return out


def _obj(raw: Mapping[str, Any], key: str, where: str | None = None) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"'{where or key}' must be an object")
    return dict(cast("Mapping[str, Any]", value))
