"""Run a streaming anomaly model over the NAB corpus, one fresh model per file, timed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from _nab.corpus import Series
from agentmesh.collector.anomaly import StreamingAnomalyModel

__all__ = ["DetectorRun", "run_detector"]


@dataclass(frozen=True, slots=True)
class DetectorRun:
    """A detector's scores over the corpus.

    Attributes:
        name: The detector.
        scores: Per file, the score of each point.
        seconds: CPU time of the thread in the ``update`` loop (time when the process waits for
            a core, on a loaded machine, is not counted).
        wall_seconds: Wall-clock time of the same loops.
        points: Points scored.
    """

    name: str
    scores: list[list[float]]
    seconds: float
    wall_seconds: float
    points: int

    @property
    def us_per_point(self) -> float:
        """Mean CPU microseconds per ``update``."""
        return 1e6 * self.seconds / self.points if self.points else 0.0

    @property
    def wall_us_per_point(self) -> float:
        """Mean wall-clock microseconds per ``update``."""
        return 1e6 * self.wall_seconds / self.points if self.points else 0.0


def run_detector(
    name: str, factory: Callable[[], StreamingAnomalyModel], corpus: Sequence[Series]
) -> DetectorRun:
    """Score every file with a fresh model (the model sees values and timestamps only).

    Args:
        name: The detector's name.
        factory: Makes a fresh model.
        corpus: The series.

    Returns:
        The scores and the time they took.
    """
    all_scores: list[list[float]] = []
    seconds = 0.0
    wall = 0.0
    points = 0
    for series in corpus:
        model = factory()
        update = model.update
        values = series.values
        timestamps = series.timestamps
        start_wall = time.perf_counter()
        start = time.thread_time()
        scores = [update(v, t) for v, t in zip(values, timestamps, strict=True)]
        seconds += time.thread_time() - start
        wall += time.perf_counter() - start_wall
        points += len(scores)
        all_scores.append(scores)
    return DetectorRun(name, all_scores, seconds, wall, points)
