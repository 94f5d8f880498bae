"""`agentmesh resume` on a real DuckDB file: the plan, its JSON, and running the app with it."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agentmesh.collector import DuckDBStore, PingPongRule, Pipeline
from agentmesh.collector.cli import main
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import SpanFactory, with_attributes
from agentmesh.core import semconv


async def _populate(db: Path) -> None:
    """A run that plans, drafts, then loops; its handoffs carry checkpoint ids."""
    loop = SpanFactory()
    root = loop.workflow("team", run_id="run-loop")
    spans = [root]
    previous = None
    for index, name in enumerate(["planner", "drafter", *["a", "b"] * 5]):
        agent = loop.agent(name, parent=root, handoff_from=previous)
        if previous is not None:
            agent = with_attributes(agent, {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: f"ck-{index}"})
        spans.append(agent)
        previous = name
    spans += _failed_then_resumed()
    async with DuckDBStore(db) as store, Pipeline(store, rules=[PingPongRule()]) as pipeline:
        assert pipeline.offer(spans)
        await pipeline.drain()


def _failed_then_resumed() -> list[SpanRecord]:
    """run-failed: its writer fails after a checkpointed handoff; run-again resumes it from
    that checkpoint and fails before a handoff of its own; run-done completes."""
    failed = SpanFactory()
    root = failed.workflow("team", run_id="run-failed")
    planner = failed.agent("planner", parent=root)
    writer = with_attributes(
        failed.agent("writer", parent=root, handoff_from="planner"),
        {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: "ck-w"},
    )
    writer = replace(writer, status_code="error")
    again = SpanFactory()
    resumed = with_attributes(
        again.workflow("team", run_id="run-again"),
        {
            semconv.AGENTMESH_RESUME_FROM_RUN_ID: "run-failed",
            semconv.AGENTMESH_RESUME_CHECKPOINT_ID: "ck-w",
        },
    )
    retry = replace(again.agent("writer", parent=resumed), status_code="error")
    done = SpanFactory()
    finished = done.workflow("team", run_id="run-done")
    return [
        root,
        planner,
        writer,
        resumed,
        retry,
        finished,
        done.agent("planner", parent=finished),
        with_attributes(
            done.agent("writer", parent=finished, handoff_from="planner"),
            {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: "ck-d"},
        ),
    ]


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.duckdb"
    await _populate(path)
    return path


def test_the_plan_of_a_stopped_run_names_the_checkpoint_before_the_loop(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", "--db", str(db), "run-loop", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["status"] == "stopped"
    assert plan["reason"].startswith("ping_pong")
    assert plan["checkpoint_id"] == "ck-1"  # planner → drafter, the last handoff before the loop
    assert plan["resume_from"] == "drafter"
    assert main(["resume", "--db", str(db), "run-loop"]) == 0
    assert f"resume from checkpoint {plan['checkpoint_id']}" in capsys.readouterr().out


def test_the_graph_shows_the_checkpointed_handoffs(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", "--db", str(db), "run-loop"]) == 0
    assert "checkpoints: 11 handoffs; last ck-11 (a → b, handoff 10)" in capsys.readouterr().out


def test_the_app_runs_with_the_plan_and_its_exit_code_is_returned(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = "import os, sys; print(os.environ['AGENTMESH_RESUME']); sys.exit(3)"
    code = main(["resume", "--db", str(db), "run-loop", "--", sys.executable, "-c", app])
    assert code == 3
    out = capsys.readouterr()
    assert "resume from checkpoint" in out.err  # the summary goes to stderr when an app runs


def test_unknown_runs_and_stray_commands_are_refused_in_plain_words(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", "--db", str(db), "nope"]) == 2
    assert "no run matches 'nope'" in capsys.readouterr().err
    assert main(["resume", "run-loop", "--collector", "http://127.0.0.1:1"]) == 2
    assert "unreachable" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["runs", "--db", str(db), "--", "python"])
    assert "takes no command after --" in capsys.readouterr().err


def test_completed_or_already_resumed_runs_are_not_run_again(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = [sys.executable, "-c", "import sys; sys.exit(5)"]
    assert main(["resume", "--db", str(db), "run-done", "--", *app]) == 2
    assert "run run-done completed: there is nothing to resume" in capsys.readouterr().err
    assert main(["resume", "--db", str(db), "run-failed", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["status"] == "failed"
    assert plan["resumed_by"] == "run-again"
    assert main(["resume", "--db", str(db), "run-failed", "--", *app]) == 2
    refused = capsys.readouterr().err
    assert "run run-failed was already resumed by run run-again" in refused
    assert "the command was not run (--force runs it anyway)" in refused
    assert main(["resume", "--db", str(db), "run-failed", "--force", "--", *app]) == 5
    capsys.readouterr()
    assert main(["resume", "--db", str(db), "run-done"]) == 0  # the plan alone: a note
    assert "note: run run-done completed" in capsys.readouterr().out


def test_a_resumed_run_that_failed_before_its_own_handoff_resumes_from_the_same_checkpoint(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", "--db", str(db), "run-again", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["status"] == "failed"
    assert plan["checkpoint_id"] == "ck-w"  # it started over before: "none: starts over"
    assert plan["resumed_by"] is None
