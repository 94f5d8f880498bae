"""`agentmesh runs`, `agentmesh graph` and `agentmesh export` on a real DuckDB file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from agentmesh.collector import DuckDBStore, PingPongRule, Pipeline, SpanEventRecord
from agentmesh.collector.cli import main
from agentmesh.collector.cli.query_cmds import parse_duration
from agentmesh.collector.export import export_store
from agentmesh.collector.testing import SpanFactory, failed, graph_of, with_attributes
from agentmesh.core import ConfigError, semconv


async def _populate(db: Path) -> tuple[str, str]:
    """Two runs: a clean one (run-clean) and a looping one (run-loop)."""
    clean = SpanFactory()
    root = clean.workflow("team", run_id="run-clean")
    spans = [root]
    sup = clean.agent("supervisor", parent=root)
    spans += [sup, clean.chat(parent=sup, model="gpt-4o-mini", input_tokens=100, output_tokens=5)]
    spans.append(clean.agent("writer", parent=root, handoff_from="supervisor"))

    loop = SpanFactory()
    lroot = loop.workflow("team", run_id="run-loop")
    loop_spans = [lroot]
    previous = None
    for name in ["a", "b"] * 5:
        loop_spans.append(loop.agent(name, parent=lroot, handoff_from=previous))
        previous = name

    async with DuckDBStore(db) as store, Pipeline(store, rules=[PingPongRule()]) as pipeline:
        assert pipeline.offer(spans)
        assert pipeline.offer(loop_spans)
        await pipeline.drain()
    return clean.trace_id, loop.trace_id


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "q.duckdb"
    await _populate(path)
    return path


def test_runs_lists_both_runs_as_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--db", str(db), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {row["run_id"] for row in rows} == {"run-clean", "run-loop"}
    by_id = {row["run_id"]: row for row in rows}
    assert by_id["run-loop"]["detections"] == 1
    assert by_id["run-clean"]["agents"] == ["supervisor", "writer"]
    assert by_id["run-clean"]["llm_calls"] == 1


def test_runs_table_and_since(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--db", str(db)]) == 0
    assert "runs (2)" in capsys.readouterr().out
    # SpanFactory's clock is in 2023: nothing started in the last hour.
    assert main(["runs", "--db", str(db), "--since", "1h"]) == 0
    assert "runs (0)" in capsys.readouterr().out


def test_text_a_sender_chose_is_printed_as_text_not_markup_or_terminal_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # no cell wrapped
    db = tmp_path / "odd.duckdb"
    f = SpanFactory()
    root = f.workflow("wf-\x1b[2J", run_id="odd-[/]-[bold red]x[/bold red]-\x1b[31m")
    spans = [root, f.agent("agent-\u202e", parent=root)]

    async def store_run() -> None:
        async with DuckDBStore(db) as store:
            await store.write_spans(spans)
            await store.write_graph(graph_of(spans))

    asyncio.run(store_run())
    assert main(["runs", "--db", str(db)]) == 0  # "[/]" made rich raise before
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert "[/]" in out
    assert "[bold" in out
    assert "\\x1b[2J" in out
    assert main(["graph", "--db", str(db), "odd-"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "agent-\\u202e" in out
    assert "[/]" in out


def test_graph_by_run_id_prefix(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--db", str(db), "run-lo"]) == 0
    out = capsys.readouterr().out
    assert "DETECTION ping_pong" in out
    assert "a → b" in out


async def test_graph_prints_a_fan_out_as_chains_from_the_agent_that_handed_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    f = SpanFactory()
    root = f.workflow("fan", run_id="run-fan")
    spans = [root, f.agent("planner", parent=root)]
    spans += [f.agent(name, parent=root, handoff_from="planner") for name in ("a", "b")]
    spans.append(f.agent("writer", parent=root, handoff_from="b"))
    db = tmp_path / "fan.duckdb"
    async with DuckDBStore(db) as store, Pipeline(store) as pipeline:
        assert pipeline.offer(spans)
        await pipeline.drain()
    assert await asyncio.to_thread(main, ["graph", "--db", str(db), "run-fan"]) == 0
    out = capsys.readouterr().out
    assert "planner ─edge→ a; planner ─edge→ b ─edge→ writer" in out


def test_graph_ambiguous_or_unknown_run(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--db", str(db), "run-"]) == 2
    assert "2 runs match 'run-'" in capsys.readouterr().err
    assert main(["graph", "--db", str(db), "nope"]) == 2
    assert "no run match" in capsys.readouterr().err


@pytest.fixture
async def resumed_db(tmp_path: Path) -> Path:
    """A run paused on thread-9, and the run another process resumed it with."""
    db = tmp_path / "resumed.duckdb"
    asked, answered = SpanFactory(start_ns=1_000), SpanFactory(start_ns=2_000)
    thread = {semconv.GEN_AI_CONVERSATION_ID: "thread-9"}
    paused = with_attributes(
        asked.workflow("review", run_id="run-asked"), {**thread, semconv.AGENTMESH_RUN_PAUSED: True}
    )
    resumed = with_attributes(
        answered.workflow("review", run_id="run-answered"),
        {**thread, semconv.AGENTMESH_RUN_RESUMED: True},  # another process: no run named
    )
    async with DuckDBStore(db) as store, Pipeline(store) as pipeline:
        for span in (paused, resumed):
            assert pipeline.offer([span])
            await pipeline.drain()
    return db


def test_graph_of_a_resumed_run_names_its_conversation_and_the_run_it_continues(
    resumed_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = resumed_db
    assert main(["graph", "--db", str(db), "run-answered"]) == 0
    out = capsys.readouterr().out
    assert "conversation thread-9" in out
    assert "continues run run-asked" in out
    assert main(["graph", "--db", str(db), "run-asked"]) == 0
    assert "paused: the run stopped to wait for input" in capsys.readouterr().out


async def test_a_failed_run_is_listed_failed_and_its_graph_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the table's cells whole
    f = SpanFactory()
    root = f.workflow("team", run_id="run-broken")
    writer = failed(f.agent("writer", parent=root), "RateLimitError")
    broken = failed(root, "RateLimitError")
    db = tmp_path / "failed.duckdb"
    stopped = SpanFactory().workflow("team", run_id="run-stopped")
    ctrl_c = SpanEventRecord("exception", 1, {"exception.type": "KeyboardInterrupt"})
    async with DuckDBStore(db) as store, Pipeline(store) as pipeline:
        assert pipeline.offer([broken, writer, replace(stopped, events=(ctrl_c,))])
        await pipeline.drain()
    await _populate(db)  # and two runs that completed
    assert await asyncio.to_thread(main, ["runs", "--db", str(db), "--state", "failed"]) == 0
    out = capsys.readouterr().out
    assert "runs (1)" in out
    assert "run-broken" in out
    assert "failed" in out
    assert await asyncio.to_thread(main, ["runs", "--db", str(db), "--json"]) == 0
    rows = {row["run_id"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert {run_id: (row["state"], row["error"]) for run_id, row in rows.items()} == {
        "run-broken": ("failed", "step 'writer' failed: RateLimitError"),
        "run-clean": ("complete", None),
        "run-loop": ("complete", None),
        "run-stopped": ("interrupted", None),
    }
    failing = ["runs", "--db", str(db), "--json", "--state", "failed", "--workflow"]
    assert await asyncio.to_thread(main, [*failing, "team"]) == 0
    assert [json.loads(line)["run_id"] for line in capsys.readouterr().out.splitlines()] == [
        "run-broken"
    ]
    assert await asyncio.to_thread(main, [*failing, "essay"]) == 0
    assert capsys.readouterr().out == ""
    assert await asyncio.to_thread(main, ["graph", "--db", str(db), "run-stopped"]) == 0
    assert "INTERRUPTED KeyboardInterrupt: the run was stopped" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["graph", "--db", str(db), "run-broken"]) == 0
    assert "FAILED step 'writer' failed: RateLimitError" in capsys.readouterr().out
    out_dir = tmp_path / "export"
    assert await asyncio.to_thread(main, ["export", "--db", str(db), "--out", str(out_dir)]) == 0
    with duckdb.connect() as con:
        exported = con.execute(
            f"select run_id, state, error from read_parquet('{out_dir / 'runs.parquet'}') "
            "order by run_id"
        ).fetchall()
    assert exported == [
        ("run-broken", "failed", "step 'writer' failed: RateLimitError"),
        ("run-clean", "complete", None),
        ("run-loop", "complete", None),
        ("run-stopped", "interrupted", None),
    ]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_export_writes_every_table(
    db: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert main(["export", "--db", str(db), "--format", fmt, "--out", str(out)]) == 0
    assert "spans: 15 rows" in capsys.readouterr().out
    reader = {"parquet": "read_parquet", "csv": "read_csv_auto", "json": "read_json_auto"}[fmt]
    with duckdb.connect() as con:
        spans = con.execute(f"select count(*) from {reader}('{out / f'spans.{fmt}'}')").fetchone()
        assert spans == (15,)
        kinds = con.execute(f"select type from {reader}('{out / f'detections.{fmt}'}')").fetchall()
        assert kinds == [("ping_pong",)]
        handoffs = con.execute(
            f"select count(*) from {reader}('{out / f'handoffs.{fmt}'}')"
        ).fetchone()
        assert handoffs == (10,)


def test_parse_duration() -> None:
    assert parse_duration("90s") == 90 * 10**9
    assert parse_duration("2h") == 7200 * 10**9
    with pytest.raises(ConfigError, match="15 minutes"):
        parse_duration("15 minutes")


def test_costs_by_agent_and_by_model(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["costs", "--db", str(db), "--json"]) == 0
    by_agent = {r["key"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert by_agent["supervisor"]["llm_calls"] == 1
    assert by_agent["supervisor"]["input_tokens"] == 100
    assert main(["costs", "--db", str(db), "--by", "model", "--json"]) == 0
    by_model = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["key"], r["llm_calls"], r["output_tokens"]) for r in by_model] == [
        ("gpt-4o-mini", 1, 5)
    ]
    assert main(["costs", "--db", str(db)]) == 0
    table = capsys.readouterr().out
    assert "costs by agent" in table
    assert "supervisor" in table
    assert "total" in table
    assert main(["costs", "--db", str(db), "--since", "soon"]) == 2
    assert "--since 'soon'" in capsys.readouterr().err


def test_detections_newest_first_by_type_and_limit(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detections", "--db", str(db), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(row["type"], row["run_id"]) for row in rows] == [("ping_pong", "run-loop")]
    assert main(["detections", "--db", str(db)]) == 0
    table = capsys.readouterr().out
    assert "detections (1)" in table
    assert "ping_pong" in table
    assert main(["detections", "--db", str(db), "--type", "stuck", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["detections", "--db", str(db), "--type", "ping-pong"]) == 2  # a typo
    assert "no detection type is called 'ping-pong'; the types are: " in capsys.readouterr().err
    # SpanFactory's clock is in 2023, but detections are made now: within the last hour
    assert main(["detections", "--db", str(db), "--since", "1h", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["detections", "--db", str(db), "--limit", "0"]) == 2
    assert "--limit must be from 1 to 1000" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["parquet", "json"])
async def test_an_export_of_many_pages_of_runs_holds_every_row_once(
    tmp_path: Path, fmt: str
) -> None:
    # 601 runs read in pages of 256 (runs starting in the same nanosecond straddle the cuts);
    # every row of the store reaches the files once, runs newest first
    db = tmp_path / "many.duckdb"
    t0 = 1_800_000_000_000_000_000
    trace_ids: list[str] = []
    async with DuckDBStore(db) as store:
        async with Pipeline(store, rules=[PingPongRule()]) as pipeline:
            for i in range(601):
                f = SpanFactory(start_ns=t0 + (i // 3) * 10**9)
                root = f.workflow("team", run_id=f"run-{i}")
                a = f.agent("a", parent=root)
                b = f.agent("b", parent=root, handoff_from="a")
                chat = f.chat(parent=b, model="gpt-4o-mini", cost_usd=0.001)
                assert pipeline.offer([root, a, b, chat])
                trace_ids.append(f.trace_id)
            await pipeline.drain()
        counts = await export_store(store, tmp_path / "out", fmt)
        stored = await store.count_spans()
    assert counts == {
        "runs": 601,
        "agents": 1202,
        "handoffs": 601,
        "spans": stored,
        "detections": 0,
    }
    with duckdb.connect() as con:

        def read(table: str) -> str:
            path = tmp_path / "out" / f"{table}.{fmt}"
            return f"read_{'parquet' if fmt == 'parquet' else 'json_auto'}('{path}')"

        runs = con.sql(f"select trace_id, start_ns from {read('runs')}").fetchall()
        assert sorted(t for t, _ in runs) == sorted(trace_ids)
        starts = [s for _, s in runs]
        assert starts == sorted(starts, reverse=True)
        spans = con.sql(
            f"select count(*), count(distinct (trace_id, span_id)) from {read('spans')}"
        )
        assert spans.fetchall() == [(stored, stored)]
        handoffs = con.sql(f"select source, target, count(*) from {read('handoffs')} group by all")
        assert handoffs.fetchall() == [("a", "b", 601)]


async def test_prune_deletes_the_runs_that_ended_before_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "prune.duckdb"
    now = time.time_ns()
    old, recent = SpanFactory(start_ns=now - 40 * 86_400 * 10**9), SpanFactory(start_ns=now)
    async with DuckDBStore(db) as store:
        for f, run_id in ((old, "run-old"), (recent, "run-recent")):
            spans = [f.workflow("w", run_id=run_id)]
            spans.append(f.agent("a", parent=spans[0]))
            await store.write_spans(spans)
            await store.write_graph(graph_of(spans))

    assert await asyncio.to_thread(main, ["prune", "--older-than", "30d", "--db", str(db)]) == 0
    out = capsys.readouterr()
    assert "deleted 1 runs, 2 spans and 0 detections that ended before" in out.out
    assert "1 runs deleted" in out.err
    assert await asyncio.to_thread(main, ["runs", "--db", str(db), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["run_id"] for row in rows] == ["run-recent"]
    # a time not in the past, or not a time, is refused in plain words
    assert (
        await asyncio.to_thread(main, ["prune", "--older-than", "2999-01-01", "--db", str(db)]) == 2
    )
    assert "not in the past" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["prune", "--older-than", "soon", "--db", str(db)]) == 2
    assert "--older-than" in capsys.readouterr().err
    missing = ["prune", "--older-than", "30d", "--db", str(db.with_name("nope.duckdb"))]
    assert await asyncio.to_thread(main, missing) == 2
    said = capsys.readouterr().err
    assert "no DuckDB file at" in said
    assert "--collector" not in said  # prune has no such option
    for ages_ago in ("1000000d", "99999999999999d", "1900-01-01"):  # raised after pruning
        argv = ["prune", "--older-than", ages_ago, "--db", str(db)]
        assert await asyncio.to_thread(main, argv) == 2
        assert "before 1970, nothing is as old" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["runs"], ["graph", "run-1"], ["costs"], ["export"]])
def test_a_missing_duckdb_file_is_named_and_not_created(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a mistyped path used to be created empty (directories too) and read as a store without runs
    missing = tmp_path / "no-such-dir" / "typo.duckdb"
    out = ["--out", str(tmp_path / "out")] if command == ["export"] else []
    assert main([*command, "--db", str(missing), *out]) == 2
    err = capsys.readouterr().err
    assert f"no DuckDB file at {missing}" in err
    assert "--collector URL" in err
    assert not missing.parent.exists()


def test_the_collectors_memory_store_is_not_read_from_another_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_STORE", "memory")
    assert main(["runs"]) == 2
    assert "the memory store lives inside the collector process" in capsys.readouterr().err


def test_a_file_another_process_holds_is_explained(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # DuckDB lets one process open a file: reading the file of a running collector fails
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_FILE, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        assert main(["runs", "--db", str(db)]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert f"DuckDB store {db} is open in another process (PID {holder.pid};" in err
    assert "--collector URL" in err
    assert main(["runs", "--db", str(db), "--json"]) == 0  # once it is let go


_HOLD_FILE = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(120)
"""


def test_a_reader_that_stops_early_gets_no_traceback(db: Path) -> None:
    # `agentmesh runs --json | head -1`: the pipe closes before the listing is written
    code = "import sys; from agentmesh.collector.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "runs", "--db", str(db), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before anything was written
    _, err = process.communicate(timeout=60)
    assert b"Traceback" not in err
    assert b"BrokenPipeError" not in err
    assert process.returncode == 1


def test_times_may_be_dates_and_a_file_that_is_no_store_is_named(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detections", "--db", str(db), "--since", "2000-01-01T00:00:00Z", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # a date-time, as export takes it
    assert main(["detections", "--db", str(db), "--since", "2999-01-01", "--json"]) == 0
    assert capsys.readouterr().out == ""
    other = tmp_path / "scripts.json"
    other.write_text('{"a": 1}')
    assert main(["decisions", "--db", str(other)]) == 2
    assert f"{other} is not a DuckDB file" in capsys.readouterr().err
    argv = ["export", "decisions", "--db", str(db), "-o", str(tmp_path / "d.parquet")]
    assert main([*argv, "--since", "1h", "--until", "2h"]) == 2
    assert "--since 1h is not before --until 2h" in capsys.readouterr().err
