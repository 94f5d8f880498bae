"""`agentmesh resume` on a real DuckDB file: the plan, its JSON, and running the app with it.

Then against a real collector (``--collector``): the plan names where the run's checkpoints are
stored, and the store is checked before the app runs: checkpoints kept in memory, a dead Redis
or PostgreSQL, a DuckDB file that is not there refuse the run (exit 2, the store named by its
masked URL); live stores let the app run; an ``AGENTMESH_CHECKPOINT_URL`` naming another store
is warned about.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from agentmesh.collector import (
    Collector,
    CollectorSettings,
    DuckDBStore,
    MemoryStore,
    PingPongRule,
    Pipeline,
)
from agentmesh.collector.cli import main
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import SpanFactory, to_otlp_request, with_attributes
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


def test_the_plan_of_a_stopped_run_names_the_checkpoint_the_loop_began_from(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", "--db", str(db), "run-loop", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["status"] == "stopped"
    assert plan["reason"].startswith("ping_pong")
    # drafter → a, the handoff into the loop's first step: the state after the drafter, before
    # the loop began (the drafter's work is not done again)
    assert plan["checkpoint_id"] == "ck-2"
    assert plan["resume_from"] == "a"
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


# --- the checkpoint store, checked before the app runs (a real collector) -------------------

APP = [sys.executable, "-c", "import sys; sys.exit(7)"]  # exit code 7: the app ran
DEAD_REDIS = "redis://:***@127.0.0.1:1/0"  # as the spans of an app on redis://:s3cret@… name it
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/test"


def _failed_run(run_id: str, store: str | None) -> list[SpanRecord]:
    """A LangGraph run whose writer failed after a checkpointed handoff stored at ``store``."""
    spans = SpanFactory()
    root = spans.workflow("essay", run_id=run_id, framework="langgraph")
    saved: dict[str, str] = {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: f"ck-{run_id}"}
    if store is not None:
        saved[semconv.AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] = store
    writer = with_attributes(spans.agent("writer", parent=root, handoff_from="planner"), saved)
    return [root, spans.agent("planner", parent=root), replace(writer, status_code="error")]


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[str]:
    """A running collector that received the runs below; its OTLP/HTTP endpoint."""
    (tmp_path / "threads.duckdb").write_bytes(b"")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    runs = {
        "run-silent-redis": f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
        "run-memory": "memory://",
        "run-dead-redis": DEAD_REDIS,
        "run-dead-postgres": DEAD_POSTGRES,
        "run-redis": "redis://127.0.0.1:6379/0",
        "run-postgres": "postgresql://postgres:***@127.0.0.1:5432/test",
        "run-duckdb": f"duckdb://{tmp_path / 'threads.duckdb'}",
        "run-gone-duckdb": f"duckdb://{tmp_path / 'gone.duckdb'}",
        "run-older": None,  # spans of an instrumentation that did not name stores
    }
    spans = [span for run, store in runs.items() for span in _failed_run(run, store)]
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0
    )
    with silent:
        async with Collector(settings, MemoryStore()) as running:
            base = running.http_endpoint
            assert base is not None
            async with (
                aiohttp.ClientSession() as client,
                client.post(
                    base + "/v1/traces",
                    data=to_otlp_request(spans).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                ) as response,
            ):
                assert response.status == 200
            await running.drain()
            yield base


@pytest.fixture(autouse=True)
def no_app_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTMESH_CHECKPOINT_URL", raising=False)


async def _resume(base: str, run: str, *args: str) -> int:
    """``agentmesh resume RUN --collector BASE ARGS…`` (in a thread: the collector runs here)."""
    return await asyncio.to_thread(main, ["resume", run, "--collector", base, *args])


async def test_the_plan_names_where_the_checkpoints_are(
    collector: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _resume(collector, "run-dead-redis", "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["checkpoint_id"], plan["checkpoint_store"]) == ("ck-run-dead-redis", DEAD_REDIS)
    assert await _resume(collector, "run-older", "--json") == 0
    assert json.loads(capsys.readouterr().out)["checkpoint_store"] is None
    assert await _resume(collector, "run-dead-redis") == 0  # the plan alone: nothing is checked
    assert f"checkpoints stored in {DEAD_REDIS}" in capsys.readouterr().out


async def test_checkpoints_kept_in_memory_are_not_resumed_in_a_new_process(
    collector: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _resume(collector, "run-memory", "--", *APP) == 2
    refused = capsys.readouterr().err
    assert "run run-memory was checkpointed in memory (memory://)" in refused
    assert "a new process cannot resume from them" in refused
    assert "the command was not run (--force runs it anyway)" in refused
    assert await _resume(collector, "run-memory") == 0  # the plan alone: a note
    assert "note: run run-memory was checkpointed in memory" in capsys.readouterr().out
    assert await _resume(collector, "run-memory", "--force", "--", *APP) == 7
    assert "running the command anyway (--force)" in capsys.readouterr().err


async def test_a_store_that_cannot_be_reached_is_named_and_the_app_not_run(
    collector: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    assert await _resume(collector, "run-dead-redis", "--", *APP) == 2
    assert time.monotonic() - started < 10  # a couple of seconds at most, not TCP's patience
    refused = capsys.readouterr().err
    assert f"its Redis checkpoint store {DEAD_REDIS} did not answer a ping" in refused
    assert "connection refused" in refused
    assert "start it, or make it reachable from here" in refused
    assert "the command was not run (--force runs it anyway)" in refused

    # the app's URL names the same store, with its password: used for the check, never shown
    monkeypatch.setenv("AGENTMESH_CHECKPOINT_URL", "redis://:s3cret@127.0.0.1:1/0")
    assert await _resume(collector, "run-dead-redis", "--", *APP) == 2
    refused = capsys.readouterr().err
    assert DEAD_REDIS in refused
    assert "s3cret" not in refused
    assert "warning" not in refused  # the same store: nothing to warn about
    monkeypatch.delenv("AGENTMESH_CHECKPOINT_URL")

    assert await _resume(collector, "run-dead-postgres", "--", *APP) == 2
    refused = capsys.readouterr().err
    assert f"its PostgreSQL checkpoint store {DEAD_POSTGRES} did not accept a connection" in refused

    started = time.monotonic()
    assert await _resume(collector, "run-silent-redis", "--", *APP) == 2
    assert time.monotonic() - started < 10
    assert "did not answer a ping (no answer within 2 s)" in capsys.readouterr().err

    assert await _resume(collector, "run-gone-duckdb", "--", *APP) == 2
    refused = capsys.readouterr().err
    assert "gone.duckdb does not exist here" in refused

    assert await _resume(collector, "run-dead-redis", "--force", "--", *APP) == 7
    assert "running the command anyway (--force)" in capsys.readouterr().err


async def test_a_plan_that_names_no_store_runs_the_app_as_before(
    collector: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _resume(collector, "run-older", "--", *APP) == 7
    out = capsys.readouterr().err
    assert "resume from checkpoint ck-run-older" in out
    assert "checkpoints stored in" not in out


async def test_a_duckdb_file_that_is_there_lets_the_app_run(
    collector: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _resume(collector, "run-duckdb", "--", *APP) == 7
    assert "threads.duckdb" in capsys.readouterr().err


@pytest.mark.redis
@pytest.mark.usefixtures("redis_address")
async def test_a_live_redis_lets_the_app_run_and_another_app_store_is_warned_about(
    collector: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await _resume(collector, "run-redis", "--", *APP) == 7
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setenv("AGENTMESH_CHECKPOINT_URL", "redis://:s3cret@127.0.0.1:6379/1")
    assert await _resume(collector, "run-redis", "--", *APP) == 7
    warned = capsys.readouterr().err
    assert (
        "warning: the app's AGENTMESH_CHECKPOINT_URL is redis://:***@127.0.0.1:6379/1, but run "
        "run-redis was checkpointed to redis://127.0.0.1:6379/0: the app would not find the "
        "checkpoint there"
    ) in " ".join(warned.split())  # rich wraps long lines
    assert "s3cret" not in warned


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_address")
async def test_a_live_postgres_lets_the_app_run(
    collector: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the plan's URL has no password (masked): the server answered, that is enough
    assert await _resume(collector, "run-postgres", "--", *APP) == 7
    assert "postgresql://postgres:***@127.0.0.1:5432/test" in capsys.readouterr().err
