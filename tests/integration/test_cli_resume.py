"""`agentmesh resume` on a real DuckDB file: the plan, its JSON, and running the app with it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agentmesh.collector import DuckDBStore, PingPongRule, Pipeline
from agentmesh.collector.cli import main
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
    async with DuckDBStore(db) as store, Pipeline(store, rules=[PingPongRule()]) as pipeline:
        assert pipeline.offer(spans)
        await pipeline.drain()


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
    assert "no run match 'nope'" in capsys.readouterr().err
    assert main(["resume", "run-loop", "--collector", "http://127.0.0.1:1"]) == 2
    assert "unreachable" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["runs", "--db", str(db), "--", "python"])
    assert "takes no command after --" in capsys.readouterr().err
