"""One behaviour, every backend: the SpanStore contract."""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from agentmesh.collector import (
    Detection,
    DuckDBStore,
    GraphBuilder,
    MemoryStore,
    RunGraph,
    SpanEventRecord,
    SpanRecord,
    SpanStore,
)
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import StoreError, semconv

BACKENDS = ["duckdb", "memory"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SpanStore]:
    backend: SpanStore
    if request.param == "duckdb":
        backend = await DuckDBStore(tmp_path / "nested" / "store.duckdb").open()
    else:
        backend = MemoryStore()
    yield backend
    await backend.close()


def _run(f: SpanFactory, run_id: str = "run-1", loops: int = 1) -> list[SpanRecord]:
    root = f.workflow("research", run_id=run_id)
    spans = [root]
    for _ in range(loops):
        s = f.agent("supervisor", parent=root)
        r = f.agent("researcher", parent=root, handoff_from="supervisor", context_size=9)
        spans += [s, r, f.chat(parent=r, input_tokens=10, output_tokens=5, cost_usd=0.25)]
    return spans


def _graph(spans: list[SpanRecord]) -> RunGraph:
    builder = GraphBuilder()
    (trace_id,) = builder.add(spans)
    graph = builder.get(trace_id)
    assert graph is not None
    return graph


def _detection(trace_id: str, *, id_: str = "det-1", at: int = 5, **changes: object) -> Detection:
    detection = Detection(
        id=id_,
        type="handoff_loop",
        severity="error",
        trace_id=trace_id,
        run_id="run-1",
        agent="supervisor",
        span_ids=("0000000000000001", "0000000000000002"),
        explanation="agent cycle supervisor → researcher → supervisor repeated 4 times",
        detected_at_ns=at,
        details={"cycle": ["supervisor", "researcher"], "repetitions": 4, "workflow": None},
    )
    return replace(detection, **changes)  # type: ignore[arg-type]


async def test_empty_store(store: SpanStore) -> None:
    assert await store.count_spans() == 0
    assert await store.spans("0" * 32) == []
    assert await store.runs() == []
    assert await store.graph("0" * 32) is None
    assert await store.detections() == []


async def test_spans_round_trip_exactly(store: SpanStore) -> None:
    f = SpanFactory(service_name="app")
    rich = replace(
        f.span(
            "chat gpt-4o",
            kind="client",
            status_code="error",
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
                semconv.AGENTMESH_COST_USD: 0.000412,
                semconv.GEN_AI_REQUEST_STREAM: True,
                semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop", "length"],
                semconv.AGENTMESH_ROUTE_SCORES: [0.5, 1.0],
                "custom.unicode": "naïve → ✓",
            },
        ),
        status_message="rate limited",
        events=(
            SpanEventRecord(semconv.EVENT_HANDOFF, 123, {semconv.AGENTMESH_HANDOFF_KIND: "edge"}),
            SpanEventRecord("empty", 124),
        ),
    )
    spans = [*_run(f), rich]
    assert await store.write_spans(spans) == len(spans)
    stored = await store.spans(f.trace_id)
    assert stored == sorted(spans, key=lambda s: (s.start_ns, s.span_id))
    back = next(s for s in stored if s.span_id == rich.span_id)
    assert back == rich
    assert isinstance(back.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], int)
    assert isinstance(back.attributes[semconv.AGENTMESH_COST_USD], float)
    assert isinstance(back.attributes[semconv.AGENTMESH_ROUTE_SCORES], list)


async def test_redelivered_spans_are_stored_once(store: SpanStore) -> None:
    f = SpanFactory()
    spans = _run(f)
    assert await store.write_spans(spans[:2]) == 2
    assert await store.write_spans(spans) == len(spans) - 2
    assert await store.write_spans([spans[0], spans[0]]) == 0
    assert await store.write_spans([]) == 0
    assert await store.count_spans() == len(spans)
    other = SpanFactory()
    assert await store.write_spans([*_run(other), *_run(other)[:0]]) == 4
    assert await store.count_spans() == len(spans) + 4


async def test_duplicates_inside_one_batch_count_once(store: SpanStore) -> None:
    span = SpanFactory().workflow("w")
    assert await store.write_spans([span, span, span]) == 1
    assert await store.count_spans() == 1


async def test_same_span_id_in_two_traces_is_two_spans(store: SpanStore) -> None:
    a, b = SpanFactory().workflow("a"), SpanFactory().workflow("b")
    assert a.span_id == b.span_id
    assert await store.write_spans([a, b]) == 2


async def test_graph_rows_and_run_summary(store: SpanStore) -> None:
    f = SpanFactory(service_name="app")
    spans = _run(f, loops=2)
    graph = _graph(spans)
    await store.write_graph(graph)
    stored = await store.graph(f.trace_id)
    assert stored is not None
    assert stored.agents == sorted(graph.agents.values(), key=lambda a: a.name)
    assert [a.name for a in stored.agents] == ["researcher", "supervisor"]
    assert stored.agents[0].span_ids == graph.agents["researcher"].span_ids
    assert stored.agents[0].cost_usd == 0.5
    assert stored.handoffs == graph.handoffs
    assert [(h.seq, h.source, h.target, h.context_size) for h in stored.handoffs] == [
        (0, "supervisor", "researcher", 9),
        (1, "supervisor", "researcher", 9),
    ]
    run = stored.run
    assert (run.trace_id, run.run_id, run.workflow_name, run.service_name) == (
        f.trace_id,
        "run-1",
        "research",
        "app",
    )
    assert (run.start_ns, run.end_ns) == (graph.start_ns, graph.end_ns)
    assert run.agents == ("researcher", "supervisor")
    assert (run.handoffs, run.span_count, run.llm_calls) == (2, 7, 2)
    assert (run.input_tokens, run.output_tokens, run.cost_usd) == (20, 10, 0.5)
    assert run.complete
    assert run.detections == 0
    assert await store.runs() == [run]


async def test_writing_a_graph_again_replaces_its_rows(store: SpanStore) -> None:
    f = SpanFactory()
    spans = _run(f, loops=2)
    await store.write_graph(_graph(spans))
    smaller = _graph([spans[0], spans[1]])  # only the workflow and one supervisor span
    await store.write_graph(smaller)
    stored = await store.graph(f.trace_id)
    assert stored is not None
    assert [a.name for a in stored.agents] == ["supervisor"]
    assert stored.handoffs == []
    assert stored.run.span_count == 2
    assert len(await store.runs()) == 1


async def test_runs_latest_first_with_limit_and_detection_counts(store: SpanStore) -> None:
    factories = [SpanFactory(start_ns=start) for start in (3_000, 1_000, 2_000)]
    for i, f in enumerate(factories):
        await store.write_graph(_graph(_run(f, run_id=f"run-{i}")))
    await store.write_detection(_detection(factories[1].trace_id, id_="d1"))
    await store.write_detection(_detection(factories[1].trace_id, id_="d2"))
    runs = await store.runs()
    assert [r.run_id for r in runs] == ["run-0", "run-2", "run-1"]
    assert [r.detections for r in runs] == [0, 0, 2]
    assert [r.run_id for r in await store.runs(limit=2)] == ["run-0", "run-2"]
    with pytest.raises(StoreError):
        await store.runs(limit=0)


async def test_detections_are_idempotent_by_id_and_round_trip(store: SpanStore) -> None:
    f1, f2 = SpanFactory(), SpanFactory()
    first = _detection(f1.trace_id, id_="det-b", at=20)
    assert await store.write_detection(first)
    assert not await store.write_detection(replace(first, explanation="changed"))
    later = _detection(f2.trace_id, id_="det-a", at=30, agent=None, details={})
    tie = _detection(f1.trace_id, id_="det-a0", at=20)
    assert await store.write_detection(later)
    assert await store.write_detection(tie)
    assert await store.detections() == [tie, first, later]
    assert await store.detections(f1.trace_id) == [tie, first]
    assert await store.detections("f" * 32) == []


async def test_concurrent_writes_are_safe(store: SpanStore) -> None:
    f = SpanFactory()
    spans = _run(f, loops=10)
    results = await asyncio.gather(*(store.write_spans([s, spans[0]]) for s in spans))
    assert sum(results) == len(spans)
    assert await store.count_spans() == len(spans)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.count_spans(),
        lambda s: s.write_spans([SpanFactory().workflow("w")]),
        lambda s: s.runs(),
        lambda s: s.detections(),
    ],
)
async def test_closed_store_refuses_calls(
    store: SpanStore, call: Callable[[SpanStore], object]
) -> None:
    await store.close()
    await store.close()  # twice is harmless
    with pytest.raises(StoreError, match="closed"):
        await call(store)  # type: ignore[misc]


# --- DuckDB only ------------------------------------------------------------------------------


async def test_duckdb_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "agentmesh.duckdb"
    f = SpanFactory()
    spans = _run(f)
    async with DuckDBStore(path) as store:
        await store.write_spans(spans)
        await store.write_graph(_graph(spans))
        await store.write_detection(_detection(f.trace_id))
    async with DuckDBStore(path) as store:
        assert await store.spans(f.trace_id) == spans
        assert (await store.runs())[0].detections == 1
        assert await store.write_spans(spans) == 0


async def test_duckdb_schema_and_version(tmp_path: Path) -> None:
    path = tmp_path / "agentmesh.duckdb"
    async with DuckDBStore(path):
        pass
    con = duckdb.connect(str(path))
    try:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        assert {"spans", "runs", "agents", "handoffs", "detections", "schema_version"} <= tables
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        con.execute("UPDATE schema_version SET version = 99")
    finally:
        con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        await DuckDBStore(path).open()


async def test_duckdb_errors_become_store_errors(tmp_path: Path) -> None:
    not_a_db = tmp_path / "garbage.duckdb"
    not_a_db.write_text("this is not a database")
    store = DuckDBStore(not_a_db)
    with pytest.raises(StoreError, match=r"DuckDB store .*garbage\.duckdb") as info:
        await store.open()
    assert isinstance(info.value.__cause__, duckdb.Error)
    assert "\n" not in str(info.value)
    await store.close()


async def test_duckdb_calls_run_off_the_event_loop_thread(tmp_path: Path) -> None:
    import threading

    seen: list[str] = []
    store = await DuckDBStore(tmp_path / "t.duckdb").open()
    try:
        await store._call(lambda con: seen.append(threading.current_thread().name))
        await store._call(lambda con: seen.append(threading.current_thread().name))
    finally:
        await store.close()
    assert seen[0] == seen[1]
    assert seen[0] != threading.current_thread().name
    assert seen[0].startswith("agentmesh-duckdb")
