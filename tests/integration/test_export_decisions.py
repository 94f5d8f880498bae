"""`agentmesh export decisions` on a real DuckDB file (and Postgres): Parquet, JSON lines, CSV."""

from __future__ import annotations

import asyncio
import csv
import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from agentmesh.collector import DuckDBStore, Pipeline
from agentmesh.collector.cli import main
from agentmesh.collector.detection import Detection
from agentmesh.collector.model import AttributeValue, SpanEventRecord, SpanRecord
from agentmesh.collector.routing.feedback import Feedback, feedback_span
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.postgres_store import PostgresStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import semconv

COLUMNS = [
    "decision_id",
    "trace_id",
    "span_id",
    "run_id",
    "start_time",
    "task_class",
    "mode",
    "policy",
    "requested_model",
    "chosen",
    "model",
    "sent_model",
    "provider",
    "candidates",
    "scores",
    "reason",
    "features",
    "table_version",
    "error",
    "error_type",
    "latency_s",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "fallbacks",
    "detections",
    "call_detections",
    "feedback_score",
    "quality",
]


def _decision(f: SpanFactory, parent: SpanRecord, decision_id: str, **kw: object) -> SpanRecord:
    attrs: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
        semconv.AGENTMESH_COST_USD: 0.002,
        semconv.AGENTMESH_ROUTE_DECISION_ID: decision_id,
        semconv.AGENTMESH_ROUTE_POLICY: "utility",
        semconv.AGENTMESH_ROUTE_MODE: "shadow",
        semconv.AGENTMESH_ROUTE_REQUESTED_MODEL: "gpt-4o",
        semconv.AGENTMESH_ROUTE_CANDIDATES: ["gpt-4o-mini", "gpt-4o"],
        semconv.AGENTMESH_ROUTE_SCORES: [0.7, 0.6],
        semconv.AGENTMESH_ROUTE_CHOSEN: "gpt-4o-mini",
        semconv.AGENTMESH_ROUTE_REASON: "best utility",
        semconv.AGENTMESH_ROUTE_TASK_CLASS: "triage",
        semconv.AGENTMESH_ROUTE_FEATURES: '{"chars":812,"cluster":3}',
        semconv.AGENTMESH_ROUTE_TABLE_VERSION: 7,
    }
    span = f.span(
        "chat gpt-4o-mini",
        parent=parent,
        kind="client",
        attributes=attrs,
        duration_ns=2_000_000_000,
        status_code="error" if kw.get("error") else "unset",
    )
    if kw.get("error"):
        span = replace(span, attributes={**attrs, semconv.ERROR_TYPE: "APITimeoutError"})
    if kw.get("fallback"):
        event = SpanEventRecord(
            semconv.EVENT_FALLBACK,
            span.start_ns + 1,
            {
                semconv.AGENTMESH_ROUTE_FALLBACK_FROM: "gpt-4o",
                semconv.AGENTMESH_ROUTE_FALLBACK_TO: "gpt-4o-mini",
                semconv.ERROR_TYPE: "RateLimitError",
            },
        )
        span = replace(span, events=(event,))
    return span


async def _populate(store: SpanStore) -> dict[str, str]:
    """Two runs, three decisions: one with feedback, one failed, one with a fallback + loop."""
    one = SpanFactory()
    root = one.workflow("team", run_id="run-1")
    agent = one.agent("triager", parent=root)
    ok = _decision(one, agent, "d-ok")
    failed = _decision(one, agent, "d-failed", error=True)
    score = feedback_span(
        Feedback(one.trace_id, "d-ok", 0.6, comment="fine"),
        parent_span_id=ok.span_id,
        time_ns=ok.end_ns + 10,
    )
    two = SpanFactory(start_ns=1_700_000_100_000_000_000)
    root2 = two.workflow("team", run_id="run-2")
    agent2 = two.agent("triager", parent=root2)
    fell = _decision(two, agent2, "d-fallback", fallback=True)
    async with Pipeline(store) as pipeline:
        assert pipeline.offer([root, agent, ok, failed, score])
        assert pipeline.offer([root2, agent2, fell])
        await pipeline.drain()
    await store.write_detection(
        Detection(
            id="det-1",
            type="handoff_loop",
            severity="error",
            trace_id=two.trace_id,
            run_id="run-2",
            agent="triager",
            span_ids=(agent2.span_id,),
            explanation="loop",
            detected_at_ns=fell.end_ns,
        )
    )
    return {"one": one.trace_id, "two": two.trace_id}


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "decisions.duckdb"
    async with DuckDBStore(path) as store:
        await _populate(store)
    return path


def _check_rows(rows: dict[str, dict[str, object]]) -> None:
    assert set(rows) == {"d-ok", "d-failed", "d-fallback"}
    ok, failed, fell = rows["d-ok"], rows["d-failed"], rows["d-fallback"]
    assert ok["feedback_score"] == pytest.approx(0.6)
    assert ok["quality"] == pytest.approx(0.6)
    assert ok["run_id"] == "run-1"
    assert ok["chosen"] == "gpt-4o-mini"
    assert ok["task_class"] == "triage"
    assert ok["table_version"] == 7
    assert ok["latency_s"] == pytest.approx(2.0)
    assert (ok["input_tokens"], ok["output_tokens"]) == (100, 10)
    assert failed["error"] is True
    assert failed["error_type"] == "APITimeoutError"
    assert failed["quality"] == 0.0
    assert fell["fallbacks"] == ["gpt-4o"]
    assert fell["detections"] == ["handoff_loop"]
    assert fell["quality"] == pytest.approx(0.75)
    assert ok["candidates"] == ["gpt-4o-mini", "gpt-4o"]
    assert ok["scores"] == pytest.approx([0.7, 0.6])


def test_parquet_one_row_per_decision_with_list_columns(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "decisions.parquet"
    assert main(["export", "decisions", "--db", str(db), "--output", str(out)]) == 0
    assert "decisions: 3 rows" in capsys.readouterr().out
    with duckdb.connect() as con:
        relation = con.sql(f"SELECT * FROM read_parquet('{out}') ORDER BY start_time")
        assert relation.columns == COLUMNS
        types = dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
        assert types["candidates"] == "VARCHAR[]"
        assert types["scores"] == "DOUBLE[]"
        assert types["fallbacks"] == "VARCHAR[]"
        records = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    rows = {str(r["decision_id"]): r for r in records}
    assert [r["decision_id"] for r in records] == ["d-ok", "d-failed", "d-fallback"]
    assert json.loads(str(rows["d-ok"]["features"])) == {"chars": 812, "cluster": 3}
    _check_rows(rows)
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".partial")]


def test_jsonl_lists_and_features_as_json(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    assert main(["export", "decisions", "--db", str(db), "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(records[0]) == COLUMNS
    rows = {r["decision_id"]: r for r in records}
    assert rows["d-ok"]["features"] == {"chars": 812, "cluster": 3}
    _check_rows(rows)


def test_csv_lists_as_json_strings(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.txt"
    argv = ["export", "decisions", "--db", str(db), "--format", "csv", "--output", str(out)]
    assert main(argv) == 0
    with out.open(newline="") as file:
        records = list(csv.DictReader(file))
    assert list(records[0]) == COLUMNS
    rows = {r["decision_id"]: r for r in records}
    assert json.loads(rows["d-ok"]["candidates"]) == ["gpt-4o-mini", "gpt-4o"]
    assert json.loads(rows["d-fallback"]["fallbacks"]) == ["gpt-4o"]
    assert json.loads(rows["d-fallback"]["detections"]) == ["handoff_loop"]
    assert json.loads(rows["d-ok"]["features"]) == {"chars": 812, "cluster": 3}
    assert float(rows["d-failed"]["quality"]) == 0.0


def test_since_until_limit_and_store_url(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    # SpanFactory's clock is in November 2023: nothing in the last 24 hours.
    assert main(["export", "decisions", "--db", str(db), "-o", str(out), "--since", "24h"]) == 0
    assert out.read_text() == ""
    # Run 2 starts at 1_700_000_100 s (2023-11-14T22:15:00Z).
    argv = ["export", "decisions", "--store", f"duckdb://{db}", "-o", str(out)]
    assert main([*argv, "--since", "2023-11-14T22:15:00Z"]) == 0
    assert [json.loads(x)["decision_id"] for x in out.read_text().splitlines()] == ["d-fallback"]
    assert main([*argv, "--until", "2023-11-14T22:15:00+00:00"]) == 0
    ids = [json.loads(x)["decision_id"] for x in out.read_text().splitlines()]
    assert ids == ["d-ok", "d-failed"]
    assert main([*argv, "--limit", "1"]) == 0
    assert [json.loads(x)["decision_id"] for x in out.read_text().splitlines()] == ["d-fallback"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--output", "x.xml"], "cannot tell the format of x.xml"),
        (["--output", "x.jsonl", "--since", "yesterday"], "--since 'yesterday': expected"),
        (["--output", "x.jsonl", "--limit", "0"], "--limit must be at least 1"),
        (["--output", "x.jsonl", "--store", "mysql://h/db"], "--store 'mysql://h/db': expected"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "decisions", "--db", str(db), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))


def test_unknown_format_is_refused_by_the_parser(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["export", "decisions", "--db", str(db), "--format", "xml", "-o", "x"])
    assert exited.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_unwritable_output(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["export", "decisions", "--db", str(db), "--format", "csv", "-o", str(tmp_path)]
    assert main(argv) == 2
    assert f"cannot write {tmp_path}: it is a directory" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["export", "decisions", "--db", str(db), "-o", str(blocker / "d.csv")]) == 2
    assert f"cannot write {blocker / 'd.csv'}: {blocker} is a file, not a directory" in (
        capsys.readouterr().err
    )  # it said "File exists"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["export", "decisions", "--db", str(db), "-o", str(locked / "d.csv")]) == 2
        assert "Permission denied" in capsys.readouterr().err


def test_missing_or_unreachable_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.duckdb"
    assert main(["export", "decisions", "--db", str(missing), "-o", "x.csv"]) == 2
    assert f"no DuckDB file at {missing}" in capsys.readouterr().err
    assert not missing.exists()
    dsn = "postgresql://nobody@127.0.0.1:1/none"
    assert main(["export", "decisions", "--store", dsn, "-o", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentmesh: ")
    assert "127.0.0.1:1" in err or "connect" in err.lower()
    assert not (tmp_path / "x.csv").exists()


def test_plain_export_still_writes_its_tables(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    assert main(["export", "--db", str(db), "--format", "csv", "--out", str(out)]) == 0
    assert (out / "spans.csv").is_file()


@pytest.fixture
async def pg_schema(postgres_address: tuple[str, int]) -> AsyncIterator[tuple[str, str]]:
    host, port = postgres_address
    dsn = os.environ.get("AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test")
    async with scratch_schema(dsn) as name:
        yield dsn, name


@pytest.mark.postgres
async def test_export_from_postgres(
    pg_schema: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn, schema = pg_schema
    async with PostgresStore(dsn, schema=schema) as store:
        await _populate(store)
    monkeypatch.setenv("AGENTMESH_COLLECTOR_POSTGRES_SCHEMA", schema)
    out = tmp_path / "pg.parquet"
    assert (
        await asyncio.to_thread(main, ["export", "decisions", "--store", dsn, "-o", str(out)]) == 0
    )
    with duckdb.connect() as con:
        relation = con.sql(f"SELECT * FROM read_parquet('{out}')")
        records = [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    _check_rows({str(r["decision_id"]): r for r in records})
