"""Smoke test of ``bench/router_eval.py --quick``: every figure of its JSON line is there.

Accuracy and latency goals are not asserted (they are what the benchmark measures); what is:
the router, the peer and the hindsight reference ran on the same split, every latency row
decided with scores (not the requested model kept for want of outcomes), and the shapes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "router_eval.py"


def test_the_quick_run_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0.5 < result["aiq"] <= 1.0
    assert 0.5 < result["gpt4_accuracy_share_at_20pct_cost"] < 1.2
    assert 0.5 < result["task_hindsight"]["gpt4_accuracy_share_at_20pct_cost"] < 1.2
    assert 0.5 < result["knn_tfidf"]["aiq"] <= 1.0
    assert set(result["routellm"]) == {"mmlu", "gsm8k"}
    assert set(result["decision_p50_us"]) == {"10", "1000"}
    for n in ("10", "1000"):
        assert result["decision_p50_us"][n] > 0
        after = result["decision_after_table_change_us"][n]
        assert after["max"] >= after["p99"] > 0
        assert result["decision_scored_share"][n] > 0.9  # decided with scores, not kept
    assert result["test_prompts"] > 100
