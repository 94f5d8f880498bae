"""Smoke test of ``bench/duckdb_graph_writes.py``: both designs store the same graphs.

Timings are not asserted, only that the benchmark runs both writers on the same replays, that
the versioned store reads back exactly what the in-place one holds, and the JSON line's shape.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "duckdb_graph_writes.py"


def test_the_benchmark_compares_the_same_rows_and_prints_its_json_line() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--spans", "6000", "--replays", "2", "--cycle", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "duckdb_graph_writes"
    assert result["same_rows"] is True
    assert len(result["by_stage"]) == 2
    assert result["by_stage"][1]["rows"] == 2 * result["by_stage"][0]["rows"]
    assert result["ms_per_write"]["versioned"] > 0
    assert result["ms_per_write"]["in_place"] > 0
    assert "graph rows held" in done.stdout
