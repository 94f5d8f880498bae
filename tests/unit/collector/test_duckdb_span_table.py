"""Spans as Arrow tables, the DuckDB append path, its dedupe window and schema version 3."""

import json
import math
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from agentmesh.collector import DuckDBStore, SpanEventRecord, SpanRecord
from agentmesh.collector.model import AttributeValue
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.store import CostRow, make_store
from agentmesh.collector.store.codec import (
    attributes_from_json,
    attributes_to_json,
    events_from_json,
)
from agentmesh.collector.store.duckdb_schema import JSON_COMPRESSION, SCHEMA_VERSION
from agentmesh.collector.store.span_table import SPAN_SCHEMA, span_table
from agentmesh.collector.store.usage import chat_usage
from agentmesh.collector.testing import SpanFactory, graph_of
from agentmesh.core import ConfigError, StoreError, semconv

TRICKY: dict[str, AttributeValue] = {
    "text.unicode": "naïve → ✓ 日本語 🙂",
    "text.escapes": 'quote " backslash \\ newline \n tab \t nul \x00',
    "float.sum": 0.1 + 0.2,
    "float.big": 1e16,
    "float.huge": 1e20,
    "float.tiny": 5e-324,
    "float.negative_zero": -0.0,
    "float.integral": 1.0,
    "int.beyond_2_53": 2**53 + 1,
    "int.max": 2**63 - 1,
    "int.min": -(2**63),
    "bool.true": True,
    "bool.false": False,
    "list.str": ["a", "ß"],
    "list.int": [2**60, -1],
    "list.float": [0.5, 1e300],
    "list.bool": [True, False],
    "list.empty": [],
}


def _chat(f: SpanFactory, **attributes: AttributeValue) -> SpanRecord:
    span = f.chat(parent=None, model="m-1", input_tokens=7, output_tokens=3, cost_usd=0.5)
    return replace(span, attributes={**span.attributes, **attributes})


def _run(f: SpanFactory, run_id: str = "run-1") -> list[SpanRecord]:
    root = f.workflow("w", run_id=run_id)
    agent = f.agent("researcher", parent=root)
    return [
        root,
        agent,
        f.chat(parent=agent, model="big", input_tokens=10, output_tokens=5, cost_usd=0.25),
        f.chat(parent=agent, model="big", input_tokens=20, output_tokens=5, cost_usd=0.5),
    ]


# --- span_table -------------------------------------------------------------------------------


def test_span_table_has_the_store_columns_and_usage() -> None:
    f = SpanFactory(service_name="app")
    spans = [f.workflow("w", run_id="run-9"), _chat(f)]
    table = span_table(spans)
    assert table.schema == SPAN_SCHEMA
    assert SPAN_SCHEMA.names[:2] == ["trace_id", "span_id"]
    assert table.num_rows == 2
    rows = table.to_pylist()
    assert [r["span_id"] for r in rows] == [s.span_id for s in spans]
    assert [r["operation"] for r in rows] == [spans[0].operation, semconv.Operation.CHAT]
    assert rows[0]["run_id"] == "run-9"
    assert [r["service_name"] for r in rows] == ["app", "app"]
    assert (rows[0]["model"], rows[0]["input_tokens"], rows[0]["cost_usd"]) == (None, None, None)
    assert (rows[1]["model"], rows[1]["input_tokens"], rows[1]["output_tokens"]) == ("m-1", 7, 3)
    assert rows[1]["cost_usd"] == 0.5
    assert span_table([]).num_rows == 0
    assert span_table([]).schema == SPAN_SCHEMA


@pytest.mark.parametrize(
    "usage",
    [
        {},
        {semconv.GEN_AI_RESPONSE_MODEL: "", semconv.GEN_AI_REQUEST_MODEL: "req"},
        {semconv.GEN_AI_RESPONSE_MODEL: 5, semconv.GEN_AI_REQUEST_MODEL: ""},
        {semconv.GEN_AI_USAGE_INPUT_TOKENS: True, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7.0},
        {semconv.GEN_AI_USAGE_INPUT_TOKENS: 7.5, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: "9"},
        {semconv.AGENTMESH_COST_USD: 3, semconv.GEN_AI_USAGE_INPUT_TOKENS: -(2**63)},
        {semconv.AGENTMESH_COST_USD: False},
        {semconv.AGENTMESH_COST_USD: -0.0},
        {semconv.AGENTMESH_COST_USD: "0.5"},
    ],
)
def test_usage_columns_match_chat_usage(usage: dict[str, AttributeValue]) -> None:
    f = SpanFactory()
    base = {semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT}
    span = replace(f.chat(parent=None), attributes={**base, **usage})
    expected = chat_usage(span)
    assert expected is not None
    row = span_table([span]).to_pylist()[0]
    got = (row["model"], row["input_tokens"], row["output_tokens"], row["cost_usd"])
    assert got == (
        expected.model,
        expected.input_tokens,
        expected.output_tokens,
        expected.cost_usd,
    )


def test_span_table_json_decodes_to_the_same_values() -> None:
    f = SpanFactory()
    event = SpanEventRecord("e", 5, {"k": 2**62, "u": "ü"})
    span = replace(_chat(f, **TRICKY), events=(event,), resource_attributes={"r": "é", "n": 1})
    row = span_table([span]).to_pylist()[0]
    attributes = attributes_from_json(row["attributes"])
    assert attributes == dict(span.attributes)
    for key, value in span.attributes.items():  # same types, not only equal values
        assert type(attributes[key]) is type(value), key
        if isinstance(value, float):
            assert math.copysign(1.0, attributes[key]) == math.copysign(1.0, value)  # type: ignore[arg-type]
    assert events_from_json(row["events"]) == (event,)
    assert attributes_from_json(row["resource"]) == {"r": "é", "n": 1}
    assert json.loads(row["attributes"]) == json.loads(json.dumps(dict(span.attributes)))
    assert "naïve" in row["attributes"]  # UTF-8, not \\u escapes


def test_non_finite_doubles_are_stored_as_null_and_read_as_nan() -> None:
    f = SpanFactory()
    span = replace(
        _chat(f, **{"x.nan": math.nan, "x.inf": math.inf, "x.list": [1.0, -math.inf]}),
        events=(SpanEventRecord("e", 1, {"y": math.nan}),),
    )
    row = span_table([span]).to_pylist()[0]
    stored = json.loads(row["attributes"])  # valid JSON: DuckDB's JSON functions can read it
    assert (stored["x.nan"], stored["x.inf"], stored["x.list"]) == (None, None, [1.0, None])
    back = attributes_from_json(row["attributes"])
    assert math.isnan(back["x.nan"])  # type: ignore[arg-type]
    assert math.isnan(back["x.inf"])  # type: ignore[arg-type]
    assert back["x.list"][0] == 1.0  # type: ignore[index]
    assert math.isnan(back["x.list"][1])  # type: ignore[index]
    assert math.isnan(events_from_json(row["events"])[0].attributes["y"])  # type: ignore[arg-type]
    con = duckdb.connect()
    try:
        assert con.execute("SELECT json_valid(?)", [row["attributes"]]).fetchone() == (True,)
    finally:
        con.close()


def test_values_orjson_refuses_fall_back_exactly() -> None:
    f = SpanFactory()
    span = _chat(f, **{"int.huge": 2**70, "surrogate": "a\ud800b", "nan": math.nan})
    row = span_table([span]).to_pylist()[0]
    back = attributes_from_json(row["attributes"])
    assert back["int.huge"] == 2**70
    assert back["surrogate"] == "a\ud800b"
    assert math.isnan(back["nan"])  # type: ignore[arg-type]


def _build_in_worker(seed: int) -> Any:
    f = SpanFactory(trace_id=f"{seed:032x}")
    return span_table(_run(f))


def test_span_table_runs_in_a_worker_process() -> None:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        table = pool.submit(_build_in_worker, 7).result(timeout=120)
    assert table.schema == SPAN_SCHEMA
    assert table.num_rows == 4
    assert pickle.loads(pickle.dumps(table)).equals(table)


# --- write_span_table -------------------------------------------------------------------------


async def test_write_span_table_round_trips_and_dedupes(tmp_path: Path) -> None:
    f = SpanFactory()
    spans = _run(f)
    async with DuckDBStore(tmp_path / "s.duckdb") as store:
        table = span_table([*spans, spans[0]])  # a duplicate inside the table
        assert await store.write_span_table(table) == 4
        assert await store.write_span_table(table) == 0  # re-delivered
        assert await store.write_span_table(span_table([])) == 0
        assert await store.spans(f.trace_id) == spans
        assert await store.count_spans() == 4


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda t: t.drop_columns(["cost_usd"]), r"lacks column\(s\) cost_usd: double"),
        (lambda t: t.append_column("extra", pa.array([1] * t.num_rows)), "extra column"),
        (
            lambda t: t.set_column(5, "start_ns", t.column("start_ns").cast(pa.string())),
            "column 5 is 'start_ns: string', expected 'start_ns: int64'",
        ),
        (lambda t: t.rename_columns(["tid", *t.column_names[1:]]), "column 0 is 'tid: string'"),
        (lambda t: t.to_pylist(), "expected a pyarrow.Table of spans, got list"),
    ],
)
async def test_write_span_table_refuses_another_schema(
    tmp_path: Path, mangle: Any, message: str
) -> None:
    table = span_table(_run(SpanFactory()))
    async with DuckDBStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(StoreError, match=message):
            await store.write_span_table(mangle(table))
        assert await store.count_spans() == 0


async def test_a_failed_append_does_not_mark_its_spans_stored(tmp_path: Path) -> None:
    spans = _run(SpanFactory())
    good = span_table(spans)
    names = good.column("name").to_pylist()
    bad = good.set_column(3, "name", pa.array([None, *names[1:]], pa.string()))  # NOT NULL
    async with DuckDBStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(StoreError, match="NOT NULL"):
            await store.write_span_table(bad)
        assert await store.count_spans() == 0
        assert await store.write_span_table(good) == 4


# --- the dedupe window and duplicate-proof reads ----------------------------------------------


async def _duplicate_proof_reads(store: DuckDBStore, f: SpanFactory, spans: list[SpanRecord]):
    assert await store.count_spans() == len(spans)
    assert await store.spans(f.trace_id) == spans
    assert await store.costs(group_by="model") == [CostRow("big", 2, 30, 10, 0.75)]
    assert await store.costs(group_by="agent") == [CostRow("researcher", 2, 30, 10, 0.75)]
    (run,) = await store.runs()
    assert (run.span_count, run.llm_calls, run.cost_usd) == (4, 2, 0.75)


async def test_redelivery_past_the_window_is_stored_but_read_once(tmp_path: Path) -> None:
    f = SpanFactory()
    spans = _run(f)
    path = tmp_path / "s.duckdb"
    async with DuckDBStore(path, dedupe_spans=4) as store:
        assert await store.write_spans(spans) == 4
        await store.write_graph(graph_of(spans))
        assert await store.write_spans(spans[:2]) == 0  # inside the window: dropped
        assert await store.write_spans(_run(SpanFactory())) == 4  # evicts the first trace
        assert await store.write_spans(spans[1:]) == 3  # past the window: stored again
        assert await store.write_spans(spans[1:]) == 0  # ... and remembered again
        con_rows = await store._call(  # pyright: ignore[reportPrivateUsage]
            lambda con: con.execute("SELECT count(*) FROM spans").fetchone()
        )
        assert con_rows == (11,)  # 8 spans, 3 of them twice
        assert await store.count_spans() == 8
        assert await store.spans(f.trace_id) == spans
        assert [r.span_count for r in await store.runs()] == [4]
    async with DuckDBStore(path, dedupe_spans=0) as store:  # no window after the restart
        assert await store.write_spans(spans) == 4
        assert await store.count_spans() == 8
        assert await store.spans(f.trace_id) == spans
        assert await store.costs(group_by="model") == [CostRow("big", 2, 30, 10, 0.75)]


async def test_every_read_is_exact_with_duplicates_stored(tmp_path: Path) -> None:
    f = SpanFactory()
    spans = _run(f)
    async with DuckDBStore(tmp_path / "s.duckdb", dedupe_spans=0) as store:
        for _ in range(3):
            assert await store.write_spans(spans) == 4  # no window: every copy is written
        await store.write_graph(graph_of(spans))
        await _duplicate_proof_reads(store, f, spans)


async def test_the_first_stored_copy_is_the_one_read(tmp_path: Path) -> None:
    f = SpanFactory()
    first = f.workflow("w")
    second = replace(first, name="changed")
    async with DuckDBStore(tmp_path / "s.duckdb", dedupe_spans=0) as store:
        await store.write_spans([first])
        await store.write_spans([second])
        assert await store.spans(f.trace_id) == [first]


async def test_reopening_remembers_the_latest_spans(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    old, new = _run(SpanFactory()), _run(SpanFactory())
    async with DuckDBStore(path) as store:
        await store.write_spans(old)
        await store.write_spans(new)
    async with DuckDBStore(path, dedupe_spans=4) as store:  # room for the last 4 keys only
        assert await store.write_spans(new) == 0
        assert await store.write_spans(old) == 4
        assert await store.count_spans() == 8


async def test_window_evicts_whole_traces_oldest_first(tmp_path: Path) -> None:
    a, b, c = (_run(SpanFactory()) for _ in range(3))
    async with DuckDBStore(tmp_path / "s.duckdb", dedupe_spans=8) as store:
        await store.write_spans(a[:2])
        await store.write_spans(b)
        await store.write_spans(a[2:])  # a is written to again: b is now the oldest
        await store.write_spans(c)  # 12 keys > 8: b goes as a whole
        assert await store.write_spans(a) == 0
        assert await store.write_spans(c) == 0
        assert await store.write_spans(b) == 4  # evicts a (the oldest now)
        assert await store.write_spans(c[:1]) == 0  # a re-delivery also counts as a use
        assert await store.write_spans(a) == 4


def test_negative_window_is_refused() -> None:
    with pytest.raises(StoreError, match="dedupe_spans"):
        DuckDBStore(":memory:", dedupe_spans=-1)


# --- schema version 3 and its upgrade ---------------------------------------------------------

_V2_SPANS = (
    "CREATE TABLE spans (trace_id VARCHAR NOT NULL, span_id VARCHAR NOT NULL, "
    "parent_span_id VARCHAR, name VARCHAR NOT NULL, kind VARCHAR NOT NULL, "
    "start_ns BIGINT NOT NULL, end_ns BIGINT NOT NULL, status_code VARCHAR NOT NULL, "
    "status_message VARCHAR NOT NULL, operation VARCHAR, run_id VARCHAR, "
    "service_name VARCHAR, scope_name VARCHAR NOT NULL, attributes VARCHAR NOT NULL, "
    "events VARCHAR NOT NULL, resource VARCHAR NOT NULL, model VARCHAR, input_tokens BIGINT, "
    "output_tokens BIGINT, cost_usd DOUBLE, PRIMARY KEY (trace_id, span_id))"
)


def _constraints(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT constraint_type FROM duckdb_constraints() "
        "WHERE table_name = 'spans' AND constraint_type <> 'NOT NULL'"
    ).fetchall()


async def test_duckdb_upgrades_a_version_2_file_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    f = SpanFactory(service_name="app")
    spans = _run(f)
    con = duckdb.connect(str(path))  # what a version-2 collector wrote
    try:
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        con.execute("INSERT INTO schema_version VALUES (2)")
        con.execute(_V2_SPANS)
        con.register("batch", span_table(spans))
        con.execute("INSERT INTO spans SELECT * FROM batch")
        assert _constraints(con) == [("PRIMARY KEY",)]
    finally:
        con.close()
    async with DuckDBStore(path) as store:
        assert await store.spans(f.trace_id) == spans
        assert await store.write_spans(spans) == 0  # the window was filled from the file
        await store.write_graph(graph_of(spans))
        assert await store.costs(group_by="model") == [CostRow("big", 2, 30, 10, 0.75)]
        assert await store.write_spans(_run(SpanFactory())) == 4
        assert await store.count_spans() == 8
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert SCHEMA_VERSION == 8
        run_columns = [row[0] for row in con.execute("DESCRIBE runs").fetchall()]
        # version 6, then version 7, then version 8
        assert run_columns[-6:] == [
            *("paused", "resumed_from", "conversation_id", "resumed", "error", "interrupted")
        ]
        assert _constraints(con) == []
        handoff_columns = [row[0] for row in con.execute("DESCRIBE handoffs").fetchall()]
        assert handoff_columns[-1] == "checkpoint_id"  # version 4: each handoff's checkpoint
        assert {row[0] for row in con.execute("SHOW TABLES").fetchall()} >= {"spans"}
        assert "spans_v3" not in {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        columns = [row[0] for row in con.execute("DESCRIBE spans").fetchall()]
        assert columns == SPAN_SCHEMA.names
    finally:
        con.close()


async def test_a_new_file_has_no_key_on_spans(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    async with DuckDBStore(path):
        pass
    con = duckdb.connect(str(path))
    try:
        assert _constraints(con) == []
    finally:
        con.close()


# --- DuckDB resources and settings ------------------------------------------------------------


async def test_memory_limit_and_insertion_order_are_set(tmp_path: Path) -> None:
    async with DuckDBStore(tmp_path / "s.duckdb", memory_limit="256MiB") as store:
        settings = await store._call(  # pyright: ignore[reportPrivateUsage]
            lambda con: con.execute(
                "SELECT current_setting('memory_limit'), "
                "current_setting('preserve_insertion_order')"
            ).fetchone()
        )
    assert settings == ("256.0 MiB", False)


async def test_the_checkpoint_threshold_is_set(tmp_path: Path) -> None:
    async with DuckDBStore(tmp_path / "s.duckdb") as store:
        default = await store._call(  # pyright: ignore[reportPrivateUsage]
            lambda con: con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        )
    async with DuckDBStore(tmp_path / "t.duckdb", checkpoint_threshold="32MiB") as store:
        chosen = await store._call(  # pyright: ignore[reportPrivateUsage]
            lambda con: con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        )
    assert (default, chosen) == (("244.1 MiB",), ("32.0 MiB",))


async def test_memory_bytes_counts_what_duckdb_holds(tmp_path: Path) -> None:
    async with DuckDBStore(tmp_path / "s.duckdb") as store:
        empty = await store.memory_bytes()
        f = SpanFactory()
        root = f.workflow("w", run_id="r")
        agents = [f.agent(f"a{i}", parent=root) for i in range(2_000)]
        await store.write_spans(
            [root, *(replace(a, attributes={"note": f"{i:x}" * 500}) for i, a in enumerate(agents))]
        )
        # appended since the last checkpoint: in DuckDB's memory until one is written
        assert await store.memory_bytes() >= empty + 1_000_000


async def test_a_bad_memory_limit_is_a_store_error(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb", memory_limit="lots")
    with pytest.raises(StoreError, match="DuckDB store"):
        await store.open()
    await store.close()


def test_settings_reach_the_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_DUCKDB_MEMORY_LIMIT", "512MiB")
    monkeypatch.setenv("AGENTMESH_COLLECTOR_DUCKDB_DEDUPE_SPANS", "1000")
    settings = CollectorSettings.load(duckdb_path=tmp_path / "a.duckdb")
    assert (settings.duckdb_memory_limit, settings.duckdb_dedupe_spans) == ("512MiB", 1000)
    store = make_store(settings)
    assert isinstance(store, DuckDBStore)
    assert store._memory_limit == "512MiB"  # pyright: ignore[reportPrivateUsage]
    assert store._checkpoint_threshold == "256MB"  # pyright: ignore[reportPrivateUsage]
    monkeypatch.setenv("AGENTMESH_COLLECTOR_DUCKDB_CHECKPOINT_THRESHOLD", "64MiB")
    store = make_store(CollectorSettings.load())
    assert isinstance(store, DuckDBStore)
    assert store._checkpoint_threshold == "64MiB"  # pyright: ignore[reportPrivateUsage]
    monkeypatch.setenv("AGENTMESH_COLLECTOR_DUCKDB_CHECKPOINT_THRESHOLD", "10%")
    with pytest.raises(ConfigError, match="DUCKDB_CHECKPOINT_THRESHOLD"):
        CollectorSettings.load()
    monkeypatch.delenv("AGENTMESH_COLLECTOR_DUCKDB_CHECKPOINT_THRESHOLD")
    monkeypatch.setenv("AGENTMESH_COLLECTOR_DUCKDB_MEMORY_LIMIT", "a lot")
    with pytest.raises(ConfigError, match="DUCKDB_MEMORY_LIMIT"):
        CollectorSettings.load()


async def test_a_version_3_file_gets_the_handoff_checkpoint_column(tmp_path: Path) -> None:
    from agentmesh.collector.store.duckdb_schema import LEGACY_GRAPH_TABLES, SCHEMA

    path = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(path))  # what a version-3 collector wrote
    try:
        for statement in (*SCHEMA[:2], SCHEMA[-1], *LEGACY_GRAPH_TABLES):
            con.execute(statement.replace("checkpoint_id VARCHAR,", ""))
        con.execute("INSERT INTO schema_version VALUES (3)")
        assert "checkpoint_id" not in {r[0] for r in con.execute("DESCRIBE handoffs").fetchall()}
        con.execute("INSERT INTO runs VALUES ('t', 'r', NULL, NULL, NULL, 1, 2, 2, 0, 0, 0, 0, 1)")
        con.execute("INSERT INTO handoffs VALUES ('t', 0, 'a', 'b', 's', 1, 'edge', NULL, NULL)")
    finally:
        con.close()
    async with DuckDBStore(path):
        pass
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        rows = con.execute("SELECT source, target, checkpoint_id FROM handoffs").fetchall()
        assert rows == [("a", "b", None)]  # the old row is kept, with no checkpoint
    finally:
        con.close()


def test_codec_reads_what_orjson_refuses_through_the_standard_library() -> None:
    written = attributes_to_json({"x": math.nan, "big": 2**70, "s": "é"})
    assert "NaN" in written  # the standard library's literal, which orjson does not parse
    back = attributes_from_json(written)
    assert math.isnan(float(back["x"]))  # pyright: ignore[reportArgumentType]
    assert back["big"] == 2**70
    assert back["s"] == "é"
    assert events_from_json("[]") == ()


async def test_json_columns_of_a_new_file_are_zstd(tmp_path: Path) -> None:
    # DuckDB 2 stores them as zstd when asked: less CPU per appended span and half the file
    path = tmp_path / "zstd.duckdb"
    factory = SpanFactory()
    spans = [factory.chat(parent=None, model="m", input_tokens=n) for n in range(3000)]
    async with DuckDBStore(str(path)) as store:
        await store.write_span_table(span_table(spans))
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
        rows = con.execute(
            "SELECT column_name, list(DISTINCT compression) FROM pragma_storage_info('spans') "
            "WHERE segment_type = 'VARCHAR' GROUP BY column_name"
        ).fetchall()
        stored = con.execute("SELECT count(*) FROM spans").fetchone()
    finally:
        con.close()
    by_column = {name: set(methods) for name, methods in rows}
    assert stored == (3000,)
    if JSON_COMPRESSION:
        assert by_column["attributes"] == {"ZSTD"}
        assert "ZSTD" not in by_column["name"]  # other text columns keep DuckDB's choice
    else:
        assert int(duckdb.__version__.split(".")[0]) < 2
