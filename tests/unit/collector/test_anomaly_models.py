"""Streaming anomaly models: spikes score high, steady noise low, cold start, state round trip."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest

from agentmesh.collector.anomaly import (
    AdaptiveSpikeModel,
    StreamingAnomalyModel,
    WindowedGaussian,
    model_from_snapshot,
    new_model,
)
from agentmesh.core.errors import DetectionError

T0 = 1_700_000_000.0


def _noise(seed: int, n: int, mean: float = 10.0, sd: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def _feed(model: StreamingAnomalyModel, values: list[float], start: int = 0) -> list[float]:
    return [model.update(v, T0 + 60.0 * (start + i)) for i, v in enumerate(values)]


def test_models_follow_the_protocol() -> None:
    assert isinstance(new_model(), StreamingAnomalyModel)
    assert isinstance(AdaptiveSpikeModel(), StreamingAnomalyModel)
    assert isinstance(WindowedGaussian(), StreamingAnomalyModel)


def test_cold_start_scores_zero_even_for_spikes() -> None:
    model = AdaptiveSpikeModel(warmup=50)
    values = _noise(1, 50)
    values[10] = values[30] = 1000.0
    assert _feed(model, values) == [0.0] * 50
    assert model.seen == 50
    assert model.warmup == 50


def test_steady_noise_alerts_rarely_and_weakly() -> None:
    scores = _feed(AdaptiveSpikeModel(), _noise(7, 5000))
    alerts = [s for s in scores if s > 0.0]
    assert len(alerts) <= 25  # at most 0.5% of points: new records of pure noise
    assert max(alerts, default=0.0) < 0.62


def test_spike_scores_high_and_is_reported_once() -> None:
    model = AdaptiveSpikeModel(rest=120)
    _feed(model, _noise(3, 3000))
    # go on until the last (noise) alert is more than `rest` points behind
    rng = random.Random(4)
    i, quiet = 3000, 0
    scores: list[float] = []
    while quiet <= 120:
        scores.append(model.update(rng.gauss(10.0, 1.0), T0 + 60.0 * i))
        quiet = quiet + 1 if scores[-1] == 0.0 else 0
        i += 1
    spike = model.update(25.0, T0 + 60.0 * i)  # 15 sd
    assert spike > 0.75
    assert spike > max(scores)
    # the anomaly goes on: repeated alerts are suppressed for `rest` points
    after = [model.update(25.0, T0 + 60.0 * (i + 1 + k)) for k in range(100)]
    assert after == [0.0] * 100


def test_one_huge_outlier_does_not_mask_the_next_spike() -> None:
    model = AdaptiveSpikeModel(rest=10)
    _feed(model, _noise(8, 1000))
    assert model.update(1000.0, T0) > 0.9  # ~1000 sd
    _feed(model, _noise(9, 200), start=1001)
    assert model.update(30.0, T0 + 60.0 * 1201) > 0.5  # 20 sd: still news


def test_level_shift_alerts_on_its_first_points() -> None:
    model = AdaptiveSpikeModel()
    _feed(model, _noise(5, 2000))
    shifted = _feed(model, _noise(6, 50, mean=16.0), start=2000)
    first = next(i for i, s in enumerate(shifted) if s > 0.0)
    assert first <= 3
    assert shifted[first] > 0.6


def test_daily_profile_flags_a_value_unusual_for_its_time_of_day() -> None:
    rng = random.Random(11)
    step = 300.0
    model = AdaptiveSpikeModel()

    def value(t: float) -> float:
        return 100.0 + 50.0 * math.sin(2 * math.pi * (t % 86400.0) / 86400.0)

    n = 288 * 10
    for i in range(n):
        t = T0 + step * i
        model.update(value(t) + rng.gauss(0.0, 2.0), t)
    assert model.uses_profile
    morning = T0 - T0 % 86400.0 + 6 * 3600.0  # sin peaks at 06:00 UTC
    expected = model.expected(morning)
    assert expected is not None
    assert 140.0 < expected < 160.0
    # at the trough of the day, the day's mean level: within the stream's range, not its hour's
    t = T0 + step * n
    while value(t) > 60.0:
        t += step
    assert model.update(100.0, t) > 0.6


def test_upward_only_on_log_scale_ignores_drops_and_flags_multiplicative_spikes() -> None:
    rng = random.Random(2)
    model = new_model(spikes_only=True)
    latencies = [rng.lognormvariate(0.0, 0.3) for _ in range(3000)]
    _feed(model, latencies)
    expected = model.expected(T0)
    assert expected is not None
    assert 0.8 < expected < 1.25  # the median of lognormal(0, 0.3) is 1
    drops = _feed(model, [0.01] * 5, start=3000)
    assert drops == [0.0] * 5
    seen = model.seen
    assert _feed(model, [0.0] * 50, start=3005) == [0.0] * 50  # free calls: skipped
    assert model.seen == seen
    assert model.update(20.0, T0 + 60.0 * 3005) > 0.7


def test_non_finite_values_are_skipped() -> None:
    model = AdaptiveSpikeModel()
    _feed(model, _noise(1, 10))
    assert model.update(math.nan, T0) == 0.0
    assert model.update(math.inf, T0) == 0.0
    assert model.seen == 10


@pytest.mark.parametrize(
    "factory",
    [
        AdaptiveSpikeModel,
        lambda: AdaptiveSpikeModel(log_scale=True, upward_only=True, record_half_life=0.0),
        lambda: WindowedGaussian(window=300, step=10),
    ],
)
def test_snapshot_restore_round_trip_gives_identical_scores(
    factory: Callable[[], StreamingAnomalyModel],
) -> None:
    rng = random.Random(9)
    first = [abs(rng.gauss(10.0, 2.0)) for _ in range(1500)]
    rest = [abs(rng.gauss(10.0, 2.0)) for _ in range(1500)]
    for i in range(0, 1500, 97):
        rest[i] *= 4.0  # spikes, so that alerts and records are exercised
    original: StreamingAnomalyModel = factory()
    _feed(original, first)
    state = json.loads(json.dumps(original.snapshot()))
    restored = model_from_snapshot(state)
    assert restored.seen == original.seen
    expected = _feed(original, rest, start=1500)
    assert _feed(restored, rest, start=1500) == expected
    assert any(s > 0.5 for s in expected)


def test_restore_refuses_another_models_state() -> None:
    with pytest.raises(DetectionError):
        AdaptiveSpikeModel().restore(WindowedGaussian().snapshot())
    with pytest.raises(DetectionError):
        model_from_snapshot({"kind": "nope"})
    state = AdaptiveSpikeModel().snapshot()
    state["records"] = [1.0]
    with pytest.raises(DetectionError):
        AdaptiveSpikeModel().restore(state)


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(DetectionError):
        AdaptiveSpikeModel(warmup=1)
    with pytest.raises(DetectionError):
        AdaptiveSpikeModel(alpha=0.0)
    with pytest.raises(DetectionError):
        WindowedGaussian(window=0)


def test_windowed_gaussian_scores_the_normal_tail() -> None:
    model = WindowedGaussian(window=3, step=1)
    assert model.update(1.0, T0) == 0.0  # nothing seen yet
    model.update(2.0, T0)
    model.update(3.0, T0)
    # window 1, 2, 3: mean 2, population sd sqrt(2/3); 4 is 2.449 sd above
    z = 2.0 / math.sqrt(2.0 / 3.0)
    assert model.expected(T0) == pytest.approx(2.0)
    assert model.update(4.0, T0) == pytest.approx(1.0 - 0.5 * math.erfc(z / math.sqrt(2.0)))
    # the window slid to 2, 3, 4: mean 3, so 3 scores 0.5 (no tail at all)
    assert model.update(3.0, T0) == pytest.approx(0.5)


def test_windowed_gaussian_spike_high_noise_mid() -> None:
    model = WindowedGaussian()
    scores = _feed(model, _noise(4, 2000))
    assert sum(s > 0.999 for s in scores[100:]) <= 5
    assert model.update(20.0, T0) > 0.999999
