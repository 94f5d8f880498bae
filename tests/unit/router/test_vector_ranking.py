"""Long candidate lists ranked with numpy arrays decide exactly as the Python ranking does."""

from __future__ import annotations

import gc
import math
import random
import sys
import weakref

import pytest

from agentmesh.router import utility as utility_module
from agentmesh.router.catalog import default_catalog
from agentmesh.router.decision import RouteDecision
from agentmesh.router.learned.predictor import Predictor
from agentmesh.router.learned.quality import ARRAY_MIN_CANDIDATES, QualityModel, Shrinkage
from agentmesh.router.request import PromptFeatures, RouteRequest
from agentmesh.router.table import ModelStats, RouteTable, Tradeoff
from agentmesh.router.utility import UtilityPolicy

TASKS = ("qa", "code", None)


def _model(rng: random.Random, names: list[str]) -> QualityModel:
    """Random outcomes; some without cost or latency, some models only in some cells."""
    priors = {name: rng.random() for name in rng.sample(names, 5)}
    priors["never-seen-with-prior"] = 0.77
    model = QualityModel(Shrinkage(0.4, 1.5, 4.0, 7.0), priors)
    for _ in range(3_000):
        model.update(
            rng.choice(TASKS),
            rng.randrange(4),
            rng.choice(names),
            rng.choice((0.0, 1.0, rng.random())),
            cost_usd=None if rng.random() < 0.2 else rng.random() / 100,
            latency_s=None if rng.random() < 0.2 else rng.random() * 3,
        )
    return model


def _same(a: float | None, b: float) -> bool:
    return math.isnan(b) if a is None else a == b


def test_arrays_equal_the_predictions_of_each_model_bit_for_bit() -> None:
    rng = random.Random(11)
    names = [f"m{i:03d}" for i in range(120)]
    model = _model(rng, names)
    for _ in range(60):
        candidates = (
            *rng.sample(names, rng.randrange(1, 100)),
            "unseen",
            "never-seen-with-prior",
        )
        task, cluster = rng.choice(TASKS), rng.randrange(6)  # clusters 4 and 5: no outcome
        arrays = model.predict_arrays(task, cluster, candidates)
        assert arrays is not None
        expected = model.predict(task, cluster, candidates)
        assert arrays.quality.tolist() == [p.quality for p in expected]
        assert arrays.evidence.tolist() == [p.evidence for p in expected]
        costs, latencies = arrays.cost.tolist(), arrays.latency.tolist()
        assert all(_same(p.cost_usd, c) for p, c in zip(expected, costs, strict=True))
        assert all(_same(p.latency_s, x) for p, x in zip(expected, latencies, strict=True))
    before = model.predict_arrays("qa", 0, ("m001",))
    model.update("qa", 0, "m001", 1.0, cost_usd=0.5)  # an update drops the arrays
    after = model.predict_arrays("qa", 0, ("m001",))
    assert before is not None
    assert after is not None
    assert after.quality[0] > before.quality[0]
    assert after.quality[0] == model.predict("qa", 0, ("m001",))[0].quality


def test_arrays_cover_models_a_loaded_model_knows_only_in_a_task_class_or_cell() -> None:
    raw = QualityModel().to_dict()
    raw["models"] = {"a": [3.0, 4, 0.02, 4, 2.0, 4]}
    raw["tasks"] = {"qa": {"a": [1.0, 2, 0.01, 2, 1.0, 2], "b": [1.0, 1, 0.0, 0, 0.0, 0]}}
    raw["cells"] = {"qa": {"0": {"c": [0.0, 3, 0.03, 3, 0.5, 1]}}}
    model = QualityModel.from_dict(raw)
    for task, cluster in (("qa", 0), ("qa", 1), ("other", 0)):
        candidates = ("a", "b", "c", "d")
        arrays = model.predict_arrays(task, cluster, candidates)
        assert arrays is not None
        expected = model.predict(task, cluster, candidates)
        assert arrays.quality.tolist() == [p.quality for p in expected]
        assert arrays.evidence.tolist() == [p.evidence for p in expected]
        costs = arrays.cost.tolist()
        assert all(_same(p.cost_usd, c) for p, c in zip(expected, costs, strict=True))


def test_a_model_with_arrays_is_freed_as_soon_as_dropped_without_the_garbage_collector() -> None:
    # No reference cycle: a retired predictor is freed where it is dropped (the route table
    # client's thread), never later by a garbage collection in an application's call.
    model = QualityModel()
    model.update("qa", 0, "a", 1.0)
    assert model.predict_arrays("qa", 0, ("a", "unseen")) is not None
    gone = weakref.ref(model)
    gc.disable()
    try:
        del model
        assert gone() is None
    finally:
        gc.enable()


def test_warming_many_models_makes_the_arrays_and_not_a_prediction_per_model() -> None:
    def filled(models: int) -> QualityModel:
        model = QualityModel()
        for i in range(models):
            model.update("qa", i % 2, f"m{i:03d}", (i % 7) / 6, cost_usd=0.001)
        return model

    few, many = filled(4 * ARRAY_MIN_CANDIDATES - 1), filled(4 * ARRAY_MIN_CANDIDATES)
    assert few.warm() == 2 * (4 * ARRAY_MIN_CANDIDATES - 1)
    assert many.warm() == 2 * 4 * ARRAY_MIN_CANDIDATES
    assert few._by_cell  # pyright: ignore[reportPrivateUsage]
    assert not many._by_cell  # pyright: ignore[reportPrivateUsage]
    vectors = many._vectors  # pyright: ignore[reportPrivateUsage]
    assert vectors is not None
    assert len(vectors._cells) == 2  # pyright: ignore[reportPrivateUsage]
    names = tuple(f"m{i:03d}" for i in range(0, 4 * ARRAY_MIN_CANDIDATES, 3))
    arrays = many.predict_arrays("qa", 1, names)
    assert arrays is not None
    assert arrays.quality.tolist() == [p.quality for p in many.predict("qa", 1, names)]


def test_arrays_are_declined_without_numpy_or_with_a_zero_strength(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = QualityModel(Shrinkage(cell=0.0))
    model.update("qa", 0, "a", 1.0)
    assert model.predict_arrays("qa", 0, ("a",)) is None
    plain = QualityModel()
    plain.update("qa", 0, "a", 1.0)
    monkeypatch.setitem(sys.modules, "agentmesh.router.learned.quality_arrays", None)
    assert plain.predict_arrays("qa", 0, ("a",)) is None  # ImportError: the Python path


def _decisions(
    table: RouteTable, candidates: tuple[str, ...], requests: list[RouteRequest], exploration: float
) -> list[tuple[object, ...]]:
    policy = UtilityPolicy(
        lambda: table,
        candidates={"*": candidates},
        exploration=exploration,
        min_evidence=2,
        seed=3,
    )
    out: list[tuple[object, ...]] = []
    for request in requests:
        d: RouteDecision = policy.decide(request)
        out.append((d.chosen, d.candidates, d.scores, d.reason, d.cluster))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_policy_decides_the_same_with_arrays_and_in_python(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    catalog = [m.name for m in default_catalog()][:30]  # priced by the catalog
    names = [f"m{i:03d}" for i in range(150)] + catalog
    model = _model(rng, names[:150])
    for _ in range(40):  # equal records: ties broken by name
        model.update("qa", 1, "m-tie-a", 0.5, cost_usd=0.001, latency_s=1.0)
        model.update("qa", 1, "m-tie-b", 0.5, cost_usd=0.001, latency_s=1.0)
    stats = {name: ModelStats(latency_p50_s=rng.random() * 2) for name in rng.sample(names, 40)}
    table = RouteTable(
        version=4,
        predictor=Predictor(model).to_dict(),
        tradeoffs={"qa": Tradeoff(cost_weight=30.0, latency_weight=0.05), "*": Tradeoff(5.0)},
        models=stats,
    )
    candidates = (*rng.sample(names, len(names)), "m-tie-a", "m-tie-b", "unseen-1", "unseen-2")
    requests = [
        RouteRequest(
            "openrouter",
            rng.choice(candidates),
            task_class=rng.choice(TASKS),
            features=PromptFeatures(1, rng.randrange(0, 40_000)),
            budget_usd=rng.choice((None, None, 0.002, 0.006, 1e-9)),
            open_circuits=frozenset(rng.sample(candidates, rng.choice((0, 0, 1, 5)))),
        )
        for _ in range(300)
    ]
    monkeypatch.setattr(utility_module, "_VECTOR_MIN", 10**9)
    in_python = {e: _decisions(table, candidates, requests, e) for e in (0.0, 0.3)}
    monkeypatch.setattr(utility_module, "_VECTOR_MIN", 1)
    with_arrays = {e: _decisions(table, candidates, requests, e) for e in (0.0, 0.3)}
    assert with_arrays == in_python
    reasons = {d[3].split(" ")[0] for ds in in_python.values() for d in ds}
    assert {"best", "exploring", "requested"} <= reasons  # greedy, explored and kept cases


def test_the_policy_ranks_long_lists_with_arrays_when_numpy_is_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quality = QualityModel()
    names = tuple(f"m{i:03d}" for i in range(utility_module._VECTOR_MIN))  # pyright: ignore[reportPrivateUsage]
    for i, name in enumerate(names):
        quality.update("qa", 0, name, i / len(names), cost_usd=0.001)
    table = RouteTable(version=1, predictor=Predictor(quality).to_dict())
    calls: list[int] = []
    original = QualityModel.predict_arrays

    def counted(self: QualityModel, *args: object) -> object:
        calls.append(1)
        return original(self, *args)  # pyright: ignore[reportArgumentType]

    monkeypatch.setattr(QualityModel, "predict_arrays", counted)
    policy = UtilityPolicy(lambda: table, candidates={"*": names}, exploration=0.0)
    decision = policy.decide(RouteRequest("openrouter", "m000", task_class="qa"))
    assert decision.chosen == names[-1]
    assert calls == [1]
    short = UtilityPolicy(lambda: table, candidates={"*": names[:3]}, exploration=0.0)
    assert short.decide(RouteRequest("openrouter", "m000", task_class="qa")).chosen == "m002"
    assert calls == [1]  # a short list is ranked in Python
