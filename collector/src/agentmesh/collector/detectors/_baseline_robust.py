"""A robust streaming baseline: median and MAD of recent values, on a log scale.

The spike detectors need two things of a stream: how unusual a value is (a score) and what the
stream's *normal* is (to demand that a spike be several times it). :class:`RobustLogBaseline`
gives both from one ring of the last ``size`` logarithms: the normal is their median, and a
value's robust z is its distance above the median in units of ``1.4826 * MAD`` (the median
absolute deviation, scaled to a standard deviation for normal data; floored at ``min_mad`` so a
constant stream does not make every wobble infinite). The score maps ``z`` to ``[0, 1)`` as
``z² / (z² + z_alert²)`` above the median (0 below it): 0.5 at ``z_alert``, 0.8 at twice it.
The median and MAD are recomputed every ``refresh`` values, which keeps an update to a few
list operations. Values below the median score 0 (only increases are spikes); values ``<= 0``
and non-finite ones score 0 and are not learned. The first ``warmup`` values score 0.

It follows :class:`~agentmesh.collector.anomaly.StreamingAnomalyModel`; its snapshot has kind
``robust_log``.

Example:
    >>> model = RobustLogBaseline(warmup=5)
    >>> [round(model.update(v, 0.0), 2) for v in [1.0, 1.2, 0.9, 1.1, 1.0, 1.05, 9.0]]
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.94]
    >>> round(model.normal, 2)
    1.05
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from agentmesh.collector.detection import JsonValue
from agentmesh.collector.detectors._window_state import as_float, as_int, as_list, as_map
from agentmesh.core.errors import DetectionError

__all__ = ["ROBUST_LOG", "RobustLogBaseline"]

ROBUST_LOG: Final = "robust_log"
"""``kind`` of a :class:`RobustLogBaseline` snapshot."""

_MAD_TO_SIGMA: Final = 1.4826


class RobustLogBaseline:
    """Median/MAD robust z-score of ``log(value)`` over a ring of recent values.

    Args:
        size: Recent values kept.
        warmup: Values learned before anything scores above 0.
        z_alert: Robust z that scores 0.5.
        min_mad: Smallest MAD (of logarithms) used: 0.05 is about 5 % variation.
        refresh: Values learned between two recomputations of median and MAD.

    Raises:
        DetectionError: A setting is out of range.
    """

    def __init__(
        self,
        size: int = 128,
        warmup: int = 20,
        z_alert: float = 4.0,
        min_mad: float = 0.05,
        refresh: int = 16,
    ) -> None:
        if not 1 <= warmup <= size:
            raise DetectionError(f"need 1 <= warmup <= size, got {warmup}, {size}")
        if z_alert <= 0 or min_mad <= 0 or refresh < 1:
            raise DetectionError("z_alert and min_mad must be positive, refresh at least 1")
        self.size = size
        self.z_alert = z_alert
        self.min_mad = min_mad
        self.refresh = refresh
        self._warmup = warmup
        self._ring: list[float] = []
        self._next = 0
        self._seen = 0
        self._stale = 0
        self._median = 0.0
        self._scale = 1.0
        self._z2 = z_alert * z_alert
        self.scored_median = 0.0
        """Median of the logarithms the last :meth:`update_log` scored against (after warm-up)."""

    @property
    def warmup(self) -> int:
        """Values learned before anything scores above 0."""
        return self._warmup

    @property
    def seen(self) -> int:
        """Values learned."""
        return self._seen

    @property
    def normal(self) -> float:
        """The normal value: ``exp`` of the median of the recent logarithms (0 when empty)."""
        if not self._ring:
            return 0.0
        self._fresh(force=True)
        return math.exp(self._median)

    @property
    def median_log(self) -> float:
        """Median of the recent logarithms (0 when empty)."""
        if self._ring:
            self._fresh(force=True)
        return self._median

    def expected(self, timestamp_s: float) -> float | None:
        """The value the baseline expects: its normal.

        Args:
            timestamp_s: Unix seconds (unused: the baseline has no daily rhythm).

        Returns:
            The normal, or ``None`` before any value was learned.
        """
        del timestamp_s
        return self.normal if self._ring else None

    def update(self, value: float, timestamp_s: float) -> float:
        """Score a value, then learn it.

        Args:
            value: The observation (``<= 0`` or not finite: scores 0, not learned).
            timestamp_s: When it was observed (unused).

        Returns:
            The score in ``[0, 1)``.
        """
        del timestamp_s
        if not value > 0.0 or value == math.inf:
            return 0.0
        logged = math.log(value)
        return self.update_log(logged)

    def update_log(self, logged: float) -> float:
        """Score and learn a value already on the log scale (:meth:`update` after the ``log``).

        Args:
            logged: ``log(value)``.

        Returns:
            The score in ``[0, 1)``.
        """
        score = 0.0
        ring = self._ring
        n = len(ring)
        if n >= self._warmup:
            stale = self._stale
            if stale and (stale >= self.refresh or stale >= n):
                self._fresh()  # (its own test, inlined: most updates need no recomputation)
            self.scored_median = self._median
            excess = logged - self._median
            if excess > 0.0:
                z = excess / self._scale
                z2 = z * z
                score = z2 / (z2 + self._z2)
        if n < self.size:
            ring.append(logged)
        else:
            ring[self._next] = logged
            self._next = (self._next + 1) % self.size
        self._seen += 1
        self._stale += 1
        return score

    def snapshot(self) -> dict[str, JsonValue]:
        """Return the ring and settings as JSON-ready data.

        Returns:
            The state; :meth:`restore` takes it back.
        """
        ring = self._ring[self._next :] + self._ring[: self._next]
        return {
            "kind": ROBUST_LOG,
            "size": self.size,
            "warmup": self._warmup,
            "z_alert": self.z_alert,
            "min_mad": self.min_mad,
            "refresh": self.refresh,
            "seen": self._seen,
            "ring": list[JsonValue](ring),
        }

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Replace settings and ring by a snapshot's.

        Args:
            state: What :meth:`snapshot` returned.

        Raises:
            DetectionError: The state is not a ``robust_log`` snapshot.
        """
        state = as_map(state, "model")
        if state.get("kind") != ROBUST_LOG:
            raise DetectionError(f"not a {ROBUST_LOG} snapshot: kind {state.get('kind')!r}")
        restored = RobustLogBaseline(
            as_int(state.get("size"), "size"),
            as_int(state.get("warmup"), "warmup"),
            as_float(state.get("z_alert"), "z_alert"),
            as_float(state.get("min_mad"), "min_mad"),
            as_int(state.get("refresh"), "refresh"),
        )
        ring = [as_float(v, "ring") for v in as_list(state.get("ring"), "ring")]
        self.size, self.z_alert, self.min_mad = restored.size, restored.z_alert, restored.min_mad
        self.refresh, self._warmup, self._z2 = restored.refresh, restored._warmup, restored._z2
        self._ring = ring[-self.size :]
        self._next = len(self._ring) % self.size
        self._seen = max(as_int(state.get("seen"), "seen"), len(self._ring))
        self._stale = len(self._ring)

    def _fresh(self, *, force: bool = False) -> None:
        """Recompute median and MAD when enough values arrived since the last time (or any)."""
        stale = self._stale
        if not stale or (not force and stale < self.refresh and stale < len(self._ring)):
            return
        ordered = sorted(self._ring)
        n = len(ordered)
        mid = n // 2
        median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        deviations = sorted([abs(v - median) for v in ordered])
        mad = deviations[mid] if n % 2 else (deviations[mid - 1] + deviations[mid]) / 2
        self._median = median
        self._scale = _MAD_TO_SIGMA * max(mad, self.min_mad)
        self._stale = 0
