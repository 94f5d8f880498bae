"""The learned router: hashing, clusters, quality model, predictor and utility policy."""

from __future__ import annotations

import json
import re
import zlib

import pytest

from agentmesh.core import semconv
from agentmesh.router import utility as utility_module
from agentmesh.router.chains import FallbackChains
from agentmesh.router.learned import quality as quality_module
from agentmesh.router.learned.clusters import Clusters
from agentmesh.router.learned.hashing import TextHasher
from agentmesh.router.learned.predictor import Example, Outcome, Predictor, train_predictor
from agentmesh.router.learned.quality import QualityModel, Shrinkage
from agentmesh.router.policy import PassThroughPolicy
from agentmesh.router.request import PromptFeatures, RouteRequest, prompt_text
from agentmesh.router.table import RouteTable, Tradeoff
from agentmesh.router.utility import UtilityPolicy

MATH = ["add the numbers 2 and 3", "add the numbers 7 and 8", "add numbers 4 and 9", "add 12, 30"]
POEMS = ["write a poem about rain", "write a poem about the sea", "write a short poem on autumn"]


def _examples() -> list[Example]:
    out: list[Example] = []
    for text in MATH * 5:
        out.append(Example(text, "qa", {"small": Outcome(1.0, 0.001), "big": Outcome(1.0, 0.01)}))
    for text in POEMS * 5:
        out.append(Example(text, "qa", {"small": Outcome(0.0, 0.001), "big": Outcome(1.0, 0.01)}))
    return out


def test_hashing_is_stable_and_ignores_punctuation_and_case() -> None:
    hasher = TextHasher(dim=1024)
    assert hasher.buckets("Hello, World!") == hasher.buckets("hello world")
    assert TextHasher(dim=1024).buckets("hello") == hasher.buckets("hello")  # no hash() seed
    vector = hasher.vector("rain rain go away")
    assert len(vector.indices) == 3
    assert sum(w * w for w in vector.weights) == pytest.approx(1.0)
    assert not hasher.vector("!!!")


def test_hashing_splits_ascii_and_unicode_text_into_the_same_words() -> None:
    hasher = TextHasher(dim=1024)

    def crc(*words: str) -> list[int]:
        return [zlib.crc32(w.encode()) & 1023 for w in words]

    # ASCII text is split as bytes: case folded, punctuation and control characters blank.
    words = crc("hello", "world", "foo", "bar", "42")
    assert hasher.buckets("Hello, WORLD\x1ffoo_bar\t42!") == words
    # Other text is split as str: Unicode case and whitespace; words hashed as UTF-8.
    assert hasher.buckets("Héllo WORLD\u3000Ünïcode") == crc("héllo", "world", "ünïcode")
    # Malformed text (a lone surrogate) is hashed, not raised on.
    assert len(hasher.buckets("bad \ud800 text")) == 3
    # A word reads the same whichever path its text took (the cache is shared).
    assert hasher.buckets("world") == hasher.buckets("wörld world")[1:]


def test_hashing_reads_only_the_tail() -> None:
    hasher = TextHasher(dim=1024, tail_chars=10)
    assert hasher.buckets("beginning " * 50 + "final question") == hasher.buckets("question")


def test_hasher_rejects_bad_dimensions() -> None:
    with pytest.raises(ValueError, match="power of two"):
        TextHasher(dim=1000)
    with pytest.raises(ValueError, match="idf"):
        TextHasher(dim=8, idf=[1.0])


def test_clusters_separate_topics_and_survive_their_sparse_form() -> None:
    hasher = TextHasher(dim=1024)
    vectors = [hasher.vector(t) for t in MATH + POEMS]
    clusters = Clusters.fit(vectors, k=2, dim=1024, seed=3)
    labels = clusters.assign_many(vectors)
    assert len(set(labels[: len(MATH)])) == 1
    assert len(set(labels[len(MATH) :])) == 1
    assert labels[0] != labels[-1]
    again = Clusters.from_dict(json.loads(json.dumps(clusters.to_dict())))
    assert again.assign_many(vectors) == labels
    again.bind(None)
    assert [again.assign_buckets(hasher.buckets(t)) for t in MATH + POEMS] == labels
    assert again.assign_buckets([]) == 0


def test_clusters_reject_malformed_dicts() -> None:
    with pytest.raises(ValueError, match="dim"):
        Clusters.from_dict({"dim": 0, "centroids": [[]]})
    with pytest.raises(ValueError, match="outside"):
        Clusters.from_dict({"dim": 4, "centroids": [[[9, 1.0]]]})
    with pytest.raises(ValueError, match="not a list"):
        Clusters.from_dict({"dim": 4, "centroids": ["x"]})


def test_quality_model_shrinks_sparse_cells_towards_the_task_class() -> None:
    model = QualityModel(Shrinkage(prior=0.5, model=2, task=5, cell=10))
    for _ in range(50):
        model.update("qa", 0, "m", 1.0)
    model.update("qa", 1, "m", 0.0)  # one bad outcome in cluster 1
    (cell1,) = model.predict("qa", 1, ("m",))
    (cell0,) = model.predict("qa", 0, ("m",))
    assert 0.85 < cell1.quality < cell0.quality <= 1.0
    (unknown,) = model.predict("qa", 0, ("never-seen",))
    assert unknown.quality == pytest.approx(0.5)
    assert unknown.evidence == 0
    assert cell0.evidence == 51


def test_quality_model_learns_costs_latencies_and_late_corrections() -> None:
    model = QualityModel()
    model.update("qa", 0, "m", 1.0, cost_usd=0.002, latency_s=1.0)
    model.update("qa", 0, "m", 1.0, cost_usd=0.004, latency_s=3.0)
    (p,) = model.predict("qa", 0, ("m",))
    assert (p.cost_usd, p.latency_s) == (pytest.approx(0.003), pytest.approx(2.0))
    model.adjust("qa", 0, "m", -2.0)  # both outcomes were in fact bad
    (after,) = model.predict("qa", 0, ("m",))
    assert after.quality < p.quality
    model.adjust("qa", 0, "m", -5.0)  # bounded: sums never go below zero
    assert model.to_dict()["models"]["m"][0] == 0.0


def test_quality_model_predictions_made_ahead_match_and_follow_updates() -> None:
    def filled() -> QualityModel:
        model = QualityModel(priors={"b": 0.7})
        for i in range(30):
            model.update("qa", i % 3, "a", (i % 4) / 3, cost_usd=0.001 * i, latency_s=0.1 * i)
            model.update("chat", i % 2, "b", 1.0 if i % 5 else 0.0, cost_usd=0.01)
        return model

    cold, warm = filled(), filled()
    assert warm.warm() == 5 * 2  # (qa, 0..2) and (chat, 0..1), two models each
    assert filled().warm(limit=9) == 0  # over the limit: made on first use instead
    for task, cluster in (("qa", 0), ("qa", 2), ("chat", 1), ("chat", 7), (None, 0)):
        models = ("a", "b", "never-seen")
        assert warm.predict(task, cluster, models) == cold.predict(task, cluster, models)
    many = QualityModel()
    for i in range(40):
        many.update("qa", 0, f"m{i}", 0.5)
    many.predict("qa", 0, ("m1", "m2"))  # a few among many: only those are predicted
    assert many._held == 2  # pyright: ignore[reportPrivateUsage]
    (before,) = warm.predict("qa", 1, ("a",))
    for _ in range(20):
        warm.update("qa", 1, "a", 0.0)  # what was made ahead is dropped on update
    (after,) = warm.predict("qa", 1, ("a",))
    assert after.quality < before.quality
    assert after.evidence == before.evidence + 20


def test_quality_model_memos_are_bounded_by_the_predictions_they_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(quality_module, "_MAX_HELD", 10)
    model, fresh = QualityModel(), QualityModel()
    for m in ("a", "b", "c"):
        for target in (model, fresh):
            target.update("qa", 0, m, 0.5, cost_usd=0.01)
    for cluster in range(8):  # 3 predictions per cell and per candidate list: forgets often
        for candidates in (("a", "b"), ("c",), ("a", "b", "c", "d")):
            got = model.predict("qa", cluster, candidates)
            assert got == fresh.predict("qa", cluster, candidates)
            assert model._held <= 10  # pyright: ignore[reportPrivateUsage]


def test_quality_model_round_trips_and_rejects_bad_dicts() -> None:
    model = QualityModel(priors={"m": 0.7})
    model.update("qa", 3, "m", 0.5, cost_usd=0.1)
    again = QualityModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.predict("qa", 3, ("m",)) == model.predict("qa", 3, ("m",))
    with pytest.raises(ValueError, match="sums must be non-negative"):
        QualityModel.from_dict({"models": {"m": [-1, 1, 0, 0, 0, 0]}})
    with pytest.raises(ValueError, match="exceeds"):
        QualityModel.from_dict({"models": {"m": [5, 1, 0, 0, 0, 0]}})
    with pytest.raises(ValueError, match="cluster"):
        QualityModel.from_dict({"cells": {"qa": {"x": {}}}})
    with pytest.raises(ValueError, match=r"shrinkage\.cell"):
        QualityModel.from_dict({"shrinkage": {"cell": -1}})


@pytest.mark.parametrize(
    ("sums", "message"),
    [
        ([1, 2, 0, 0, 0], "expected"),
        ("1,2,0,0,0,0", "expected"),
        ([3.0, 2, 0, 0, 0, 0], "exceeds"),
        ([1, 2, 0, 0, -0.5, 0], "non-negative"),
        ([float("nan"), 2, 0, 0, 0, 0], "non-negative"),
        ([1, 2, float("nan"), 0, 0, 0], "non-negative"),
        (["1", 2, 0, 0, 0, 0], "non-negative"),
        ([1, 2, None, 0, 0, 0], "non-negative"),
    ],
)
def test_quality_model_refuses_bad_sums_at_every_level_naming_where(
    sums: object, message: str
) -> None:
    for raw, where in (
        ({"models": {"m": sums}}, "models.m"),
        ({"tasks": {"qa": {"m": sums}}}, "tasks.qa.m"),
        ({"cells": {"qa": {"0": {"m": sums}}}}, "cells.qa.0.m"),
    ):
        with pytest.raises(ValueError, match=rf"^{re.escape(where)}: .*{message}"):
            QualityModel.from_dict(raw)


def test_quality_model_reads_what_it_wrote_and_booleans_as_before() -> None:
    model = QualityModel()
    for i in range(300):
        model.update(f"t{i % 3}", i % 7, f"m{i % 40}", (i % 5) / 4, cost_usd=i / 1e4 or None)
    raw = json.loads(json.dumps(model.to_dict()))
    assert QualityModel.from_dict(raw).to_dict() == raw
    loaded = QualityModel.from_dict({"models": {"m": [True, 1, 0, 0, 0.5, True]}})
    assert loaded.to_dict()["models"]["m"] == [1.0, 1, 0.0, 0, 0.5, 1]


def test_trained_predictor_tells_easy_prompts_from_hard_ones_after_the_round_trip() -> None:
    trained = train_predictor(_examples(), clusters=2, dim=1024, seed=1)
    table = RouteTable(version=1, predictor=trained.to_dict())
    shipped = Predictor.from_dict(RouteTable.from_json(table.to_json()).predictor or {})
    easy = shipped.cluster_of("add the numbers 5 and 6")
    hard = shipped.cluster_of("write a poem about snow")
    assert easy != hard
    small_easy, _ = shipped.quality.predict("qa", easy, ("small", "big"))
    small_hard, _ = shipped.quality.predict("qa", hard, ("small", "big"))
    assert small_easy.quality > 0.8 > 0.3 > small_hard.quality


def test_predictor_without_clusters_reads_no_text() -> None:
    predictor = train_predictor(_examples(), clusters=0)
    assert not predictor.reads_text
    assert predictor.cluster_of("anything") == 0
    assert "clusters" not in predictor.to_dict()
    with pytest.raises(ValueError, match="format"):
        Predictor.from_dict({"format": "other"})
    with pytest.raises(ValueError, match="at least one"):
        train_predictor([])


def _policy(table: RouteTable, **kwargs: object) -> UtilityPolicy:
    return UtilityPolicy(
        lambda: table,
        candidates={"*": ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5")},
        exploration=0.0,
        **kwargs,  # pyright: ignore[reportArgumentType]
    )


def _trained_table(lam: float = 0.0) -> RouteTable:
    q = QualityModel()
    for _ in range(40):
        q.update("chat", 0, "gpt-4o", 0.95, cost_usd=0.004, latency_s=2.0)
        q.update("chat", 0, "gpt-4o-mini", 0.90, cost_usd=0.0003, latency_s=0.8)
    return RouteTable(
        version=9, predictor=Predictor(q).to_dict(), tradeoffs={"*": Tradeoff(cost_weight=lam)}
    )


def _request(**kwargs: object) -> RouteRequest:
    return RouteRequest("openai", "gpt-4o", task_class="chat", **kwargs)  # pyright: ignore[reportArgumentType]


def test_utility_policy_trades_quality_for_cost_by_lambda() -> None:
    assert _policy(_trained_table(0.0)).decide(_request()).chosen == "gpt-4o"
    decision = _policy(_trained_table(50.0)).decide(_request())
    assert decision.chosen == "gpt-4o-mini"
    assert decision.candidates[:2] == ("gpt-4o-mini", "gpt-4o")
    assert decision.scores[0] > decision.scores[1]
    assert decision.table_version == 9
    assert decision.policy == "utility"
    assert "best utility" in decision.reason
    attributes = decision.span_attributes()
    assert attributes[semconv.AGENTMESH_ROUTE_TABLE_VERSION] == 9
    assert '"cluster":0' in str(attributes[semconv.AGENTMESH_ROUTE_FEATURES])


def test_utility_policy_never_picks_an_unseen_model_greedily_and_keeps_the_request_cold() -> None:
    decision = _policy(RouteTable()).decide(_request())
    assert (decision.chosen, decision.reason, decision.policy) == (
        "gpt-4o",
        "requested model",
        "pass_through",
    )
    empty = RouteTable(version=1, predictor=Predictor(QualityModel()).to_dict())
    assert "no outcomes yet" in _policy(empty).decide(_request()).reason
    # claude has no outcome in "chat": it is never chosen greedily even with a huge λ.
    assert _policy(_trained_table(1e6)).decide(_request()).chosen == "gpt-4o-mini"


def test_a_budget_holds_for_a_long_prompt_not_only_for_the_mean_call() -> None:
    # gpt-4o's learned mean is $0.004 a call, under a $0.005 budget; a 3,000-token prompt
    # costs it about $0.01 by the catalog: it is over budget, gpt-4o-mini fits.
    long_prompt = PromptFeatures(message_count=1, total_chars=12_000)
    short = _policy(_trained_table(0.0)).decide(_request(budget_usd=0.005))
    assert short.chosen == "gpt-4o"
    decision = _policy(_trained_table(0.0)).decide(_request(budget_usd=0.005, features=long_prompt))
    assert decision.chosen == "gpt-4o-mini"
    many = ("gpt-4o", "gpt-4o-mini", *(f"m-{i}" for i in range(70)))  # the numpy ranking
    wide = UtilityPolicy(lambda: _trained_table(0.0), candidates={"*": many}, exploration=0.0)
    assert wide.decide(_request(budget_usd=0.005, features=long_prompt)).chosen == "gpt-4o-mini"


def test_a_budget_holds_before_anything_is_learned_and_without_learning() -> None:
    long_prompt = PromptFeatures(message_count=1, total_chars=12_000)
    cold = _policy(RouteTable()).decide(_request(budget_usd=0.002, features=long_prompt))
    assert cold.chosen == "gpt-4o-mini"
    assert cold.reason.startswith("within the budget of $0.002 (gpt-4o would cost $0.01006)")
    assert _policy(RouteTable()).decide(_request(features=long_prompt)).chosen == "gpt-4o"
    chains = FallbackChains({"gpt-4o": ["gpt-4o-mini"]})
    plain = PassThroughPolicy(chains).decide(_request(budget_usd=0.002, features=long_prompt))
    assert (plain.chosen, plain.candidates) == ("gpt-4o-mini", ("gpt-4o-mini", "gpt-4o"))
    nothing = PassThroughPolicy(chains).decide(_request(budget_usd=1e-6, features=long_prompt))
    assert nothing.chosen == "gpt-4o"
    assert "no candidate within the budget of $1e-06" in nothing.reason


def test_utility_policy_honours_circuits_budgets_and_capabilities() -> None:
    table = _trained_table(50.0)
    assert (
        _policy(table).decide(_request(open_circuits=frozenset({"gpt-4o-mini"}))).chosen == "gpt-4o"
    )
    assert _policy(_trained_table(0.0)).decide(_request(budget_usd=0.001)).chosen == "gpt-4o-mini"
    too_long = PromptFeatures(message_count=1, total_chars=4 * 300_000)
    decision = _policy(table).decide(_request(features=too_long))
    assert decision.chosen == "gpt-4o"  # nothing fits a 128k window: the request stands
    assert decision.reason.startswith("requested model")
    vision = PromptFeatures(message_count=1, total_chars=10, has_images=True)
    catalog_models = set(_policy(table).decide(_request(features=vision)).candidates)
    assert "gpt-4o-mini" in catalog_models  # it has vision in the catalog


def test_utility_policy_names_the_candidates_it_left_out_for_an_open_circuit() -> None:
    table = _trained_table(0.0)  # gpt-4o is the best, then gpt-4o-mini
    shut = _policy(table).decide(_request(open_circuits=frozenset({"gpt-4o", "o3"})))
    assert shut.chosen == "gpt-4o-mini"
    assert shut.reason.startswith("best utility 0.")
    assert shut.reason.endswith("; circuit open for gpt-4o")  # o3 is no candidate
    assert "circuit open" not in _policy(table).decide(_request()).reason
    # exploring names them too; at most three, best first, the others counted
    many = ("gpt-4o", "gpt-4o-mini", "m-1", "m-2", "m-3", "m-4")
    explorer = UtilityPolicy(lambda: table, candidates={"*": many}, exploration=1.0, seed=1)
    blocked = frozenset({"gpt-4o", "m-1", "m-2", "m-3"})
    ask = RouteRequest("openrouter", "gpt-4o", task_class="chat", open_circuits=blocked)
    explored = explorer.decide(ask)
    assert explored.reason.startswith(f"exploring {explored.chosen} (0 outcomes")
    assert explored.reason.endswith("; circuit open for gpt-4o, m-3, m-2; 1 more skipped")
    wide = (*many, *(f"n-{i}" for i in range(70)))  # the numpy ranking says the same
    vector = UtilityPolicy(lambda: table, candidates={"*": wide}, exploration=0.0)
    decision = vector.decide(RouteRequest("openrouter", "gpt-4o", "chat", open_circuits=blocked))
    assert decision.chosen == "gpt-4o-mini"
    assert decision.reason.endswith("; circuit open for gpt-4o, m-3, m-2; 1 more skipped")


def test_utility_policy_explores_within_bounds_and_reproducibly() -> None:
    table = _trained_table(50.0)
    policy = UtilityPolicy(
        lambda: table,
        candidates={"*": ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5")},
        exploration=0.2,
        seed=5,
    )
    ask = RouteRequest("openrouter", "gpt-4o", task_class="chat")  # reaches every vendor
    chosen = [policy.decide(ask).chosen for _ in range(500)]
    explored = chosen.count("claude-sonnet-4-5")  # the one with no outcome
    assert 60 < explored < 140
    again = UtilityPolicy(
        lambda: table,
        candidates={"*": ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5")},
        exploration=0.2,
        seed=5,
    )
    assert [again.decide(ask).chosen for _ in range(500)] == chosen
    assert _policy(table).decide(_request()).chosen != "claude-sonnet-4-5"  # openai SDK
    blocked = RouteRequest(
        "openrouter", "gpt-4o", task_class="chat", open_circuits=frozenset({"claude-sonnet-4-5"})
    )
    assert all(policy.decide(blocked).chosen != "claude-sonnet-4-5" for _ in range(200))
    # one feasible candidate (the others cooling down): it is chosen, not "explored"
    alone = RouteRequest(
        "openrouter",
        "gpt-4o",
        task_class="chat",
        open_circuits=frozenset({"claude-sonnet-4-5", "gpt-4o-mini"}),
    )
    reasons = {policy.decide(alone).reason for _ in range(200)}
    assert not any(reason.startswith("exploring") for reason in reasons), reasons
    with pytest.raises(ValueError, match="exploration"):
        UtilityPolicy(lambda: table, exploration=1.5)


def test_utility_policy_orders_equal_utilities_by_name_and_records_the_best_after_a_pick() -> None:
    quality = QualityModel()
    names = ("m-a", "m-c", "m-b", "m-e", "m-d")
    for name in names:  # the same record for all: equal utilities
        for _ in range(5):
            quality.update("qa", 0, name, 0.8, cost_usd=0.001, latency_s=0.5)
    for _ in range(5):
        quality.update("qa", 0, "m-best", 0.95, cost_usd=0.001, latency_s=0.5)
    table = RouteTable(version=1, predictor=Predictor(quality).to_dict())
    candidates = (*names, "m-best", "m-new")  # m-new: no outcome, what exploration tries
    greedy = UtilityPolicy(lambda: table, candidates={"*": candidates}, exploration=0.0)
    decision = greedy.decide(RouteRequest("openrouter", "m-a", task_class="qa"))
    assert decision.chosen == "m-best"
    # Ties by name, descending; the unseen model's prior (0.5) puts it last.
    assert decision.candidates == ("m-best", "m-e", "m-d", "m-c", "m-b", "m-a", "m-new")
    assert decision.scores[1:6] == (decision.scores[1],) * 5
    explorer = UtilityPolicy(lambda: table, candidates={"*": candidates}, exploration=1.0)
    explored = explorer.decide(RouteRequest("openrouter", "m-a", task_class="qa"))
    assert explored.chosen == "m-new"
    assert explored.reason == "exploring m-new (0 outcomes in this task class)"
    assert explored.candidates == ("m-new", "m-best", "m-e", "m-d", "m-c", "m-b", "m-a")
    over_budget = RouteRequest(
        "openrouter", "m-a", task_class="qa", budget_usd=0.0005, open_circuits=frozenset({"m-e"})
    )  # every model with a recorded cost is over budget; m-new's cost is unknown
    assert explorer.decide(over_budget).candidates == ("m-new",)


def test_utility_policy_starts_its_memo_over_when_full_and_decides_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = _trained_table(0.0)
    budgets = (None, 1.0, 0.001, 2.0, 0.5)  # each budget is a ranking of its own
    expected = [_policy(table).decide(_request(budget_usd=b)).chosen for b in budgets]
    monkeypatch.setattr(utility_module, "_MAX_CACHED", 2)
    policy = _policy(table)
    for _ in range(3):
        assert [policy.decide(_request(budget_usd=b)).chosen for b in budgets] == expected
    assert expected[2] == "gpt-4o-mini"  # gpt-4o is over a $0.001 budget
    broke = policy.decide(_request(budget_usd=0.00001))  # every candidate is over it
    assert (broke.chosen, broke.reason) == (
        "gpt-4o",
        "requested model: no candidate within budget and circuits",
    )


def test_utility_policy_defaults_to_the_fallback_chain_and_survives_a_bad_predictor() -> None:
    chains = FallbackChains({"gpt-4o": ["gpt-4o-mini"]})
    policy = UtilityPolicy(lambda: _trained_table(50.0), fallbacks=chains, exploration=0.0)
    assert policy.decide(_request()).chosen == "gpt-4o-mini"
    broken = RouteTable(
        version=2, predictor={"format": "agentmesh.cluster-quality/1", "quality": 3}
    )
    bad = UtilityPolicy(lambda: broken, fallbacks=chains, exploration=0.0)
    assert bad.predictor is None
    assert bad.decide(_request()).chosen == "gpt-4o"


def test_utility_policy_reads_text_only_with_clusters() -> None:
    trained = train_predictor(_examples(), clusters=2, dim=1024, seed=1)
    table = RouteTable(version=4, predictor=trained.to_dict(), tradeoffs={"*": Tradeoff(60.0)})
    policy = UtilityPolicy(lambda: table, candidates={"*": ("small", "big")}, exploration=0.0)
    assert policy.needs_text

    def ask(text: str) -> str:
        return policy.decide(RouteRequest("openrouter", "big", task_class="qa", text=text)).chosen

    assert ask("add the numbers 40 and 2") == "small"
    assert ask("write a poem about the moon") == "big"
    assert not _policy(_trained_table()).needs_text


def test_prompt_text_takes_the_last_user_message_tail() -> None:
    kwargs = {
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "x" * 500 + "end"}]},
        ]
    }
    text = prompt_text(kwargs, tail_chars=10)
    assert text == "xxxxxxxend"
    assert prompt_text({"input": "hello"}) == "hello"
    assert prompt_text({"messages": 3}) == ""
