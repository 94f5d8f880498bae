"""Scoring and ordering a long candidate list with numpy, for the learned policy.

:class:`~agentmesh.router.utility.UtilityPolicy` ranks the candidates of each (route table,
task class, cluster, constraints) once and memoises the ranking. With 1,000 candidates, doing
it in Python took most of the first decisions after a route table change (about 0.5 ms on a
quiet machine, twice that on a busy one). :func:`rank` does the same with array operations on
:class:`~agentmesh.router.learned.quality_arrays.PredictionArrays` and returns what the Python
ranking returns, equal entry for entry: utilities from the same float64 operations in the same
order, candidates ordered best first with equal utilities in descending name order (a stable
sort of that order), the same exploration pool and the same pick.

Needs numpy (the router's ``learned`` extra); the policy imports this module only when the
quality model gave it arrays.

Example:
    >>> from array import array
    >>> from agentmesh.router.learned.quality import QualityModel
    >>> model = QualityModel()
    >>> for _ in range(5):
    ...     model.update("qa", 0, "cheap", 0.7, cost_usd=0.001, latency_s=0.5)
    ...     model.update("qa", 0, "dear", 0.9, cost_usd=0.02, latency_s=1.5)
    >>> arrays = model.predict_arrays("qa", 0, ("cheap", "dear"))
    >>> scored = rank(arrays, ("cheap", "dear"), 20.0, 0.0, array("q", [1, 0]),
    ...               frozenset(), None, 1, lambda m: None, lambda m: 1.0)
    >>> list(scored.order), scored.pick
    ([0, 1], 0)
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from agentmesh.router.learned.quality_arrays import Floats, PredictionArrays

__all__ = ["Scored", "rank"]

_NAN: Final = float("nan")


@dataclass(frozen=True, slots=True)
class Scored:
    """A candidate list scored and ordered.

    Attributes:
        utilities: Each candidate's utility, in candidate order.
        evidence: Each candidate's outcomes in the task class.
        order: The feasible candidates' indices, best first.
        pool: The least-observed of them, in that order (what exploration tries).
        pick: The best candidate with enough evidence to be chosen greedily, if any.
    """

    utilities: array[float]
    evidence: array[int]
    order: array[int]
    pool: array[int]
    pick: int | None


def _filled(values: Floats, missing: Callable[[int], float | None]) -> Floats:
    """``values`` with each NaN replaced by ``missing(index)`` (NaN again for ``None``)."""
    holes = np.flatnonzero(np.isnan(values)).tolist()
    if not holes:
        return values
    values = values.copy()
    for i in holes:
        found = missing(i)
        values[i] = _NAN if found is None else found
    return values


def rank(
    arrays: PredictionArrays,
    candidates: tuple[str, ...],
    cost_weight: float,
    latency_weight: float,
    by_name: array[int],
    blocked: frozenset[str],
    budget: float | None,
    min_evidence: int,
    catalog_cost: Callable[[str], float | None],
    observed_latency: Callable[[str], float],
) -> Scored:
    """Score ``utility = quality - λ·cost - μ·latency`` for every candidate and order them.

    Args:
        arrays: The quality model's predictions for ``candidates``.
        candidates: The candidate models.
        cost_weight: λ.
        latency_weight: μ.
        by_name: The candidates' indices in descending name order.
        blocked: Models left out (open circuit breakers).
        budget: Most a call may cost (``None``: no limit), against the larger of the learned
            cost and the catalog's price for this prompt; a candidate of unknown cost stays.
        min_evidence: Outcomes a candidate needs in the task class to be picked greedily.
        catalog_cost: A model's cost from the catalog, where the quality model knows none.
        observed_latency: A model's latency from the route table, where it knows none.

    Returns:
        The scored candidates.
    """
    costs = _filled(arrays.cost, lambda i: catalog_cost(candidates[i]))
    latencies = _filled(arrays.latency, lambda i: observed_latency(candidates[i]))
    priced = np.where(np.isnan(costs), 0.0, costs)  # an unknown cost counts as 0, as in Python
    utilities = arrays.quality - cost_weight * priced - latency_weight * latencies
    evidence = arrays.evidence
    order = np.frombuffer(by_name, np.int64)
    count = len(candidates)
    if blocked or budget is not None:
        keep = np.ones(count, np.bool_)
        if blocked:
            keep[[i for i, model in enumerate(candidates) if model in blocked]] = False
        if budget is not None:
            # a learned cost is a mean per call: this call's prompt may cost more
            charged = np.array(
                [_NAN if (c := catalog_cost(model)) is None else c for model in candidates]
            )
            keep &= ~(np.fmax(costs, charged) > budget)  # NaN (unknown) compares False: kept
        order = order[keep[order]]
    order = order[np.argsort(-utilities[order], kind="stable")]
    seen = evidence[order]
    if len(order) == count:  # none left out: the whole list's minimum and maximum
        fewest = int(evidence.min()) if count else 0
        everyone = count == 0 or fewest == int(evidence.max())
    else:
        fewest = int(seen.min()) if len(order) else 0
        everyone = False
    pool = order if everyone else order[seen == fewest]
    enough = np.flatnonzero(seen >= min_evidence)
    pick = int(order[enough[0]]) if len(enough) else None
    return Scored(
        array("d", utilities.tobytes()),
        array("q", evidence.astype(np.int64, copy=False).tobytes()),
        array("q", order.tobytes()),
        array("q", pool.tobytes()),
        pick,
    )
