"""Smoke test of ``bench/router_eval.py --quick`` on small synthetic data in its input formats.

The benchmark's default data sits outside the repository (``../shared/data/routing``), so the
test writes RouterBench-style wide CSVs and RouteLLM-style files of its own, with a pattern a
router can learn: the cheap model is right on short prompts and wrong on long ones. Accuracy and
latency goals are not asserted (they are what the benchmark measures); what is: the router, the
peer and the hindsight reference ran on the same split, the timed decisions were scored (not
the requested model kept for want of outcomes), and every figure of the JSON line is there.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "router_eval.py"
GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
MODELS = (GPT4, "cheap-a", "cheap-b", "mid")
WORDS = ("sum", "poem", "river", "atom", "code", "list", "sort", "planet", "verb", "noun")


def _prompt(rng: random.Random, hard: bool) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(40 if hard else 6)) + "?"


def _routerbench(folder: Path, seed: int) -> Path:
    folder.mkdir()
    rng = random.Random(seed)
    fields = ["prompt", "eval_name", *MODELS, *(f"{m}|total_cost" for m in MODELS)]
    with (folder / "data.csv").open("w", newline="") as fh:
        out = csv.DictWriter(fh, fields)
        out.writeheader()
        for i in range(240):
            hard = i % 2 == 0
            row: dict[str, object] = {"prompt": _prompt(rng, hard), "eval_name": f"task{i % 3}"}
            for m, cost in zip(MODELS, (0.01, 0.0002, 0.0003, 0.002), strict=True):
                right = m == GPT4 or (m == "mid" and rng.random() < 0.8) or not hard
                row[m] = int(right if rng.random() < 0.95 else not right)
                row[f"{m}|total_cost"] = cost
            out.writerow(row)
    return folder


def _routellm(folder: Path) -> Path:
    rng = random.Random(3)
    (folder / "mmlu").mkdir(parents=True)
    for path in (folder / "mmlu" / "mmlu_synthetic.csv", folder / "gsm8k_responses.csv"):
        with path.open("w", newline="") as fh:
            out = csv.DictWriter(fh, ["prompt", MIXTRAL, GPT4])
            out.writeheader()
            for i in range(200):
                hard = i % 2 == 0
                out.writerow({"prompt": _prompt(rng, hard), MIXTRAL: not hard, GPT4: True})
    return folder


def _args(tmp_path: Path, routellm: Path) -> list[str]:
    train, test = _routerbench(tmp_path / "train", 1), _routerbench(tmp_path / "test", 2)
    return [sys.executable, str(BENCH), "--quick", "--train", str(train), "--test", str(test),
            "--routellm", str(routellm)]  # fmt: skip


def test_the_quick_run_prints_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        _args(tmp_path, _routellm(tmp_path / "routellm")),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0.0 < result["aiq"] <= 1.0
    assert result["gpt4_accuracy_share_at_20pct_cost"] > 0.8  # the pattern is learnable
    assert 0.0 < result["task_hindsight"]["gpt4_accuracy_share_at_20pct_cost"] < 1.2
    assert 0.0 < result["knn_tfidf"]["aiq"] <= 1.0
    assert set(result["routellm"]) == {"mmlu", "gsm8k"}
    assert result["routellm"]["mmlu"]["apgr"] > 0.6  # better than random (about 0.5)
    assert set(result["decision_p50_us"]) == {"10", "1000"}
    for n in ("10", "1000"):
        assert result["decision_p50_us"][n] > 0
        assert result["decision_scored_share"][n] > 0.9  # decided with scores, not kept
        after = result["decision_after_table_change_us"][n]
        assert after["max"] >= after["p99"] > 0
    assert result["test_prompts"] == 240


def test_missing_data_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        _args(tmp_path, tmp_path / "nowhere"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "no RouteLLM data" in done.stderr
    assert "--routellm" in done.stderr
