"""`agentmesh export` tables read back by other programs: strict JSON, parseable CSV lists.

Every store the export reads (DuckDB and Postgres for real, and memory) is exported in every
format, and the files are read back with `json` (refusing the bare `NaN` / `Infinity` Python
writes but JSON has not), Python's `csv` and pyarrow.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from agentmesh.collector import DuckDBStore, Pipeline
from agentmesh.collector.api.payloads import run_to_json
from agentmesh.collector.detection import Detection
from agentmesh.collector.export import export_store
from agentmesh.collector.model import SpanEventRecord
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.memory_store import MemoryStore
from agentmesh.collector.store.postgres_store import PostgresStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, with_attributes
from agentmesh.core import semconv

NAMES = ["Senior, Analyst", 'quote "q" ]', "multi\nline", "日本語エージェント", "['x', y]"]
"""Agent names that DuckDB's display form of a list (``['a, b', c]``) garbles."""


def _refuse(constant: str) -> object:
    raise ValueError(f"bare {constant} is not JSON")


def _strict(text: str) -> Any:
    """Parse RFC 8259 JSON only (Python's reader accepts ``NaN`` and ``Infinity`` by default)."""
    return json.loads(text, parse_constant=_refuse)


async def _populate(store: SpanStore, *, infinite: bool) -> None:
    """A paused run with odd agent names and non-finite attributes, the run that resumes it,
    and a detection naming two spans. ``infinite``: infinities too (only the memory store keeps
    them; DuckDB and Postgres read every non-finite double back as NaN)."""
    inf = math.inf if infinite else math.nan
    f = SpanFactory()
    root = f.workflow("team", run_id="run-paused")
    root = with_attributes(
        root, {semconv.AGENTMESH_RUN_PAUSED: True, semconv.GEN_AI_CONVERSATION_ID: "thread-1"}
    )
    agents = [f.agent(name, parent=root) for name in NAMES]
    chat = f.chat(parent=agents[0], model="gpt-4o-mini", input_tokens=10, output_tokens=2)
    chat = with_attributes(chat, {"weird": math.nan, "big": inf, "scores": (1.5, math.nan)})
    chat = replace(
        chat,
        events=(SpanEventRecord("retry", chat.start_ns, {"backoff": math.nan, "n": 1}),),
        resource_attributes={**chat.resource_attributes, "host.load": math.nan},
    )
    g = SpanFactory(start_ns=1_700_000_100_000_000_000)
    resumed = g.workflow("team", run_id="run-resumed")
    resumed = with_attributes(
        resumed,
        {
            semconv.AGENTMESH_RESUME_FROM_RUN_ID: "run-paused",
            semconv.AGENTMESH_RUN_RESUMED: True,
            semconv.GEN_AI_CONVERSATION_ID: "thread-1",
        },
    )
    async with Pipeline(store) as pipeline:
        assert pipeline.offer([root, *agents, chat])
        await pipeline.drain()
        assert pipeline.offer([resumed, g.agent("writer", parent=resumed)])
        await pipeline.drain()
    await store.write_detection(
        Detection(
            id="det-1",
            type="handoff_loop",
            severity="error",
            trace_id=f.trace_id,
            run_id="run-paused",
            agent=NAMES[0],
            span_ids=(agents[0].span_id, agents[1].span_id),
            explanation="loop",
            detected_at_ns=chat.end_ns,
            details={"ratio": inf} if infinite else {"ratio": 2.5},
        )
    )


def _read(out: Path, table: str, fmt: str) -> list[dict[str, Any]]:
    """A table's rows as read back: JSON lines strictly, CSV cells as text."""
    path = out / f"{table}.{fmt}"
    if fmt == "json":
        return [_strict(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))
    return pq.read_table(path).to_pylist()


def _json_cell(value: Any, fmt: str) -> Any:
    """A JSON column's value: an object in JSON lines, strict JSON text in CSV and Parquet."""
    return value if fmt == "json" else _strict(value)


def _list_cell(value: Any, fmt: str) -> Any:
    """A list column's value: a JSON array in CSV, a list in JSON lines and Parquet."""
    return _strict(value) if fmt == "csv" else value


@pytest.fixture(params=["duckdb", "memory", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SpanStore]:
    kind: str = request.param
    if kind == "postgres":
        host, port = request.getfixturevalue("postgres_address")
        dsn = os.environ.get(
            "AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test"
        )
        async with scratch_schema(dsn) as schema, PostgresStore(dsn, schema=schema) as pg:
            yield pg
        return
    opened: AbstractAsyncContextManager[SpanStore] = (
        DuckDBStore(tmp_path / "x.duckdb") if kind == "duckdb" else MemoryStore()
    )
    async with opened as s:
        yield s


@dataclass(frozen=True)
class Exported:
    """The populated store and its export in one format."""

    store: SpanStore
    out: Path
    fmt: str
    counts: dict[str, int]
    infinite: bool


@pytest.fixture(params=["json", "csv", "parquet"])
async def exported(request: pytest.FixtureRequest, store: SpanStore, tmp_path: Path) -> Exported:
    fmt: str = request.param
    infinite = isinstance(store, MemoryStore)
    await _populate(store, infinite=infinite)
    counts = await export_store(store, tmp_path / "out", fmt)
    assert (counts["runs"], counts["detections"]) == (2, 1)
    return Exported(store, tmp_path / "out", fmt, counts, infinite)


async def test_the_runs_table_has_the_fields_and_values_of_the_api_run_listing(
    exported: Exported,
) -> None:
    fmt = exported.fmt
    listed = {run.run_id: run_to_json(run) for run in await exported.store.runs()}
    runs = {row["run_id"]: row for row in _read(exported.out, "runs", fmt)}
    assert set(runs) == {"run-paused", "run-resumed"}
    for run_id, row in runs.items():
        assert set(row) == set(listed[run_id]), run_id
    assert (int(runs["run-paused"]["resumptions"]), int(runs["run-resumed"]["resumptions"])) == (
        1,
        0,
    )
    assert runs["run-paused"]["state"] == "resumed"
    if fmt != "csv":  # CSV cells are text; the other formats keep the API's values as they are
        assert runs == listed


async def test_non_finite_doubles_are_written_as_the_api_writes_them(exported: Exported) -> None:
    fmt = exported.fmt
    big = "Infinity" if exported.infinite else "NaN"
    spans = _read(exported.out, "spans", fmt)  # JSON lines: every line read strictly
    assert len(spans) == exported.counts["spans"] == len(NAMES) + 4  # roots, chat, writer
    for span in spans:
        for column in ("attributes", "events", "resource"):
            _json_cell(span[column], fmt)  # every cell is strict JSON
    chat = next(s for s in spans if "weird" in _json_cell(s["attributes"], fmt))
    attributes = _json_cell(chat["attributes"], fmt)
    assert (attributes["weird"], attributes["big"]) == ("NaN", big)
    assert attributes["scores"] == [1.5, "NaN"]
    assert _json_cell(chat["events"], fmt)[0]["attributes"] == {"backoff": "NaN", "n": 1}
    assert _json_cell(chat["resource"], fmt)["host.load"] == "NaN"
    named = {_json_cell(s["attributes"], fmt).get(semconv.GEN_AI_AGENT_NAME) for s in spans}
    assert set(NAMES) <= named  # the names' text unchanged
    (detection,) = _read(exported.out, "detections", fmt)
    assert _json_cell(detection["details"], fmt) == {"ratio": big if exported.infinite else 2.5}
    if fmt == "json":  # the other tables' lines are JSON too
        for table in ("runs", "agents", "handoffs"):
            assert len(_read(exported.out, table, fmt)) == exported.counts[table]


async def test_list_columns_read_back_as_lists(exported: Exported) -> None:
    fmt = exported.fmt
    runs = {row["run_id"]: row for row in _read(exported.out, "runs", fmt)}
    assert _list_cell(runs["run-paused"]["agents"], fmt) == sorted(NAMES)
    assert _list_cell(runs["run-resumed"]["agents"], fmt) == ["writer"]
    (detection,) = _read(exported.out, "detections", fmt)
    span_ids = _list_cell(detection["span_ids"], fmt)
    assert len(span_ids) == 2
    assert all(isinstance(s, str) and len(s) == 16 for s in span_ids)
