"""Per-round samples to overhead figures, the table and the JSON line (pure functions).

Each round measures, for every contender and mode, bare and instrumented calls in alternating
blocks of one process. Each pair of adjacent blocks gives one sample of the overhead, taken
within a few tens of milliseconds: the instrumented block's median per-call time over the bare
block's, minus one. Being relative to the bare calls next to it, a sample does not depend on how
fast the machine was at that moment (on a shared 2-core VM that varies by up to 1.7x within
seconds, and contenders are measured seconds apart). A contender's relative overhead is the
median of its samples over all rounds; it is shown in microseconds at the run's reference bare
call (the median bare call over every contender and round), so contenders compare at one
machine speed. The noise shown is the spread of the per-round medians.
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
        bare_us: Mode to the bare calls' per-round median per-call microseconds.
        instrumented_us: Mode to the instrumented calls' per-round medians.
        pairs_us: Mode to, per round, each pair of adjacent blocks' (instrumented median, bare
            median) per-call microseconds.
        spans_per_call: Mode to the spans per call seen in each round (instrumented).
        bare_spans_per_call: Mode to the spans per bare call in each round (must be 0).
        span_names: Span names seen.
        patched: The attributes the contender replaced (what is switched off for bare calls).
    """

    version: str = "?"
    bare_us: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    instrumented_us: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    pairs_us: dict[str, list[list[tuple[float, float]]]] = field(
        default_factory=lambda: {m: [] for m in MODES}
    )
    spans_per_call: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    bare_spans_per_call: dict[str, list[float]] = field(
        default_factory=lambda: {m: [] for m in MODES}
    )
    span_names: set[str] = field(default_factory=set[str])
    patched: list[str] = field(default_factory=list[str])


@dataclass(frozen=True)
class Figure:
    """One contender's overhead in one mode.

    Attributes:
        overhead_us: ``relative`` times the reference bare call.
        relative: Median over every pair of blocks of instrumented / bare - 1.
        low_us: Smallest per-round median, in microseconds at the reference bare call.
        high_us: Largest per-round median, likewise.
        bare_us: This contender's median bare per-call time.
        spans_per_call: Spans per call (the largest seen in any round).
    """

    overhead_us: float
    relative: float
    low_us: float
    high_us: float
    bare_us: float
    spans_per_call: float


def reference_bare_us(results: Mapping[str, Samples], mode: str) -> float:
    """Return the median bare block over every contender and round: the speed figures use.

    Args:
        results: Samples per contender.
        mode: ``plain`` or ``stream``.

    Returns:
        Microseconds per bare call.
    """
    bare = [
        pair[1]
        for samples in results.values()
        for pairs in samples.pairs_us[mode]
        for pair in pairs
    ]
    return statistics.median(bare)


def figure(samples: Samples, mode: str, reference_us: float | None = None) -> Figure:
    """Reduce one contender's rounds in one mode.

    Args:
        samples: The contender's samples.
        mode: ``plain`` or ``stream``.
        reference_us: The bare call the relative overhead is shown at (default: this
            contender's own median bare call).

    Returns:
        The figure.
    """
    rounds = [
        [inst / bare - 1.0 for inst, bare in pairs] for pairs in samples.pairs_us[mode] if pairs
    ]
    own_bare = statistics.median(samples.bare_us[mode])
    reference = own_bare if reference_us is None else reference_us
    per_round = [statistics.median(relatives) for relatives in rounds]
    relative = statistics.median([value for relatives in rounds for value in relatives])
    return Figure(
        overhead_us=relative * reference,
        relative=relative,
        low_us=min(per_round) * reference,
        high_us=max(per_round) * reference,
        bare_us=own_bare,
        spans_per_call=max(samples.spans_per_call[mode]),
    )


def figures(results: Mapping[str, Samples]) -> dict[str, dict[str, Figure]]:
    """Return every contender's figure per mode, all at the run's reference bare call.

    Args:
        results: Samples per contender.

    Returns:
        Contender to mode to figure.
    """
    reference = {mode: reference_bare_us(results, mode) for mode in MODES}
    return {
        name: {mode: figure(samples, mode, reference[mode]) for mode in MODES}
        for name, samples in results.items()
    }


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
    by_name = figures(results)
    overhead = {name: round(headline(f), 1) for name, f in by_name.items()}
    peers = [name for name in by_name if name != ours]

    def ratio(value_of: Mapping[str, float]) -> float | None:
        if ours not in value_of or not peers:
            return None
        best = min(value_of[name] for name in peers)
        return round(value_of[ours] / best, 3) if best > 0 else None

    per_mode = {
        mode: {name: round(f[mode].overhead_us, 1) for name, f in by_name.items()} for mode in MODES
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
            for name, f in by_name.items()
        },
        "overhead_pct": {
            name: {mode: round(100 * f[mode].relative, 2) for mode in MODES}
            for name, f in by_name.items()
        },
        "reference_bare_us": {mode: round(reference_bare_us(results, mode), 1) for mode in MODES},
        "bare_us": {
            mode: {n: round(f[mode].bare_us, 1) for n, f in by_name.items()} for mode in MODES
        },
        "spans_per_call": {
            name: {mode: f[mode].spans_per_call for mode in MODES} for name, f in by_name.items()
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
        f"{'contender':<23}{'version':<10}{'bare µs':>9}{'plain +µs':>11}{'+%':>7}"
        f"{'(min..max)':>15}{'stream +µs':>12}{'+%':>7}{'(min..max)':>15}{'spans/call':>12}"
    )
    lines = [head, "-" * len(head)]
    for name, by_mode in figures(results).items():
        plain, stream = by_mode["plain"], by_mode["stream"]
        spans = f"{plain.spans_per_call:g}/{stream.spans_per_call:g}"
        lines.append(
            f"{labels.get(name, name):<23}{results[name].version:<10}{plain.bare_us:>9.0f}"
            f"{plain.overhead_us:>11.0f}{100 * plain.relative:>7.1f}{_span(plain):>15}"
            f"{stream.overhead_us:>12.0f}{100 * stream.relative:>7.1f}{_span(stream):>15}"
            f"{spans:>12}"
        )
    reference = {mode: reference_bare_us(results, mode) for mode in MODES}
    lines.append(
        f"(+µs: the relative overhead at the run's reference bare call, plain "
        f"{reference['plain']:.0f} µs and streamed {reference['stream']:.0f} µs)"
    )
    return lines


def _span(f: Figure) -> str:
    return f"({f.low_us:.0f}..{f.high_us:.0f})"


def not_one_span(results: Mapping[str, Samples]) -> list[str]:
    """Return a warning per contender and mode not at one span per call (none when bare)."""
    warnings: list[str] = []
    for name, samples in results.items():
        for mode in MODES:
            seen: Sequence[float] = samples.spans_per_call[mode]
            if any(value != 1.0 for value in seen):
                warnings.append(
                    f"{name} ({mode}): {sorted(set(seen))} spans per call, not 1 "
                    f"(span names: {sorted(samples.span_names)})"
                )
            bare: Sequence[float] = samples.bare_spans_per_call[mode]
            if any(value != 0.0 for value in bare):
                warnings.append(
                    f"{name} ({mode}): bare calls emitted {sorted(set(bare))} spans per call; "
                    f"switching the instrumentation off missed something (patched: "
                    f"{samples.patched})"
                )
    return warnings
