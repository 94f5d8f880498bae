"""Offline sweep, online replay and decision latency of the AgentMesh router."""

from __future__ import annotations

import gc
import json
import random
import statistics
import time
from collections.abc import Sequence

import numpy as np

from _router.data import GPT4, PairPrompt, Prompt
from _router.metrics import Point
from agentmesh.router.catalog import ModelCatalog
from agentmesh.router.chains import FallbackChains
from agentmesh.router.learned.parse_ahead import parse_ahead
from agentmesh.router.learned.predictor import Example, Outcome, Predictor, train_predictor
from agentmesh.router.learned.quality import QualityModel
from agentmesh.router.request import PromptFeatures, RouteRequest
from agentmesh.router.table import RouteTable, Tradeoff
from agentmesh.router.utility import UtilityPolicy

EMPTY_CATALOG = ModelCatalog([])


def examples(prompts: Sequence[Prompt], models: Sequence[str]) -> list[Example]:
    return [
        Example(p.text, p.task, {m: Outcome(p.correct[m], p.cost[m]) for m in models})
        for p in prompts
    ]


def shipped(predictor: Predictor) -> Predictor:
    """The predictor as an app gets it: through the route table's JSON."""
    table = RouteTable(version=1, predictor=predictor.to_dict())
    return Predictor.from_dict(RouteTable.from_json(table.to_json()).predictor or {})


def lambdas(quick: bool) -> list[float]:
    n = 80 if quick else 240
    return [0.0] + [10 ** (0.5 + 4.0 * i / (n - 1)) for i in range(n)]


class _Table:
    """A mutable holder the policy reads its route table from."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table

    def __call__(self) -> RouteTable:
        return self.table


def _policy(holder: _Table, models: Sequence[str], exploration: float, seed: int) -> UtilityPolicy:
    return UtilityPolicy(
        holder,
        candidates={"*": tuple(models)},
        fallbacks=FallbackChains(catalog=EMPTY_CATALOG),
        catalog=EMPTY_CATALOG,
        exploration=exploration,
        seed=seed,
    )


def _request(p: Prompt) -> RouteRequest:
    return RouteRequest(
        "openrouter",
        GPT4,
        task_class=p.task,
        features=PromptFeatures(1, len(p.text)),
        text=p.text,
        mode="enforce",
    )


def offline_curve(
    predictor: Predictor, test: Sequence[Prompt], models: Sequence[str], lams: Sequence[float]
) -> list[Point]:
    data = predictor.to_dict()
    holder = _Table(RouteTable(version=1, predictor=data))
    policy = _policy(holder, models, 0.0, 0)
    requests = [_request(p) for p in test]
    points: list[Point] = []
    for lam in lams:
        holder.table = RouteTable(version=1, predictor=data, tradeoffs={"*": Tradeoff(lam, 0.0)})
        chosen = [policy.decide(r).chosen for r in requests]
        points.append(_score(test, chosen))
    return points


def task_hindsight_curve(
    test: Sequence[Prompt], models: Sequence[str], lams: Sequence[float]
) -> list[Point]:
    """A reference ceiling: per task class, the model with the best utility on the test labels.

    For each λ, every prompt of a task class goes to the one model whose accuracy minus
    λ·cost over *that task class's test prompts* is best: what a router that knew each task
    class's results in advance, and nothing about single prompts, would do. Not a router (it
    reads the test labels); it shows how far task-level routing can go on this split.
    """
    by_task: dict[str, list[Prompt]] = {}
    for p in test:
        by_task.setdefault(p.task, []).append(p)
    totals = {
        task: {m: (sum(p.correct[m] for p in ps), sum(p.cost[m] for p in ps)) for m in models}
        for task, ps in by_task.items()
    }
    points: list[Point] = []
    n = len(test)
    for lam in lams:
        cost = acc = 0.0
        for per_model in totals.values():
            a, c = max(per_model.values(), key=lambda ac: ac[0] - lam * ac[1])
            cost, acc = cost + c, acc + a
        points.append((cost / n, acc / n))
    return points


def _score(test: Sequence[Prompt], chosen: Sequence[str]) -> Point:
    n = len(test)
    return (
        sum(p.cost[m] for p, m in zip(test, chosen, strict=False)) / n,
        sum(p.correct[m] for p, m in zip(test, chosen, strict=False)) / n,
    )


def knn_curve(
    pred_q: np.ndarray,
    pred_c: np.ndarray,
    test: Sequence[Prompt],
    models: Sequence[str],
    lams: Sequence[float],
) -> list[Point]:
    points: list[Point] = []
    for lam in lams:
        pick = (pred_q - lam * pred_c).argmax(axis=1)
        points.append(_score(test, [models[int(i)] for i in pick]))
    return points


def online_curve(
    base: Predictor,
    test: Sequence[Prompt],
    models: Sequence[str],
    lams: Sequence[float],
    *,
    exploration: float,
    seed: int,
) -> list[Point]:
    """Replay the test stream: decide, reveal only the chosen model's outcome, learn."""
    points: list[Point] = []
    snapshot = base.to_dict()
    for lam in lams:
        holder = _Table(
            RouteTable(version=1, predictor=snapshot, tradeoffs={"*": Tradeoff(lam, 0.0)})
        )
        policy = _policy(holder, models, exploration, seed)
        live = policy.predictor
        assert live is not None
        quality = live.quality  # learns in place: the policy reads this same object
        chosen: list[str] = []
        for p in test:
            request = _request(p)
            decision = policy.decide(request)
            m = decision.chosen
            chosen.append(m)
            quality.update(p.task, decision.cluster or 0, m, p.correct[m], cost_usd=p.cost[m])
        points.append(_score(test, chosen))
    return points


def cold(base: Predictor) -> Predictor:
    """The same clusters and hasher, no outcome: what an app starts with before any log."""
    return Predictor(QualityModel(base.quality.shrinkage), base.hasher, base.clusters)


def routellm_scores(
    train: Sequence[PairPrompt], test: Sequence[PairPrompt], *, clusters: int, seed: int
) -> list[float]:
    predictor = shipped(
        train_predictor(
            [
                Example(p.text, p.task, {"strong": Outcome(p.strong), "weak": Outcome(p.weak)})
                for p in train
            ],
            clusters=clusters,
            seed=seed,
        )
    )
    rng = random.Random(seed)
    out: list[float] = []
    for p in test:
        cluster = predictor.cluster_of(p.text)
        strong, weak = predictor.quality.predict(p.task, cluster, ("strong", "weak"))
        out.append(strong.quality - weak.quality + rng.random() * 1e-9)
    return out


def machine_reference_ns(rounds: int = 7, loops: int = 2000) -> float:
    """Nanoseconds per pass of a fixed pure-Python workload: this machine's speed right now.

    A decision's µs move with the machine (the same code measured 7.7 µs on one day and 12-21
    on another here). The workload is what a decision does in Python: dict reads, float
    arithmetic, a short sort. The best of ``rounds`` medians, so a busy moment weighs little;
    dividing a decision's µs by it compares runs of different days.
    """
    table = {f"model-{i}": (0.5 + i / 100, i * 1e-6, 0.1 * i) for i in range(10)}
    names = list(table)
    clock = time.perf_counter_ns
    medians: list[float] = []
    for _ in range(rounds):
        times: list[int] = []
        for _ in range(loops):
            t0 = clock()
            scored = [(q - 200.0 * c - 0.01 * lat, n) for n in names for q, c, lat in (table[n],)]
            scored.sort(reverse=True)
            times.append(clock() - t0)
        medians.append(statistics.median(times))
    return min(medians)


def decision_latency(
    n_models: int,
    prompts: Sequence[Prompt],
    base: Predictor | None,
    iterations: int,
    changes: int = 5,
) -> dict[str, float]:
    """p50 µs of a full decision (hashing the prompt, cluster, predictions, utility, record).

    With up to 11 models, the trained predictor decides each test prompt in its own task
    class; with more, synthetic models with outcomes in every cluster of task class ``qa``.
    Either way, nearly every decision is scored (not the requested model kept for want of
    outcomes): the share is returned as ``scored_share``.
    """
    rng = random.Random(7)
    texts = [p.text for p in prompts]
    if n_models <= 11 and base is not None:
        predictor = base
        models = tuple(predictor.quality.models())[:n_models]
        tasks = [p.task for p in prompts]
    else:
        tasks = ["qa"] * len(prompts)
        quality = QualityModel()
        models = tuple(f"model-{i:04d}" for i in range(n_models))
        k = base.clusters.k if base is not None and base.clusters is not None else 1
        for m in models:
            for c in range(k):
                for _ in range(3):
                    quality.update(
                        "qa",
                        c,
                        m,
                        rng.random(),
                        cost_usd=rng.random() / 1000,
                        latency_s=rng.random(),
                    )
        predictor = Predictor(
            quality, base.hasher if base else None, base.clusters if base else None
        )
    holder = _Table(
        RouteTable(version=1, predictor=predictor.to_dict(), tradeoffs={"*": Tradeoff(200.0, 0.01)})
    )
    policy = _policy(holder, models, 0.05, 1)
    requests = [
        RouteRequest(
            "openrouter",
            models[0],
            task_class=task,
            features=PromptFeatures(1, len(t)),
            text=t,
            mode="enforce",
        )
        for t, task in zip(texts, tasks, strict=True)
    ]
    scored = sum(
        policy.decide(r).reason.startswith(("best utility", "exploring")) for r in requests
    ) / len(requests)
    timings: list[float] = []
    clock = time.perf_counter_ns
    for i in range(iterations):
        r = requests[i % len(requests)]
        t0 = clock()
        policy.decide(r)
        timings.append((clock() - t0) / 1000)
    # After a table change: the collector publishes new statistics (a new predictor object,
    # parsed ahead by the route table client's thread as in an app, not timed); the decisions
    # right after it rebuild what the policy memoises per task class and cluster.
    raw = holder.table.predictor or {}
    changed: list[float] = []
    first: list[float] = []
    for v in range(changes):
        table = RouteTable(
            version=2 + v, predictor=json.loads(json.dumps(raw)), tradeoffs=holder.table.tradeoffs
        )
        parse_ahead(table)
        gc.collect()  # the parse's garbage is not the decisions' (GC stays on while timed)
        holder.table = table
        for j, r in enumerate(requests[:200]):
            t0 = clock()
            policy.decide(r)
            changed.append((clock() - t0) / 1000)
            if j == 0:
                first.append(changed[-1])
    predictor = policy.predictor or predictor
    clustering: list[float] = []
    if predictor.reads_text:
        for i in range(min(iterations, 5000)):
            t = texts[i % len(texts)]
            t0 = clock()
            predictor.cluster_of(t)
            clustering.append((clock() - t0) / 1000)
    # The same decisions by a predictor without clusters: task classes only, no text read.
    plain = _Table(
        RouteTable(
            version=1,
            predictor=Predictor(predictor.quality).to_dict(),
            tradeoffs={"*": Tradeoff(200.0, 0.01)},
        )
    )
    no_text = _policy(plain, models, 0.05, 1)
    for r in requests[:200]:
        no_text.decide(r)
    plain_timings: list[float] = []
    for i in range(iterations):
        r = requests[i % len(requests)]
        t0 = clock()
        no_text.decide(r)
        plain_timings.append((clock() - t0) / 1000)
    return {
        "p50_us": statistics.median(timings),
        "p99_us": sorted(timings)[int(len(timings) * 0.99) - 1],
        "features_p50_us": statistics.median(clustering) if clustering else 0.0,
        "no_clusters_p50_us": statistics.median(plain_timings),
        "scored_share": scored,
        "changed_first_us": statistics.median(first) if first else 0.0,
        "changed_p99_us": sorted(changed)[int(len(changed) * 0.99) - 1] if changed else 0.0,
        "changed_max_us": max(changed, default=0.0),
    }


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
