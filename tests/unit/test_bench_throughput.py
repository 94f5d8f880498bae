"""Tests of ``bench/collector_throughput.py``: steady-state CPU, the soak's verdict, arguments."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from collector_throughput import (  # noqa: E402
    _steady_cpu,  # pyright: ignore[reportPrivateUsage]
    flatness,
    main,
)


def _sample(received: int, cpu_s: float, children_cpu_s: float, busy: int, total: int) -> Any:
    return (
        0.0,
        {
            "received": received,
            "cpu_s": cpu_s,
            "children_cpu_s": children_cpu_s,
            "machine_jiffies": (busy, total),
        },
    )


def test_steady_cpu_counts_only_the_middle_of_the_run() -> None:
    samples = [
        _sample(0, 1.0, 0.5, 0, 0),  # start-up: left out
        _sample(20_000, 2.0, 1.0, 100, 200),
        _sample(50_000, 2.6, 1.5, 250, 400),
        _sample(80_000, 3.2, 2.0, 400, 600),
        _sample(100_000, 9.0, 9.0, 1_000, 1_000),  # the drain: left out
    ]
    cpu = _steady_cpu(samples, 100_000)
    assert cpu["main_us_per_span"] == pytest.approx(1e6 * 1.2 / 60_000)
    assert cpu["workers_us_per_span"] == pytest.approx(1e6 * 1.0 / 60_000)
    assert cpu["machine_busy"] == pytest.approx(300 / 400)


def _soak_rss(seconds: int, growth_mb_per_min: float) -> list[tuple[float, float]]:
    """RSS sampled every second: warm-up to 600 MB, then a 30 s saw tooth 180 MB high."""
    points: list[tuple[float, float]] = []
    for t in range(seconds + 1):
        warm = 600.0 * min(1.0, t / 40)
        tooth = 180.0 * ((t % 30) / 30) if t >= 40 else 0.0
        points.append((float(t), warm + tooth + growth_mb_per_min * t / 60))
    return points


def test_a_saw_tooth_is_flat_whatever_its_phase_at_the_samples() -> None:
    points = _soak_rss(300, 0.0)
    # the two samples the old rule compared: 60 s at the foot of a tooth, 299 s near its top
    assert points[299][1] / points[60][1] > 1.1
    verdict = flatness(points, 300)
    assert verdict["flat"], verdict
    assert math.isclose(verdict["peak_last_over_second_minute"], 1.0, abs_tol=0.01)


def test_memory_that_keeps_growing_is_not_flat() -> None:
    verdict = flatness(_soak_rss(300, 30.0), 300)  # +30 MB a minute: 5 % of 600 MB
    assert not verdict["flat"]
    assert verdict["slope_mb_per_min"] > verdict["slope_limit_mb_per_min"]
    assert verdict["peak_last_over_second_minute"] > 1.1


def test_a_one_minute_soak_compares_its_last_minute_with_itself() -> None:
    verdict = flatness(_soak_rss(60, 0.0), 60)
    assert verdict["peak_last_over_second_minute"] == 1.0


def test_steady_cpu_is_empty_without_enough_samples() -> None:
    assert _steady_cpu([_sample(50_000, 1.0, 1.0, 1, 2)], 100_000) == {}
    assert _steady_cpu([], 100_000) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--paced-fraction", "0"], "--paced-fraction is a share of the measured rate"),
        (["--soak-fraction", "1.5"], "--soak-fraction is a share of the measured rate"),
        (["--clients", "0"], "--clients must be above 0"),
        (["--soak", "60", "--soak-rate", "-5"], "--soak-rate must be above 0"),
    ],
)
def test_arguments_that_cannot_run_are_refused_before_anything_starts(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --paced-fraction 0 used to run the whole saturated phase, then divide by zero
    monkeypatch.setattr(sys, "argv", ["collector_throughput.py", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
