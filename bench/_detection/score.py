"""Precision, recall and F1 per fault type; clean runs flagged; detection delays.

Per-run types are scored by ``(run, type)`` pairs: a pair is predicted when any detection of
that type names the run (by its trace); it is a true positive when the run carries a fault of
that type, ignored when the type is tolerated on the run (a secondary effect of its fault, or a
run hit by a storm or an outage: see :mod:`_detection.truth`), a false positive otherwise.

Cross-run types (``rate_limit_storm``, ``provider_outage``) are scored by episodes: a detection
matches an episode of its type when it names the episode's model (``details["model"]``, else
the model of its spans; a detection naming only a provider matches that provider's episodes)
and was produced between the episode's start and ``grace_s`` after its end. Recall is the share
of episodes matched by at least one detection; precision is the share of detections that match
an episode.

A clean run (no fault, no episode felt) is *flagged* when a detection of any contract type
names it, except a cross-run detection that matched an episode. Delays are those of the first
detection of each true positive (pair or episode).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from _detection.generate import Dataset
from _detection.replay import Observed
from _detection.truth import CROSS_RUN_TYPES, FAULT_TYPES, Episode, RunTruth
from _detection.world import MODELS

__all__ = ["Score", "TypeScore", "percentile", "score"]

_BY_RESPONSE = {model.response: name for name, model in MODELS.items()}


@dataclass(frozen=True, slots=True)
class TypeScore:
    """Figures of one type.

    Attributes:
        tp: True positives (pairs or episodes).
        fp: False positives (pairs, or detections for cross-run types).
        fn: Faults (pairs or episodes) not detected.
        precision: ``tp / (tp + fp)`` (0 when nothing was predicted).
        recall: ``tp / (tp + fn)``.
        f1: Harmonic mean of both.
        delays_ms: Delay of each true positive's first detection, when known.
        false_positives: The first detection of each false positive.
        missed: Run ids (per-run types) or episode ids (cross-run types) not detected.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    delays_ms: tuple[float, ...] = ()
    false_positives: tuple[Observed, ...] = ()
    missed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Score:
    """The benchmark's figures.

    Attributes:
        per_type: Figures per fault type, in the contract's order.
        macro_f1: Mean F1 over the types.
        clean_runs: Clean runs.
        clean_flagged: Clean runs flagged.
        clean_runs_flagged: Their share.
        flagged_by_type: How many clean runs each type flagged.
        other_types: Detections of types outside the contract (``provider_recovered``…).
        delays_ms: Delays of every true positive, all types.
    """

    per_type: dict[str, TypeScore]
    macro_f1: float
    clean_runs: int
    clean_flagged: int
    clean_runs_flagged: float
    flagged_by_type: dict[str, int] = field(default_factory=lambda: dict[str, int]())
    other_types: dict[str, int] = field(default_factory=lambda: dict[str, int]())
    delays_ms: tuple[float, ...] = ()


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile.

    Args:
        values: Samples.
        q: Between 0 and 1.

    Returns:
        The percentile, or ``None`` without samples.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _canonical(model: str) -> str:
    return model if model in MODELS else _BY_RESPONSE.get(model, model)


def _target(observed: Observed, span_models: dict[str, str]) -> tuple[str | None, str | None]:
    """``(provider, model)`` a cross-run detection names."""
    details = observed.detection.details
    provider = details.get("provider")
    model = details.get("model")
    if not isinstance(model, str):
        model = next(
            (span_models[s] for s in observed.detection.span_ids if s in span_models), None
        )
    return (
        provider if isinstance(provider, str) else None,
        _canonical(model) if model is not None else None,
    )


def _matches(episode: Episode, provider: str | None, model: str | None) -> bool:
    if model is not None:
        return model == episode.model
    return provider is not None and provider == episode.provider


def score(
    dataset: Dataset,
    observed: Sequence[Observed],
    *,
    grace_s: float = 120.0,
) -> Score:
    """Score the detections against the ground truth.

    Args:
        dataset: The stream and its truth.
        observed: What the pipeline reported.
        grace_s: How long after an episode's end a detection of it still counts.

    Returns:
        The figures.
    """
    runs = dataset.runs
    grace_ns = int(grace_s * 1e9)
    predicted: dict[tuple[str, str], Observed] = {}
    other: Counter[str] = Counter()
    cross_detections: dict[str, int] = Counter()
    cross_matched: dict[str, int] = Counter()
    episode_first: dict[str, Observed] = {}
    matched_ids: set[str] = set()
    false_cross: dict[str, list[Observed]] = {t: [] for t in CROSS_RUN_TYPES}
    for item in observed:
        detection = item.detection
        type_ = detection.type
        if type_ not in FAULT_TYPES:
            other[type_] += 1
            continue
        if type_ in CROSS_RUN_TYPES:
            cross_detections[type_] += 1
            provider, model = _target(item, dataset.span_models)
            for episode in dataset.episodes:
                if (
                    episode.type == type_
                    and episode.start_ns <= item.virtual_ns <= episode.end_ns + grace_ns
                    and _matches(episode, provider, model)
                ):
                    cross_matched[type_] += 1
                    matched_ids.add(detection.id)
                    episode_first.setdefault(episode.id, item)
                    break
            else:
                false_cross[type_].append(item)
            continue
        run_id = dataset.traces.get(detection.trace_id)
        if run_id is None:
            run_id = detection.run_id if detection.run_id in runs else f"?{detection.trace_id}"
        predicted.setdefault((run_id, type_), item)

    per_type: dict[str, TypeScore] = {}
    truth_pairs = {(r.run_id, r.fault.type) for r in runs.values() if r.fault is not None}
    all_delays: list[float] = []
    for type_ in FAULT_TYPES:
        delays: list[float] = []
        if type_ in CROSS_RUN_TYPES:
            episodes = [e for e in dataset.episodes if e.type == type_]
            hit = [e for e in episodes if e.id in episode_first]
            for episode in hit:
                delay = episode_first[episode.id].delay_ms
                if delay is not None:
                    delays.append(delay)
            detections = cross_detections[type_]
            precision = cross_matched[type_] / detections if detections else 0.0
            recall = len(hit) / len(episodes) if episodes else 0.0
            per_type[type_] = TypeScore(
                tp=len(hit),
                fp=detections - cross_matched[type_],
                fn=len(episodes) - len(hit),
                precision=precision,
                recall=recall,
                f1=_f1(precision, recall),
                delays_ms=tuple(delays),
                false_positives=tuple(false_cross[type_]),
                missed=tuple(e.id for e in episodes if e.id not in episode_first),
            )
        else:
            tp = 0
            false: list[Observed] = []
            found: set[str] = set()
            for (run_id, predicted_type), item in predicted.items():
                if predicted_type != type_:
                    continue
                run: RunTruth | None = runs.get(run_id)
                if (run_id, type_) in truth_pairs:
                    tp += 1
                    found.add(run_id)
                    if item.delay_ms is not None:
                        delays.append(item.delay_ms)
                elif run is None or type_ not in run.tolerated():
                    false.append(item)
            missed = sorted(r for r, t in truth_pairs if t == type_ and r not in found)
            fp = len(false)
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + len(missed)) if tp + len(missed) else 0.0
            per_type[type_] = TypeScore(
                tp=tp,
                fp=fp,
                fn=len(missed),
                precision=precision,
                recall=recall,
                f1=_f1(precision, recall),
                delays_ms=tuple(delays),
                false_positives=tuple(false),
                missed=tuple(missed),
            )
        all_delays += delays

    clean = {run_id for run_id, run in runs.items() if run.clean}
    flagged: set[str] = set()
    by_type: Counter[str] = Counter()
    for item in observed:
        detection = item.detection
        if detection.type not in FAULT_TYPES or detection.id in matched_ids:
            continue
        run_id = dataset.traces.get(detection.trace_id)
        if run_id in clean:
            if run_id not in flagged:
                by_type[detection.type] += 1
            flagged.add(run_id)
    macro = sum(s.f1 for s in per_type.values()) / len(per_type)
    return Score(
        per_type=per_type,
        macro_f1=macro,
        clean_runs=len(clean),
        clean_flagged=len(flagged),
        clean_runs_flagged=len(flagged) / len(clean) if clean else 0.0,
        flagged_by_type=dict(by_type),
        other_types=dict(other),
        delays_ms=tuple(all_delays),
    )
