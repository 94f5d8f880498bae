"""NAB's windowed Gaussian baseline: how far a value lies in the tail of the recent window.

The window holds up to ``window`` recent values; once full it slides by ``step`` values at a
time. Mean and standard deviation are recomputed when the window changes. A value's score is
``1 - Q(|x - mean| / std)``, one minus its one-sided normal tail probability, so it lies in
``[0.5, 1)`` once the model has seen a value (``0`` for the very first). Defaults are NAB's
(``window = 6400``, ``step = 100``). It is the reference the NAB scorer is validated with; for the
collector it is a poor fit (latencies are skewed, the window is long to fill).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from agentmesh.collector.anomaly.model import state_float, state_floats, state_int
from agentmesh.collector.detection import JsonValue
from agentmesh.core.errors import DetectionError

__all__ = ["WindowedGaussian"]

_KIND = "windowed_gaussian"
_SQRT2 = math.sqrt(2.0)


class WindowedGaussian:
    """Windowed mean and standard deviation, scored by the normal tail probability.

    Args:
        window: Values the window holds once full.
        step: Values gathered before a full window slides.

    Raises:
        DetectionError: When ``window`` or ``step`` is below 1.
    """

    def __init__(self, window: int = 6400, step: int = 100) -> None:
        if window < 1 or step < 1:
            raise DetectionError("windowed gaussian: window and step must be at least 1")
        self._window_size = window
        self._step = step
        self._window: list[float] = []
        self._buffer: list[float] = []
        self._mean = 0.0
        self._std = 1.0
        self._m2 = 0.0

    @property
    def warmup(self) -> int:
        """One point: the first value scores 0, every later one is scored."""
        return 1

    @property
    def seen(self) -> int:
        """Number of points learned."""
        return len(self._window) + len(self._buffer)

    def expected(self, timestamp_s: float) -> float | None:
        """The window's mean (the time plays no part).

        Args:
            timestamp_s: Unused.

        Returns:
            The mean, or ``None`` before any point was learned.
        """
        return self._mean if self._window else None

    def update(self, value: float, timestamp_s: float) -> float:
        """Score a value against the window, then add it.

        Args:
            value: The observation.
            timestamp_s: Unused (the window counts points, not time).

        Returns:
            ``1 - tail probability``, or 0 before any value was seen or for a non-finite value.
        """
        if not math.isfinite(value):
            return 0.0
        score = 0.0
        if self._window:
            z = abs(value - self._mean) / self._std
            score = 1.0 - 0.5 * math.erfc(z / _SQRT2)
        if len(self._window) < self._window_size:
            # Welford while filling: the same mean and population deviation, O(1) a point.
            self._window.append(value)
            delta = value - self._mean
            self._mean += delta / len(self._window)
            self._m2 += delta * (value - self._mean)
            std = math.sqrt(max(self._m2, 0.0) / len(self._window))
            self._std = std if std > 0.0 else 1e-6
        else:
            self._buffer.append(value)
            if len(self._buffer) == self._step:
                del self._window[: self._step]
                self._window.extend(self._buffer)
                self._buffer.clear()
                self._refresh()
        return score

    def _refresh(self) -> None:
        n = len(self._window)
        mean = math.fsum(self._window) / n
        m2 = math.fsum((x - mean) * (x - mean) for x in self._window)
        self._mean = mean
        self._m2 = m2
        var = m2 / n
        std = math.sqrt(var)
        self._std = std if std > 0.0 else 1e-6

    def snapshot(self) -> dict[str, JsonValue]:
        """Return window, pending step buffer and settings.

        Returns:
            JSON-ready state.
        """
        return {
            "kind": _KIND,
            "window_size": self._window_size,
            "step": self._step,
            "window": list(self._window),
            "buffer": list(self._buffer),
            "mean": self._mean,
            "std": self._std,
            "m2": self._m2,
        }

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Take back a snapshot.

        Args:
            state: What :meth:`snapshot` returned.

        Raises:
            DetectionError: When the state is not a windowed Gaussian's.
        """
        if state.get("kind") != _KIND:
            raise DetectionError("windowed gaussian: state of another model")
        self._window_size = state_int(state, "window_size")
        self._step = state_int(state, "step")
        self._window = state_floats(state, "window")
        self._buffer = state_floats(state, "buffer")
        self._mean = state_float(state, "mean")
        self._std = state_float(state, "std")
        self._m2 = state_float(state, "m2")
