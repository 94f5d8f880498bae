"""Our streaming anomaly model and NAB's windowed Gaussian on the Numenta Anomaly Benchmark.

Data: the NAB corpus (numenta/NAB, MIT) at ``../shared/data/nab`` relative to the project root:
58 series and ``labels/combined_windows.json``. Each detector gets a fresh model per file and
sees only ``(value, timestamp)`` one point at a time (unlike NAB's harness, no file min/max and
no probation length are given to it). Scores are NAB's (``bench/_nab/scoring.py``): threshold
optimised per profile over the corpus, normalised so that detecting nothing is 0 and detecting
every window at its start with no false positive is 100.

``us_per_point`` is the mean CPU time (the thread's, ``time.thread_time``) of one ``update`` of
our model, so that a loaded machine does not count the time it keeps us off a core;
``wall_us_per_point`` is the wall-clock figure. The goal of issue #5: standard
score >= 60 at < 20 µs a point.

Run: ``uv run python bench/nab.py`` (``--quick`` for a subset of the files; ``--data DIR``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _nab.corpus import load_corpus
from _nab.run import DetectorRun, run_detector
from _nab.scoring import PROFILES, CorpusScore, FileSweep, score_corpus, sweep_file
from rich.console import Console
from rich.table import Table

from agentmesh.collector.anomaly import WindowedGaussian, new_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "nab"
GOAL_STANDARD = 60.0
GOAL_US = 20.0

QUICK_FILES = [
    "artificialNoAnomaly/art_daily_small_noise.csv",
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "artificialWithAnomaly/art_daily_flatmiddle.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
    "realAdExchange/exchange-2_cpc_results.csv",
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/nyc_taxi.csv",
    "realTraffic/speed_7578.csv",
    "realTweets/Twitter_volume_AAPL.csv",
]


def _score(run: DetectorRun, sweeps: list[FileSweep]) -> dict[str, CorpusScore]:
    return {p.name: score_corpus(sweeps, run.scores, p) for p in PROFILES}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB root directory")
    parser.add_argument("--quick", action="store_true", help=f"{len(QUICK_FILES)} files only")
    parser.add_argument("--per-file", action="store_true", help="print per-file standard scores")
    args = parser.parse_args()

    console = Console(stderr=True, width=130)
    corpus = load_corpus(args.data.resolve(), QUICK_FILES if args.quick else None)
    sweeps = [sweep_file(s.name, len(s.values), s.windows) for s in corpus]
    windows = sum(s.windows for s in sweeps)
    console.print(
        f"NAB: {len(corpus)} files, {sum(len(s.values) for s in corpus)} points, "
        f"{windows} scorable windows ({args.data})"
    )

    ours = run_detector("agentmesh", new_model, corpus)
    gauss = run_detector("windowed_gaussian", WindowedGaussian, corpus)
    results = {run.name: (_score(run, sweeps), run) for run in (ours, gauss)}

    table = Table(title="NAB scores (normalised: null detector 0, perfect 100)")
    table.add_column("detector")
    table.add_column("profile")
    table.add_column("score", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("TP", justify="right")
    table.add_column("FN", justify="right")
    table.add_column("FP points", justify="right")
    table.add_column("CPU µs/point", justify="right")
    table.add_column("wall µs/point", justify="right")
    for name, (scores, run) in results.items():
        for p in PROFILES:
            s = scores[p.name]
            table.add_row(
                name,
                p.name,
                f"{s.normalized:.1f}",
                f"{s.threshold:.6g}",
                str(s.tp),
                str(s.fn),
                str(s.fp),
                f"{run.us_per_point:.2f}",
                f"{run.wall_us_per_point:.2f}",
            )
    console.print(table)
    if args.per_file:
        ftable = Table(title="standard profile, raw score per file")
        ftable.add_column("file")
        for name in results:
            ftable.add_column(name, justify="right")
        for sweep in sweeps:
            ftable.add_row(
                sweep.name,
                *(f"{results[n][0]['standard'].per_file[sweep.name]:+.2f}" for n in results),
            )
        console.print(ftable)
    console.print("published standard scores: CAD OSE 69.9, HTM 70.5, windowed Gaussian 39.6")

    ours_scores = results["agentmesh"][0]
    gauss_scores = results["windowed_gaussian"][0]
    standard = ours_scores["standard"].normalized
    out = {
        "nab": {p.name: round(ours_scores[p.name].normalized, 2) for p in PROFILES},
        "windowed_gaussian": {p.name: round(gauss_scores[p.name].normalized, 2) for p in PROFILES},
        "us_per_point": round(ours.us_per_point, 2),
        "wall_us_per_point": round(ours.wall_us_per_point, 2),
        "points": ours.points,
        "goal_met": standard >= GOAL_STANDARD and ours.us_per_point < GOAL_US,
    }
    if args.quick:
        out["quick"] = True
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
