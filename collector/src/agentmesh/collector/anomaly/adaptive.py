"""AgentMesh's default streaming anomaly model: record-breaking departures from a baseline.

The model keeps two baselines of the stream and judges a point by how far it departs from the
better one, compared with the largest departures seen so far:

* **level**: an exponentially weighted mean (weight ``alpha``, ``1/n`` while ``n`` is small);
* **daily profile**: ``bins`` time-of-day slots (UTC), each an exponentially weighted mean
  (weight ``profile_alpha``) of the values seen in that slot. It is used instead of the level
  once its one-step error variance is below ``profile_ratio`` times the level's (a stream with a
  daily rhythm); a slot's first visit is predicted by the slot before it (else the level).
  Irregular timestamps are fine: slots are by time of day, everything else counts points.

For the baseline in use, two residuals are followed: the point's own (``x - baseline``) and a
short exponentially weighted mean of it (weight ``short``), which sees level shifts that single
noisy points hide. Each residual has an upward and a downward *record*: the largest magnitude
seen, decaying with a half-life of ``record_half_life`` points so that old extremes fade.
A point's ratio ``r`` is its largest residual divided by that residual's record.

A point **alerts** when ``r > min_ratio`` (1.05: it breaks a record by 5%, so that an extreme
seen again after its record decayed a little is not news), the model has learned ``warmup``
points (100), and no alert happened in the previous ``rest`` points (120). An alert scores
``r / (1 + r)``: 0.512 at the least, 0.67 for twice the record, 0.91 for ten times; every other
point scores 0. So the model speaks rarely, on the first point of something new, and stays
quiet while the same anomaly goes on (the Numenta Anomaly Benchmark rewards exactly this: only
a window's earliest detection counts and every false positive costs). Callers alert on any
score above 0, or demand a bigger departure with a higher threshold (0.6 is 1.5 times the
record). In steady noise, new records still happen now and then (0.1 to 0.2% of points for
Gaussian noise, scoring mostly under 0.6).

Records learn from every point, anomalies included, except that an alerting point raises a
record to at most ``alert_growth`` times its former value: one enormous outlier does not mask
the next, smaller but still unusual, spike for long.

For the collector's streams (latency, tokens, cost: positive, skewed) pass
``log_scale=True`` (residuals become ratios; values ``<= 0``, a free cached call say, are
skipped: scored 0 and not learned) and
``upward_only=True`` (only increases alert). Cost is a few microseconds a point in CPython;
state is 8 records, a 48-slot profile and a handful of floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from agentmesh.collector.anomaly.model import state_float, state_int
from agentmesh.collector.detection import JsonValue
from agentmesh.core.errors import DetectionError

__all__ = ["AdaptiveSpikeModel"]

_KIND = "adaptive_spike"
_DAY_S = 86400.0
_NEW = 1e9
"""Ratio given to a departure from a record of 0 (a stream that never moved before)."""


class AdaptiveSpikeModel:
    """Record-breaking departures from a level or daily baseline; rare, first-of-a-kind alerts.

    Args:
        warmup: Points learned before any point can alert (cold start: they score 0).
        rest: Points after an alert during which nothing alerts.
        alpha: Weight of a new point in the level.
        short: Weight of a new residual in the smoothed residual.
        bins: Time-of-day slots of the daily profile.
        profile_alpha: Weight of a new point in its slot.
        profile_ratio: The profile replaces the level when its error variance is below this
            fraction of the level's.
        variance_alpha: Weight of a new squared error in the error variances.
        record_half_life: Points for a record to decay to half (0: records never decay).
        alert_growth: An alerting point raises a record to at most this factor times it.
        log_scale: Model ``log(value)`` (for positive, skewed streams).
        upward_only: Only departures above the baseline alert.
        min_ratio: A point alerts when its ratio to the record exceeds this (at least 1).

    Raises:
        DetectionError: On settings out of range.
    """

    def __init__(
        self,
        warmup: int = 100,
        rest: int = 120,
        alpha: float = 0.005,
        short: float = 0.2,
        bins: int = 48,
        profile_alpha: float = 0.1,
        profile_ratio: float = 0.5,
        variance_alpha: float = 0.01,
        record_half_life: float = 20000.0,
        alert_growth: float = 3.0,
        log_scale: bool = False,
        upward_only: bool = False,
        min_ratio: float = 1.05,
    ) -> None:
        rates = (alpha, short, profile_alpha, variance_alpha)
        if (
            warmup < 2
            or rest < 0
            or bins < 1
            or not all(0.0 < w <= 1.0 for w in rates)
            or not 0.0 < profile_ratio <= 1.0
            or record_half_life < 0.0
            or alert_growth < 1.0
            or min_ratio < 1.0
        ):
            raise DetectionError("adaptive spike model: settings out of range")
        self._warmup = warmup
        self._rest = rest
        self._alpha = alpha
        self._short = short
        self._bins = bins
        self._profile_alpha = profile_alpha
        self._profile_ratio = profile_ratio
        self._variance_alpha = variance_alpha
        self._half_life = record_half_life
        self._decay = 0.5 ** (1.0 / record_half_life) if record_half_life > 0.0 else 1.0
        self._growth = alert_growth
        self._log = log_scale
        self._upward_only = upward_only
        self._min_ratio = min_ratio
        self._n = 0
        self._since = rest + 1
        self._level = 0.0
        self._level_short = 0.0
        self._profile_short = 0.0
        self._var_level = 0.0
        self._var_profile = 0.0
        self._profile: list[float | None] = [None] * bins
        # records (up, down) of: level residual, smoothed level residual, profile residual,
        # smoothed profile residual
        self._records = [0.0] * 8

    @property
    def warmup(self) -> int:
        """Points learned before any point can alert."""
        return self._warmup

    @property
    def seen(self) -> int:
        """Number of points learned."""
        return self._n

    @property
    def uses_profile(self) -> bool:
        """Whether the daily profile is the baseline in use (the stream has a daily rhythm)."""
        return self._n > self._warmup and self._var_profile < self._profile_ratio * self._var_level

    def expected(self, timestamp_s: float) -> float | None:
        """The baseline in use for a time, in the stream's units (for explanations).

        Args:
            timestamp_s: Unix seconds (picks the profile slot when the profile is in use).

        Returns:
            The level or the slot's mean (``exp`` of it on a log scale); ``None`` before any
            point was learned.
        """
        if self._n == 0:
            return None
        base = self._level
        if self.uses_profile and math.isfinite(timestamp_s):
            slot = min(int((timestamp_s % _DAY_S) * self._bins / _DAY_S), self._bins - 1)
            stored = self._profile[slot]
            if stored is not None:
                base = stored
        return math.exp(base) if self._log else base

    def update(self, value: float, timestamp_s: float) -> float:
        """Score a value, then learn it.

        Args:
            value: The observation (non-finite values, and values ``<= 0`` on a log scale,
                score 0 and are not learned).
            timestamp_s: Unix seconds; places the point in its time-of-day slot.

        Returns:
            ``r / (1 + r)`` (above 0.5) when the point alerts, else 0.
        """
        if not math.isfinite(value) or not math.isfinite(timestamp_s):
            return 0.0
        if self._log:
            if value <= 0.0:
                return 0.0
            value = math.log(value)
        n = self._n
        slot = int((timestamp_s % _DAY_S) * self._bins / _DAY_S)
        if slot >= self._bins:
            slot = self._bins - 1
        if n == 0:
            self._level = self._level_short = value
            self._profile[slot] = value
            self._n = 1
            self._since += 1
            return 0.0

        level = self._level
        stored = self._profile[slot]
        if stored is None:  # a slot's first visit: the slot before it, else the level
            previous = self._profile[slot - 1]
            expected = level if previous is None else previous
        else:
            expected = stored
        e_level = value - level
        e_profile = value - expected
        va = self._variance_alpha
        self._var_level += va * (e_level * e_level - self._var_level)
        self._var_profile += va * (e_profile * e_profile - self._var_profile)
        short = self._short
        level_short = self._level_short + short * (value - self._level_short)
        profile_short = self._profile_short + short * (e_profile - self._profile_short)
        use_profile = n > self._warmup and self._var_profile < self._profile_ratio * self._var_level

        records = self._records
        smooth_level = level_short - level
        residuals = (e_level, smooth_level, e_profile, profile_short)
        # the baseline in use: residuals 2, 3 (profile) or 0, 1 (level); records 2j (up), 2j+1
        first = 2 if use_profile else 0
        ratio = 0.0
        for j in (first, first + 1):
            residual = residuals[j]
            if residual >= 0.0:
                record = records[2 * j]
            elif self._upward_only:
                continue
            else:
                residual = -residual
                record = records[2 * j + 1]
            q = residual / record if record > 0.0 else (_NEW if residual > 0.0 else 0.0)
            if q > ratio:
                ratio = q

        score = 0.0
        self._since += 1
        alert = n >= self._warmup and self._since > self._rest and ratio > self._min_ratio
        if alert:
            score = ratio / (1.0 + ratio)
            self._since = 0
        decay = self._decay
        growth = self._growth
        for j in range(4):
            residual = residuals[j]
            if residual >= 0.0:
                i = 2 * j
                records[i + 1] *= decay
            else:
                residual = -residual
                i = 2 * j + 1
                records[i - 1] *= decay
            old = records[i]
            current = old * decay
            if residual > current:
                current = residual
                if alert and old > 0.0 and residual > old * growth:
                    current = old * growth
            records[i] = current

        a = self._alpha if self._alpha * (n + 1) > 1.0 else 1.0 / (n + 1)
        self._level = level + a * e_level
        self._level_short = level_short
        self._profile_short = profile_short
        self._profile[slot] = value if stored is None else stored + self._profile_alpha * e_profile
        self._n = n + 1
        return score

    def snapshot(self) -> dict[str, JsonValue]:
        """Return the learned state and the settings.

        Returns:
            JSON-ready state.
        """
        return {
            "kind": _KIND,
            "warmup": self._warmup,
            "rest": self._rest,
            "alpha": self._alpha,
            "short": self._short,
            "bins": self._bins,
            "profile_alpha": self._profile_alpha,
            "profile_ratio": self._profile_ratio,
            "variance_alpha": self._variance_alpha,
            "record_half_life": self._half_life,
            "alert_growth": self._growth,
            "log_scale": self._log,
            "upward_only": self._upward_only,
            "min_ratio": self._min_ratio,
            "n": self._n,
            "since": self._since,
            "level": self._level,
            "level_short": self._level_short,
            "profile_short": self._profile_short,
            "var_level": self._var_level,
            "var_profile": self._var_profile,
            "profile": list(self._profile),
            "records": list(self._records),
        }

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Take back a snapshot (settings included).

        Args:
            state: What :meth:`snapshot` returned.

        Raises:
            DetectionError: When the state is not this model's.
        """
        if state.get("kind") != _KIND:
            raise DetectionError("adaptive spike model: state of another model")
        fresh = AdaptiveSpikeModel(
            warmup=state_int(state, "warmup"),
            rest=state_int(state, "rest"),
            alpha=state_float(state, "alpha"),
            short=state_float(state, "short"),
            bins=state_int(state, "bins"),
            profile_alpha=state_float(state, "profile_alpha"),
            profile_ratio=state_float(state, "profile_ratio"),
            variance_alpha=state_float(state, "variance_alpha"),
            record_half_life=state_float(state, "record_half_life"),
            alert_growth=state_float(state, "alert_growth"),
            log_scale=state.get("log_scale") is True,
            upward_only=state.get("upward_only") is True,
            min_ratio=state_float(state, "min_ratio"),
        )
        profile = state.get("profile")
        records = state.get("records")
        if not isinstance(profile, list) or len(profile) != fresh._bins:
            raise DetectionError("adaptive spike model: profile of the wrong size")
        if not isinstance(records, list) or len(records) != len(fresh._records):
            raise DetectionError("adaptive spike model: records of the wrong size")
        slots: list[float | None] = []
        for item in profile:
            if item is not None and (isinstance(item, bool) or not isinstance(item, int | float)):
                raise DetectionError("adaptive spike model: profile holds a non-number")
            slots.append(None if item is None else float(item))
        fresh._records = [state_float({"r": item}, "r") for item in records]
        fresh._profile = slots
        fresh._n = state_int(state, "n")
        fresh._since = state_int(state, "since")
        fresh._level = state_float(state, "level")
        fresh._level_short = state_float(state, "level_short")
        fresh._profile_short = state_float(state, "profile_short")
        fresh._var_level = state_float(state, "var_level")
        fresh._var_profile = state_float(state, "var_profile")
        self.__dict__.update(fresh.__dict__)
