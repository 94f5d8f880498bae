"""Router quality and speed on RouterBench and RouteLLM data: ours vs a plain kNN router.

Reads RouterBench wide-format CSVs (every CSV of ``--train`` and ``--test``; columns as in
``../shared/data/routing/routerbench-subset/``: one 0/1 column per model, ``<model>|total_cost``).
Without arguments it uses a fixed-seed split (70/30 per eval name) of the shared subset.

- **Offline**: the router's predictor (``agentmesh.router.learned``: hashed TF-IDF of the
  prompt's tail, spherical k-means clusters, per task class x cluster x model quality and cost
  with shrinkage) is trained on the train folder only, shipped through the route table's JSON
  as an app receives it, and the :class:`~agentmesh.router.utility.UtilityPolicy` decides every
  test prompt for each λ (quality - λ·cost) of a sweep. Reported: the cost-quality curve,
  AIQ (RouterBench: mean accuracy of the non-decreasing convex hull over the single models'
  cost range), and the share of gpt-4-1106-preview's accuracy reached at 20% of its cost, both
  by a setting actually run (the headline) and on the hull (mixing two settings).
- **Peer**: kNN (k=40) over TF-IDF unigrams and bigrams, predicting each model's correctness
  and cost as its neighbours' mean, same sweep, same split, same run.
- **Online**: the test stream replayed in order; only the chosen model's outcome is revealed
  and learned from (5% exploration). ``cold``: clusters from the train text but no outcome
  (the app asks for gpt-4 until outcomes arrive); ``warm``: starting from the trained predictor.
- **RouteLLM** (``../shared/data/routing/routellm/``; strong gpt-4-1106-preview, weak
  Mixtral-8x7B): fixed-seed 50/50 split of MMLU (task class = subject) and GSM8K; the score of
  a prompt is the predicted quality gap strong - weak; APGR, CPT(50%), CPT(80%). RouteLLM's
  routers were trained on other data (Chatbot Arena preferences): ours is trained in-domain,
  which is how AgentMesh learns (from the app's own outcomes); compare with that in mind.
- **Latency**: p50 of a full decision (hash the prompt's tail, find its cluster, predict,
  score, build the decision) with 10 and 1,000 candidate models.

Run: ``uv run python bench/router_eval.py [--train DIR --test DIR] [--quick]``. The last line is
JSON (keys in the README's bench table).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _router import evaluate as ev
from _router.data import GPT4, read_routellm, read_routerbench, split
from _router.knn import KnnRouter
from _router.metrics import aiq, apgr, best_within, cpt, hull_at, pgr_curve
from rich.console import Console
from rich.table import Table

from agentmesh.router.learned.hashing import DEFAULT_TAIL_CHARS
from agentmesh.router.learned.predictor import train_predictor

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing"
GOAL_SHARE, GOAL_AIQ, GOAL_US_10, GOAL_US_1000 = 0.97, 0.90, 10.0, 1000.0


HINDSIGHT = "task-class hindsight (reference)"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--train", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument(
        "--routellm",
        type=Path,
        default=DATA / "routellm",
        help="RouteLLM's data (mmlu/*.csv, gsm8k_responses.csv)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer λ, smaller samples (< 60 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clusters", type=int, default=32)
    parser.add_argument(
        "--tail", type=int, default=DEFAULT_TAIL_CHARS, help="characters read from a prompt's end"
    )
    args = parser.parse_args()
    console = Console()
    started = time.perf_counter()
    if (args.train is None) != (args.test is None):
        raise SystemExit("give both --train and --test, or neither")
    if args.train is None:
        if not (DATA / "routerbench-subset").is_dir():
            raise SystemExit(
                f"no RouterBench data at {DATA / 'routerbench-subset'}: give --train DIR --test DIR"
            )
        prompts, models, dropped = read_routerbench(DATA / "routerbench-subset")
        train, test = split(prompts, args.seed)
        source = f"fixed-seed split (seed {args.seed}) of routerbench-subset"
    else:
        train, models, d1 = read_routerbench(args.train)
        test, test_models, d2 = read_routerbench(args.test)
        if set(test_models) != set(models):
            raise SystemExit("train and test folders have different model columns")
        dropped = d1 + d2
        source = f"train {args.train}, test {args.test}"
    console.print(
        f"{source}: {len(train)} train / {len(test)} test prompts, {len(models)} models, "
        f"{dropped} incomplete rows dropped"
    )
    pairs = read_routellm(args.routellm)
    if not pairs:
        raise SystemExit(
            f"no RouteLLM data (mmlu/*.csv, gsm8k_responses.csv) at {args.routellm}: "
            "give --routellm DIR"
        )
    lams = ev.lambdas(args.quick)

    trained = train_predictor(
        ev.examples(train, models), clusters=args.clusters, seed=args.seed, tail_chars=args.tail
    )
    predictor = ev.shipped(trained)
    ours = ev.offline_curve(predictor, test, models, lams)
    knn = KnnRouter(train, models)
    kq, kc = knn.predict(test)
    peer = ev.knn_curve(kq, kc, test, models, lams)
    singles = [
        (sum(p.cost[m] for p in test) / len(test), sum(p.correct[m] for p in test) / len(test))
        for m in models
    ]
    g_cost, g_acc = singles[models.index(GPT4)]
    c_min, c_max = min(c for c, _ in singles), max(c for c, _ in singles)
    budget = 0.2 * g_cost
    online_lams = lams[:: (6 if args.quick else 3)]
    online_cold = ev.online_curve(
        ev.cold(predictor), test, models, online_lams, exploration=0.05, seed=args.seed
    )
    online_warm = ev.online_curve(
        predictor, test, models, online_lams, exploration=0.05, seed=args.seed
    )

    rows = {
        "best single models": singles,
        "kNN TF-IDF (peer)": peer,
        "AgentMesh offline": ours,
        "AgentMesh online, cold": online_cold,
        "AgentMesh online, warm": online_warm,
        HINDSIGHT: ev.task_hindsight_curve(test, models, lams),
    }
    t = Table(
        title=f"RouterBench: accuracy vs cost on {len(test)} held-out prompts "
        f"(gpt-4: {g_acc:.3f} at ${g_cost * 1000:.3f} per 1k prompts)"
    )
    for col in (
        "router",
        "AIQ",
        "share of gpt-4 @20% cost (run)",
        "… on hull",
        "accuracy @20%",
        "cost ratio of that setting",
    ):
        t.add_column(col, justify="right" if col != "router" else "left")
    figures: dict[str, dict[str, float]] = {}
    for name, pts in rows.items():
        best = best_within(pts, budget)
        setting = max((p for p in pts if p[0] <= budget), key=lambda p: p[1], default=(0.0, 0.0))
        figures[name] = {
            "aiq": aiq(pts, c_min, c_max),
            "share": best / g_acc,
            "hull_share": hull_at(pts, budget) / g_acc,
        }
        t.add_row(
            name,
            f"{figures[name]['aiq']:.4f}",
            f"{best / g_acc:.4f}",
            f"{figures[name]['hull_share']:.4f}",
            f"{best:.4f}",
            f"{setting[0] / g_cost:.3f}",
        )
    console.print(t)

    curve = Table(title="AgentMesh offline curve (selected λ, USD⁻¹)")
    for col in ("λ", "cost / gpt-4 cost", "accuracy", "share of gpt-4 accuracy"):
        curve.add_column(col, justify="right")
    for lam, (c, a) in list(zip(lams, ours, strict=False))[:: max(1, len(lams) // 12)]:
        curve.add_row(f"{lam:,.0f}", f"{c / g_cost:.3f}", f"{a:.4f}", f"{a / g_acc:.4f}")
    console.print(curve)

    routellm: dict[str, dict[str, float]] = {}
    rt = Table(
        title="RouteLLM metrics (strong gpt-4-1106-preview, weak Mixtral-8x7B; held-out half)"
    )
    for col in ("data set", "test prompts", "APGR", "CPT(50%)", "CPT(80%)", "random APGR"):
        rt.add_column(col, justify="right" if col != "data set" else "left")
    import random as _random

    for name, items in pairs.items():
        items = items[:]
        _random.Random(args.seed).shuffle(items)
        if args.quick:
            items = items[:4000]
        half = len(items) // 2
        tr, te = items[:half], items[half:]
        scores = ev.routellm_scores(tr, te, clusters=args.clusters, seed=args.seed)
        curve_pgr = pgr_curve(scores, [p.strong for p in te], [p.weak for p in te])
        rnd = _random.Random(1)
        random_curve = pgr_curve(
            [rnd.random() for _ in te], [p.strong for p in te], [p.weak for p in te]
        )
        routellm[name] = {
            "apgr": apgr(curve_pgr),
            "cpt50": cpt(curve_pgr, 0.5),
            "cpt80": cpt(curve_pgr, 0.8),
        }
        rt.add_row(
            name,
            f"{len(te):,}",
            f"{routellm[name]['apgr']:.4f}",
            f"{routellm[name]['cpt50']:.1%}",
            f"{routellm[name]['cpt80']:.1%}",
            f"{apgr(random_curve):.4f}",
        )
    console.print(rt)

    iterations = 3000 if args.quick else 20000
    reference_ns = ev.machine_reference_ns()
    lat = {
        str(n): ev.decision_latency(n, test, predictor, iterations if n <= 10 else iterations // 10)
        for n in (10, 1000)
    }
    lt = Table(
        title="Decision latency, µs (full decision: hash the prompt tail, cluster, predict, score)"
    )
    cols = (
        "candidates", "p50", "p99", "hashing + cluster (p50)", "no clusters p50", "scored",
        "after a table change: first (median)", "p99", "max",
    )  # fmt: skip
    for col in (*cols, "goal"):
        lt.add_column(col, justify="right")
    for n, goal in (("10", GOAL_US_10), ("1000", GOAL_US_1000)):
        lt.add_row(
            n,
            f"{lat[n]['p50_us']:.1f}",
            f"{lat[n]['p99_us']:.1f}",
            f"{lat[n]['features_p50_us']:.1f}",
            f"{lat[n]['no_clusters_p50_us']:.1f}",
            f"{lat[n]['scored_share']:.0%}",
            f"{lat[n]['changed_first_us']:,.0f}",
            f"{lat[n]['changed_p99_us']:,.0f}",
            f"{lat[n]['changed_max_us']:,.0f}",
            f"< {goal:g}",
        )
    console.print(lt)
    console.print(
        f"machine reference: {reference_ns:,.0f} ns per pass of a fixed Python workload "
        "(scores and sorts 10 models); the µs above move with it from day to day",
        style="dim",
    )

    ours_f, peer_f = figures["AgentMesh offline"], figures["kNN TF-IDF (peer)"]
    goals = [
        (
            f"≥ {GOAL_SHARE:.0%} of gpt-4's accuracy at ≤ 20% of its cost",
            ours_f["share"] >= GOAL_SHARE,
            f"{ours_f['share']:.4f}",
        ),
        (f"AIQ ≥ {GOAL_AIQ}", ours_f["aiq"] >= GOAL_AIQ, f"{ours_f['aiq']:.4f}"),
        (
            "beats kNN TF-IDF at 20% cost",
            ours_f["share"] > peer_f["share"],
            f"{ours_f['share']:.4f} vs {peer_f['share']:.4f}",
        ),
        (
            f"decision < {GOAL_US_10:g} µs with 10 models",
            lat["10"]["p50_us"] < GOAL_US_10,
            f"{lat['10']['p50_us']:.1f} µs",
        ),
        (
            f"decision < {GOAL_US_1000:g} µs with 1,000 models",
            lat["1000"]["p50_us"] < GOAL_US_1000,
            f"{lat['1000']['p50_us']:.1f} µs",
        ),
    ]
    for text, met, value in goals:
        console.print(f"{'MET    ' if met else 'NOT MET'} {text}: {value}")
    console.print(f"elapsed {time.perf_counter() - started:.1f} s", style="dim")
    print(
        ev.dumps(
            {
                "aiq": round(ours_f["aiq"], 4),
                "gpt4_accuracy_share_at_20pct_cost": round(ours_f["share"], 4),
                "gpt4_accuracy_share_at_20pct_cost_hull": round(ours_f["hull_share"], 4),
                "online_gpt4_accuracy_share_at_20pct_cost": round(
                    figures["AgentMesh online, cold"]["share"], 4
                ),
                "online_warm_gpt4_accuracy_share_at_20pct_cost": round(
                    figures["AgentMesh online, warm"]["share"], 4
                ),
                "knn_tfidf": {
                    "aiq": round(peer_f["aiq"], 4),
                    "gpt4_accuracy_share_at_20pct_cost": round(peer_f["share"], 4),
                },
                "single_models_aiq": round(figures["best single models"]["aiq"], 4),
                "task_hindsight": {
                    "aiq": round(figures[HINDSIGHT]["aiq"], 4),
                    "gpt4_accuracy_share_at_20pct_cost": round(figures[HINDSIGHT]["share"], 4),
                },
                "routellm": {
                    k: {m: round(v, 4) for m, v in d.items()} for k, d in routellm.items()
                },
                "decision_p50_us": {n: round(lat[n]["p50_us"], 2) for n in lat},
                "machine_reference_ns": round(reference_ns, 1),
                "decision_no_clusters_p50_us": {
                    n: round(lat[n]["no_clusters_p50_us"], 2) for n in lat
                },
                "decision_scored_share": {n: round(lat[n]["scored_share"], 4) for n in lat},
                "decision_after_table_change_us": {
                    n: {
                        "first": round(lat[n]["changed_first_us"], 1),
                        "p99": round(lat[n]["changed_p99_us"], 1),
                        "max": round(lat[n]["changed_max_us"], 1),
                    }
                    for n in lat
                },
                "test_prompts": len(test),
            }
        )
    )


if __name__ == "__main__":
    main()
