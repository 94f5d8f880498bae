"""NAB's scoring rules (Lavin & Ahmad, 2015; NAB v1.x), written for this project.

For each file:

* the probationary period is the first ``min(floor(0.15 * n), 0.15 * 5000)`` points; detections
  there are ignored (NAB caps it at 750 points for long files);
* a detection is a point whose anomaly score is ``>= threshold``;
* inside a window ``[first, last]`` (width ``w``), a detection at index ``i`` is worth
  ``A_TP * S(-(last - i + 1) / w) / S(-1)`` with ``S(x) = 2 * sigmoid(-5x) - 1``: 1 for the
  window's first point, near 0 for its last. Only the best (= earliest) detection of a window
  counts; a window without one costs ``-A_FN``;
* outside windows every detection counts, ``A_FP * S(d)``: before the first window ``S = -1``
  (``d = 3``), after a window ``d = (i - last) / (w - 1)`` of that window, so a detection just
  after a window costs little and one more than three window widths after costs the full
  ``A_FP``.

The threshold is chosen per detector and profile to maximise the corpus total (NAB's sweep:
every distinct anomaly score is a candidate, plus "nothing detected"). The normalised score is
``100 * (raw - null) / (perfect - null)``, where the null detector detects nothing
(``null = -A_FN * windows``) and the perfect one scores ``A_TP`` per window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "PROFILES",
    "CorpusScore",
    "FileSweep",
    "Profile",
    "probation_length",
    "scaled_sigmoid",
    "score_corpus",
    "sweep_file",
]


@dataclass(frozen=True, slots=True)
class Profile:
    """A NAB application profile (cost matrix). ``A_TN`` plays no part in the score."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)
"""NAB's three profiles (config/profiles.json of NAB v1.x)."""

PROBATION_FRACTION = 0.15


def scaled_sigmoid(position: float) -> float:
    """NAB's ``S(x) = 2 * sigmoid(-5x) - 1``, with ``S = -1`` from ``x >= 3`` on."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n: int) -> float:
    """Points at the start of an ``n``-point file whose detections are ignored."""
    return min(math.floor(PROBATION_FRACTION * n), PROBATION_FRACTION * 5000)


@dataclass(frozen=True, slots=True)
class FileSweep:
    """Per-point weights of one file, independent of the detector.

    Attributes:
        name: The file.
        probation: Points ignored at the start.
        window_of: Per point, the index of the window holding it (within the file), or -1.
        tp_unit: Per point in a window, its true-positive value per unit ``A_TP``.
        fp_unit: Per point outside windows, its false-positive value per unit ``A_FP``
            (negative).
        windows: Windows whose points are scorable (not entirely in probation).
    """

    name: str
    probation: float
    window_of: list[int]
    tp_unit: list[float]
    fp_unit: list[float]
    windows: int


def sweep_file(name: str, n: int, windows: Sequence[tuple[int, int]]) -> FileSweep:
    """Weigh every point of a file by its position relative to the windows.

    Args:
        name: The file.
        n: Its number of points.
        windows: Its windows as ``(first, last)`` indices, in order, not overlapping.

    Returns:
        The per-point weights.
    """
    window_of = [-1] * n
    tp_unit = [0.0] * n
    fp_unit = [0.0] * n
    probation = probation_length(n)
    ordered = sorted(windows)
    k = 0
    prev_last = -1
    prev_width = 0.0
    i = 0
    scorable: set[int] = set()
    while i < n:
        if k < len(ordered) and i == ordered[k][0]:
            first, last = ordered[k]
            width = float(last - first + 1)
            for j in range(first, min(last, n - 1) + 1):
                window_of[j] = k
                tp_unit[j] = scaled_sigmoid(-(last - j + 1) / width) / _MAX_TP
                if j >= probation:
                    scorable.add(k)
            prev_last, prev_width = last, width
            i = last + 1
            k += 1
            continue
        if prev_last < 0:
            fp_unit[i] = -1.0
        else:
            # A one-point window has no width to measure by: NAB would divide by zero.
            denominator = prev_width - 1.0 if prev_width > 1.0 else 1.0
            fp_unit[i] = scaled_sigmoid(abs(prev_last - i) / denominator)
        i += 1
    return FileSweep(name, probation, window_of, tp_unit, fp_unit, len(scorable))


@dataclass(frozen=True, slots=True)
class CorpusScore:
    """A detector's NAB result for one profile.

    Attributes:
        profile: The profile's name.
        threshold: The optimised threshold (a score ``>=`` it is a detection).
        raw: The corpus total at that threshold.
        null: The null detector's total (``-A_FN * windows``).
        perfect: The perfect detector's total (``A_TP * windows``).
        normalized: ``100 * (raw - null) / (perfect - null)``.
        tp: Windows detected.
        fn: Windows missed.
        fp: Detections outside windows.
        per_file: Each file's total at the threshold.
    """

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalized: float
    tp: int
    fn: int
    fp: int
    per_file: dict[str, float]


def score_corpus(
    sweeps: Sequence[FileSweep], scores: Sequence[Sequence[float]], profile: Profile
) -> CorpusScore:
    """Optimise the threshold over the corpus for a profile and score the detector.

    Args:
        sweeps: Each file's weights (:func:`sweep_file`).
        scores: The detector's anomaly scores, one sequence per file, in the same order.
        profile: The cost matrix.

    Returns:
        The result at the best threshold.

    Raises:
        ValueError: When a file's scores do not match its length.
    """
    points: list[tuple[float, int, int, float]] = []  # (score, window id | -1, file, value)
    window_base: list[int] = []
    n_windows = 0
    for f, (sweep, file_scores) in enumerate(zip(sweeps, scores, strict=True)):
        if len(file_scores) != len(sweep.window_of):
            raise ValueError(f"{sweep.name}: {len(file_scores)} scores for {len(sweep.window_of)}")
        window_base.append(n_windows)
        start = math.ceil(sweep.probation)
        for i in range(start, len(file_scores)):
            w = sweep.window_of[i]
            if w >= 0:
                points.append((file_scores[i], n_windows + w, f, profile.tp * sweep.tp_unit[i]))
            else:
                points.append((file_scores[i], -1, f, profile.fp * sweep.fp_unit[i]))
        n_windows += max((w for w in sweep.window_of if w >= 0), default=-1) + 1
    scorable = sum(s.windows for s in sweeps)
    null = -profile.fn * scorable
    perfect = profile.tp * scorable
    points.sort(key=lambda p: p[0], reverse=True)

    best = [float("nan")] * n_windows
    total = null
    best_total = null
    best_threshold = math.inf
    i = 0
    while i < len(points):
        threshold = points[i][0]
        while i < len(points) and points[i][0] == threshold:
            _, window, _, value = points[i]
            if window < 0:
                total += value
            elif math.isnan(best[window]):
                best[window] = value
                total += profile.fn + value
            elif value > best[window]:
                total += value - best[window]
                best[window] = value
            i += 1
        if total > best_total:
            best_total, best_threshold = total, threshold

    return _at_threshold(sweeps, scores, profile, best_threshold, null, perfect)


def _at_threshold(
    sweeps: Sequence[FileSweep],
    scores: Sequence[Sequence[float]],
    profile: Profile,
    threshold: float,
    null: float,
    perfect: float,
) -> CorpusScore:
    per_file: dict[str, float] = {}
    tp = fn = fp = 0
    for sweep, file_scores in zip(sweeps, scores, strict=True):
        start = math.ceil(sweep.probation)
        found: dict[int, float] = {}
        file_total = 0.0
        for i in range(start, len(file_scores)):
            if file_scores[i] < threshold:
                continue
            w = sweep.window_of[i]
            if w < 0:
                file_total += profile.fp * sweep.fp_unit[i]
                fp += 1
            elif w not in found:
                found[w] = profile.tp * sweep.tp_unit[i]
        file_total += sum(found.values()) - profile.fn * (sweep.windows - len(found))
        tp += len(found)
        fn += sweep.windows - len(found)
        per_file[sweep.name] = file_total
    raw = math.fsum(per_file.values())
    span = perfect - null
    normalized = 100.0 * (raw - null) / span if span > 0 else 0.0
    return CorpusScore(
        profile.name, threshold, raw, null, perfect, normalized, tp, fn, fp, per_file
    )
