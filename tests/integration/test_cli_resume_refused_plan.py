"""`agentmesh resume` does not say "resume from" for a plan it will not resume.

A completed run's plan names its last checkpoint, and a run already resumed by another names
where ``--force`` would resume it; the summary said "resume from checkpoint …" for both, right
before refusing.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agentmesh.collector import DuckDBStore, Pipeline
from agentmesh.collector.cli import main
from agentmesh.collector.testing import SpanFactory, with_attributes
from agentmesh.core import semconv


async def _populate(db: Path) -> None:
    """run-done completes; run-failed fails and run-again already resumed it."""
    done = SpanFactory()
    finished = done.workflow("team", run_id="run-done")
    failed = SpanFactory()
    root = failed.workflow("team", run_id="run-failed")
    writer = with_attributes(
        failed.agent("writer", parent=root, handoff_from="planner"),
        {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: "ck-w"},
    )
    again = SpanFactory()
    resumed = with_attributes(
        again.workflow("team", run_id="run-again"),
        {
            semconv.AGENTMESH_RESUME_FROM_RUN_ID: "run-failed",
            semconv.AGENTMESH_RESUME_CHECKPOINT_ID: "ck-w",
        },
    )
    spans = [
        finished,
        done.agent("planner", parent=finished),
        with_attributes(
            done.agent("writer", parent=finished, handoff_from="planner"),
            {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: "ck-d"},
        ),
        root,
        failed.agent("planner", parent=root),
        replace(writer, status_code="error"),
        resumed,
        replace(again.agent("writer", parent=resumed), status_code="error"),
    ]
    async with DuckDBStore(db) as store, Pipeline(store) as pipeline:
        assert pipeline.offer(spans)
        await pipeline.drain()


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.duckdb"
    await _populate(path)
    return path


def test_a_completed_run_names_its_last_checkpoint_not_one_to_resume_from(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = [sys.executable, "-c", "raise SystemExit(5)"]
    assert main(["resume", "--db", str(db), "run-done", "--", *app]) == 2
    err = capsys.readouterr().err
    assert "last checkpoint ck-d before step 'writer'" in err
    assert "resume from" not in err
    assert "run run-done completed: there is nothing to resume" in err

    assert main(["resume", "--db", str(db), "run-done"]) == 0
    out = capsys.readouterr().out
    assert "last checkpoint ck-d" in out
    assert "resume from" not in out


def test_a_run_already_resumed_says_where_force_would_resume_it(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = [sys.executable, "-c", "raise SystemExit(5)"]
    assert main(["resume", "--db", str(db), "run-failed", "--", *app]) == 2
    err = capsys.readouterr().err
    assert "would resume from checkpoint ck-w before step 'writer'" in err
    assert "already resumed by run run-again" in err
    assert main(["resume", "--db", str(db), "run-again", "--", *app]) == 5  # not refused
    assert "\nresume from checkpoint ck-w" in capsys.readouterr().err
