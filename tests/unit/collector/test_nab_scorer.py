"""NAB scoring (``bench/_nab``) on small cases computed by hand from NAB's published rules.

``S(x) = 2 / (1 + exp(5x)) - 1``; a window ``[first, last]`` of width ``w``; a detection at ``i``
inside it is worth ``S(-(last - i + 1) / w) / S(-1)``; one outside, after a window, costs
``A_FP * S((i - last) / (w - 1))``, before any window ``A_FP``. Normalised:
``100 * (raw - null) / (perfect - null)``, ``null = -A_FN * windows``, ``perfect = windows``.
"""

# bench/ is put on sys.path at run time (as tests/unit/test_bench_overhead.py does); pyright does
# not know it, so it cannot see _nab's types from here (pyproject's [tool.pyright] could list
# `extraPaths = ["bench"]` to lift this).
# pyright: reportMissingImports=false, reportUnknownMemberType=false
# pyright: reportUnknownVariableType=false, reportUnknownArgumentType=false
# pyright: reportUnknownParameterType=false

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

from _nab.corpus import load_corpus  # noqa: E402
from _nab.scoring import (  # noqa: E402
    PROFILES,
    Profile,
    probation_length,
    scaled_sigmoid,
    score_corpus,
    sweep_file,
)

STANDARD, LOW_FP, LOW_FN = PROFILES
N = 100  # points per synthetic file: probation = floor(0.15 * 100) = 15
WINDOW = (50, 59)  # width 10


def _s(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def _scores(hits: dict[int, float], n: int = N) -> list[float]:
    scores = [0.0] * n
    for i, v in hits.items():
        scores[i] = v
    return scores


def _one_file(
    hits: dict[int, float], profile: Profile, windows: tuple[tuple[int, int], ...] = (WINDOW,)
):
    sweep = sweep_file("f.csv", N, list(windows))
    return score_corpus([sweep], [_scores(hits)], profile)


def test_profiles_are_nabs_published_weights() -> None:
    assert [(p.name, p.tp, p.fp, p.fn) for p in PROFILES] == [
        ("standard", 1.0, 0.11, 1.0),
        ("reward_low_FP_rate", 1.0, 0.22, 1.0),
        ("reward_low_FN_rate", 1.0, 0.11, 2.0),
    ]


def test_scaled_sigmoid_matches_the_papers_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_probation_is_15_percent_capped_at_750_points() -> None:
    assert probation_length(100) == 15
    assert probation_length(1000) == 150
    assert probation_length(4032) == 604
    assert probation_length(22695) == 750


def test_detection_at_the_window_start_is_perfect() -> None:
    result = _one_file({50: 1.0}, STANDARD)
    assert result.raw == pytest.approx(1.0)
    assert result.null == -1.0
    assert result.perfect == 1.0
    assert result.normalized == pytest.approx(100.0)
    assert (result.tp, result.fn, result.fp) == (1, 0, 0)


def test_detection_at_the_window_end_earns_little() -> None:
    result = _one_file({59: 1.0}, STANDARD)
    value = _s(-1 / 10) / _s(-1.0)  # ~0.2482
    assert result.raw == pytest.approx(value)
    assert result.normalized == pytest.approx(100 * (value + 1) / 2)


def test_only_the_earliest_detection_of_a_window_counts() -> None:
    result = _one_file({52: 1.0, 55: 1.0, 58: 1.0}, STANDARD)
    assert result.raw == pytest.approx(_s(-8 / 10) / _s(-1.0))
    assert result.tp == 1


def test_false_positive_before_any_window_costs_the_full_weight() -> None:
    for profile, expected in ((STANDARD, 0.89), (LOW_FP, 0.78), (LOW_FN, 0.89)):
        result = _one_file({20: 1.0, 50: 1.0}, profile)
        assert result.raw == pytest.approx(expected)
        assert result.fp == 1
    low_fn = _one_file({20: 1.0, 50: 1.0}, LOW_FN)
    assert low_fn.normalized == pytest.approx(100 * (0.89 + 2) / 3)


def test_false_positive_just_after_a_window_costs_little() -> None:
    # one point after the window: distance 1 / (10 - 1)
    result = _one_file({50: 1.0, 60: 1.0}, STANDARD)
    assert result.raw == pytest.approx(1.0 + 0.11 * _s(1 / 9))
    assert 0.96 < result.raw < 0.98
    # more than three widths after the window: the full cost
    far = _one_file({50: 1.0, 95: 1.0}, STANDARD)
    assert far.raw == pytest.approx(1.0 - 0.11)


def test_detections_in_the_probationary_period_are_ignored() -> None:
    result = _one_file({5: 1.0}, STANDARD)
    assert result.raw == pytest.approx(-1.0)
    assert result.normalized == pytest.approx(0.0)
    assert result.fp == 0


def test_missed_window_costs_a_fn_and_the_null_detector_scores_zero() -> None:
    for profile in PROFILES:
        result = _one_file({}, profile)
        assert result.raw == pytest.approx(-profile.fn)
        assert result.normalized == pytest.approx(0.0)
        assert result.fn == 1


def test_constant_scores_detect_nothing_rather_than_everything() -> None:
    sweep = sweep_file("f.csv", N, [WINDOW])
    result = score_corpus([sweep], [[0.5] * N], STANDARD)
    assert result.normalized == pytest.approx(0.0)
    assert result.threshold > 0.5


def test_threshold_is_optimised_over_the_corpus() -> None:
    sweep = sweep_file("f.csv", N, [WINDOW])
    # an FP at 0.9 before the window, the window's start at 0.8: detecting both (0.89) beats
    # detecting the FP only (-1.11) and nothing (-1)
    result = score_corpus([sweep], [_scores({20: 0.9, 50: 0.8})], STANDARD)
    assert result.threshold == 0.8
    assert result.raw == pytest.approx(0.89)
    # with the FP above every window hit in a second file, the best threshold skips it
    other = sweep_file("g.csv", N, [WINDOW])
    result = score_corpus(
        [sweep, other], [_scores({50: 0.8}), _scores({20: 0.7, 55: 0.75})], STANDARD
    )
    assert result.threshold == 0.75
    assert result.raw == pytest.approx(1.0 + _s(-5 / 10) / _s(-1.0))
    assert result.per_file == {
        "f.csv": pytest.approx(1.0),
        "g.csv": pytest.approx(0.8598, abs=1e-4),
    }
    assert result.normalized == pytest.approx(100 * (result.raw + 2) / 4)


def test_fp_weights_follow_the_preceding_window() -> None:
    sweep = sweep_file("f.csv", N, [(20, 29), (60, 64)])
    assert sweep.fp_unit[10] == -1.0  # before any window
    assert sweep.fp_unit[30] == pytest.approx(_s(1 / 9))
    assert sweep.fp_unit[65] == pytest.approx(_s(1 / 4))  # measured by the second window
    assert sweep.window_of[20] == 0
    assert sweep.window_of[64] == 1
    assert sweep.window_of[65] == -1
    assert sweep.tp_unit[60] == pytest.approx(1.0)


def test_corpus_maps_window_timestamps_to_indices(tmp_path: Path) -> None:
    (tmp_path / "data" / "k").mkdir(parents=True)
    rows = [f"2014-04-01 00:{m:02d}:00,{m}" for m in range(0, 60, 5)]
    (tmp_path / "data" / "k" / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    windows = {"k/a.csv": [["2014-04-01 00:10:00.000000", "2014-04-01 00:20:00.000000"]]}
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    (series,) = load_corpus(tmp_path)
    assert series.name == "k/a.csv"
    assert series.windows == [(2, 4)]
    assert series.values[3] == 15.0
    assert series.timestamps[1] - series.timestamps[0] == 300.0
