"""Router metrics: RouterBench's cost-quality hull and AIQ, RouteLLM's PGR, APGR and CPT."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

Point = tuple[float, float]  # (mean cost per prompt in USD, accuracy)


def hull(points: Sequence[Point]) -> list[Point]:
    """Upper convex hull of the points, kept non-decreasing in accuracy (RouterBench)."""
    pts = sorted(set(points))
    upper: list[Point] = []
    for p in pts:
        while len(upper) >= 2:
            (x1, y1), (x2, y2) = upper[-2], upper[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                upper.pop()
            else:
                break
        upper.append(p)
    out = [upper[0]]
    for p in upper[1:]:
        if p[1] > out[-1][1]:
            out.append(p)
    return out


def hull_at(points: Sequence[Point], cost: float) -> float:
    """Accuracy of the hull at a cost (mixing two routers' settings; 0 below its cheapest)."""
    h = hull(points)
    if cost < h[0][0]:
        return 0.0
    for (x1, y1), (x2, y2) in itertools.pairwise(h):
        if x1 <= cost <= x2:
            return y1 + (y2 - y1) * (cost - x1) / (x2 - x1) if x2 > x1 else max(y1, y2)
    return h[-1][1]


def aiq(points: Sequence[Point], c_min: float, c_max: float, steps: int = 4000) -> float:
    """Average quality of the hull over [c_min, c_max] (RouterBench's AIQ)."""
    total = 0.0
    for i in range(steps + 1):
        c = c_min + (c_max - c_min) * i / steps
        w = 0.5 if i in (0, steps) else 1.0
        total += w * hull_at(points, c)
    return total / steps


def best_within(points: Sequence[Point], cost: float) -> float:
    """Best accuracy among settings actually run whose cost is at most ``cost`` (no mixing)."""
    return max((a for c, a in points if c <= cost), default=0.0)


def pgr_curve(
    scores: Sequence[float], strong: Sequence[float], weak: Sequence[float], steps: int = 100
) -> list[tuple[float, float]]:
    """PGR at each share of calls sent to the strong model (highest scores first)."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: -scores[i])
    acc_s = sum(strong) / n
    acc_w = sum(weak) / n
    gap = acc_s - acc_w
    out: list[tuple[float, float]] = []
    for k in range(steps + 1):
        m = round(n * k / steps)
        chosen = set(order[:m])
        acc = sum(strong[i] if i in chosen else weak[i] for i in range(n)) / n
        out.append((k / steps, (acc - acc_w) / gap if gap else 0.0))
    return out


def apgr(curve: Sequence[tuple[float, float]]) -> float:
    """Area under the PGR curve over the share of strong calls (trapezoids)."""
    area = 0.0
    for (x1, y1), (x2, y2) in itertools.pairwise(curve):
        area += (x2 - x1) * (y1 + y2) / 2
    return area


def cpt(curve: Sequence[tuple[float, float]], target: float) -> float:
    """Smallest share of strong calls whose PGR reaches ``target``."""
    for share, pgr in curve:
        if pgr >= target - 1e-12:
            return share
    return 1.0
