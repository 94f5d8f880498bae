"""Per-round samples to overhead figures, the table and the JSON line (pure functions).

Each round measures, for every contender and mode, the bare and the instrumented worker one
after the other; the round's overhead is the difference of their median per-call times. The
figure reported is the median of those per-round overheads, and the noise is their spread.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MODES = ("plain", "stream")


@dataclass
class Samples:
    """What the rounds measured for one contender.

    Attributes:
        version: The contender's version.
        bare_us: Mode to the bare worker's per-round median per-call microseconds.
        instrumented_us: Mode to the instrumented worker's per-round medians.
        spans_per_call: Mode to the spans per call seen in each round (instrumented).
        span_names: Span names seen.
    """

    version: str = "?"
    bare_us: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    instrumented_us: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    spans_per_call: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    span_names: set[str] = field(default_factory=set[str])


@dataclass(frozen=True)
class Figure:
    """One contender's overhead in one mode.

    Attributes:
        overhead_us: Median over rounds of (instrumented - bare) median per-call time.
        low_us: Smallest per-round overhead.
        high_us: Largest per-round overhead.
        bare_us: Median bare per-call time.
        spans_per_call: Spans per call (the largest seen in any round).
    """

    overhead_us: float
    low_us: float
    high_us: float
    bare_us: float
    spans_per_call: float


def figure(samples: Samples, mode: str) -> Figure:
    """Reduce one contender's rounds in one mode.

    Args:
        samples: The contender's samples.
        mode: ``plain`` or ``stream``.

    Returns:
        The figure.
    """
    deltas = [
        inst - bare
        for inst, bare in zip(samples.instrumented_us[mode], samples.bare_us[mode], strict=True)
    ]
    return Figure(
        overhead_us=statistics.median(deltas),
        low_us=min(deltas),
        high_us=max(deltas),
        bare_us=statistics.median(samples.bare_us[mode]),
        spans_per_call=max(samples.spans_per_call[mode]),
    )


def headline(figures: Mapping[str, Figure]) -> float:
    """Return the per-call overhead reported for a contender: the mean of its two modes."""
    return statistics.fmean(figures[mode].overhead_us for mode in MODES)


def summary(results: Mapping[str, Samples], ours: str = "agentmesh") -> dict[str, object]:
    """Build the JSON line: ``overhead_us`` per contender and ``ratio_vs_best_peer``.

    ``overhead_us`` is the mean of the plain and streamed overheads; per-mode figures, their
    spread and the ratios per mode are added under their own keys. Ratios are ``None`` when
    ours or every peer is missing.

    Args:
        results: Samples per contender.
        ours: Our contender's name.

    Returns:
        The JSON-ready dictionary.
    """
    figures = {name: {mode: figure(s, mode) for mode in MODES} for name, s in results.items()}
    overhead = {name: round(headline(f), 1) for name, f in figures.items()}
    peers = [name for name in figures if name != ours]

    def ratio(value_of: Mapping[str, float]) -> float | None:
        if ours not in value_of or not peers:
            return None
        best = min(value_of[name] for name in peers)
        return round(value_of[ours] / best, 3) if best > 0 else None

    per_mode = {
        mode: {name: round(f[mode].overhead_us, 1) for name, f in figures.items()} for mode in MODES
    }
    best_peer = min(peers, key=lambda name: overhead[name]) if peers else None
    ratios = {mode: ratio(per_mode[mode]) for mode in MODES}
    return {
        "overhead_us": overhead,
        "ratio_vs_best_peer": ratio(overhead),
        "best_peer": best_peer,
        "overhead_us_plain": per_mode["plain"],
        "overhead_us_stream": per_mode["stream"],
        "ratio_vs_best_peer_plain": ratios["plain"],
        "ratio_vs_best_peer_stream": ratios["stream"],
        "spread_us": {
            name: {mode: [round(f[mode].low_us, 1), round(f[mode].high_us, 1)] for mode in MODES}
            for name, f in figures.items()
        },
        "bare_us": {
            mode: {n: round(f[mode].bare_us, 1) for n, f in figures.items()} for mode in MODES
        },
        "spans_per_call": {
            name: {mode: f[mode].spans_per_call for mode in MODES} for name, f in figures.items()
        },
        "versions": {name: s.version for name, s in results.items()},
        "goal_met": None
        if ratios["plain"] is None or ratios["stream"] is None
        else ratios["plain"] <= 0.5 and ratios["stream"] <= 0.5,
    }


def table(results: Mapping[str, Samples], labels: Mapping[str, str]) -> list[str]:
    """Render the human table, one row per contender.

    Args:
        results: Samples per contender.
        labels: Display name per contender.

    Returns:
        Lines of text.
    """
    head = (
        f"{'contender':<23}{'version':<10}{'bare µs':>9}{'plain +µs':>11}{'(min..max)':>15}"
        f"{'stream +µs':>12}{'(min..max)':>15}{'spans/call':>12}"
    )
    lines = [head, "-" * len(head)]
    for name, samples in results.items():
        plain, stream = figure(samples, "plain"), figure(samples, "stream")
        spans = f"{plain.spans_per_call:g}/{stream.spans_per_call:g}"
        lines.append(
            f"{labels.get(name, name):<23}{samples.version:<10}{plain.bare_us:>9.0f}"
            f"{plain.overhead_us:>11.0f}{_span(plain):>15}"
            f"{stream.overhead_us:>12.0f}{_span(stream):>15}{spans:>12}"
        )
    return lines


def _span(f: Figure) -> str:
    return f"({f.low_us:.0f}..{f.high_us:.0f})"


def not_one_span(results: Mapping[str, Samples]) -> list[str]:
    """Return a warning per contender and mode that did not emit exactly one span per call."""
    warnings: list[str] = []
    for name, samples in results.items():
        for mode in MODES:
            seen: Sequence[float] = samples.spans_per_call[mode]
            if any(value != 1.0 for value in seen):
                warnings.append(
                    f"{name} ({mode}): {sorted(set(seen))} spans per call, not 1 "
                    f"(span names: {sorted(samples.span_names)})"
                )
    return warnings
