"""Run a part of this repository's test suite with another venv's interpreter."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_suite(python: Path, suite: Sequence[str], *, least: int, timeout_s: float) -> None:
    """Run ``suite`` (paths, node ids, options) under ``python``; assert it passed in full.

    Args:
        python: The venv's interpreter.
        suite: What pytest gets, relative to the repository.
        least: Fewest tests that must pass (a guard against a stray file running alone).
        timeout_s: Longest run; the run is killed after it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "PYTEST_"))}
    done = subprocess.run(
        [
            str(python),
            *("-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--rootdir", str(ROOT), "-o", "addopts="),
            *suite,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout_s,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert int(passed.group(1)) >= least, summary
    assert "skipped" not in summary, summary
