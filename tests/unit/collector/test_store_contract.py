"""One behaviour, every backend: the SpanStore contract."""

import asyncio
import json
import math
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.util.types import AttributeValue

from agentmesh.collector import (
    Detection,
    DuckDBStore,
    MemoryStore,
    RunGraph,
    SpanEventRecord,
    SpanRecord,
    SpanStore,
)
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.store import (
    CostRow,
    PostgresStore,
    Pruned,
    make_store,
    open_store,
)
from agentmesh.collector.store.duckdb_schema import SCHEMA_VERSION
from agentmesh.collector.store.run_pages import run_pages
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, failed, graph_of, with_attributes
from agentmesh.core import StoreError, semconv

BACKENDS = ["duckdb", "memory", "postgres"]


def postgres_dsn(address: tuple[str, int]) -> str:
    """The test database: ``AGENTMESH_TEST_POSTGRES_DSN``, else user postgres, database test."""
    host, port = address
    return os.environ.get(
        "AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test"
    )


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SpanStore]:
    backend: SpanStore
    if request.param == "postgres":
        dsn = postgres_dsn(request.getfixturevalue("postgres_address"))
        async with scratch_schema(dsn) as schema:  # a fresh schema per test, dropped after
            backend = await PostgresStore(dsn, schema=schema, min_size=1, max_size=4).open()
            try:
                yield backend
            finally:
                await backend.close()
        return
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
        r = with_attributes(r, {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: f"ck-{r.span_id}"})
        spans += [s, r, f.chat(parent=r, input_tokens=10, output_tokens=5, cost_usd=0.25)]
    return spans


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
    assert await store.costs() == []
    assert await store.costs(group_by="model") == []


async def test_open_is_idempotent(store: SpanStore) -> None:
    assert await store.open() is store
    assert await store.open() is store
    assert await store.count_spans() == 0


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


async def test_spans_of_many_traces_in_one_read(store: SpanStore) -> None:
    f, g, h = SpanFactory(service_name="a"), SpanFactory(service_name="b"), SpanFactory()
    nan = replace(g.workflow("w"), attributes={semconv.AGENTMESH_COST_USD: math.nan})
    assert nan.span_id == f.workflow("x").span_id  # one span id in two traces
    spans = [*_run(f), *_run(g), nan, *_run(f)[:1]]  # a re-delivery too
    await store.write_spans(spans)
    found = await store.spans_of([g.trace_id, f.trace_id, h.trace_id, f.trace_id])
    assert set(found) == {f.trace_id, g.trace_id}  # a trace with no span is absent
    for trace_id in (f.trace_id, g.trace_id):
        assert found[trace_id] == await store.spans(trace_id)
    back = next(s for s in found[g.trace_id] if s.span_id == nan.span_id)
    assert math.isnan(float(back.attributes[semconv.AGENTMESH_COST_USD]))  # pyright: ignore[reportArgumentType]
    assert await store.spans_of([]) == {}


async def test_traces_with_spans_start_markers_aside(store: SpanStore) -> None:
    f, g, h = SpanFactory(), SpanFactory(), SpanFactory()
    run = _run(f)
    started = g.workflow("w")  # only its start marker is stored: no part of a graph yet
    await store.write_spans([*run, g.marker(started)])
    assert await store.traces_with_spans([h.trace_id, f.trace_id, g.trace_id, f.trace_id]) == {
        f.trace_id
    }
    await store.write_spans([started])
    assert await store.traces_with_spans([f.trace_id, g.trace_id]) == {f.trace_id, g.trace_id}
    assert await store.traces_with_spans([]) == set()


async def test_duckdb_traces_with_spans_remembers_what_the_file_held(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    f, g = SpanFactory(), SpanFactory()
    async with DuckDBStore(path) as store:  # a collector before its restart
        await store.write_spans([*_run(f), g.marker(g.workflow("w"))])
    async with DuckDBStore(path) as store:  # the restarted one: asked before anything else
        assert await store.traces_with_spans([f.trace_id, g.trace_id]) == {f.trace_id}
    async with DuckDBStore(path, dedupe_spans=0) as store:  # without a dedupe window too
        assert await store.traces_with_spans([f.trace_id]) == {f.trace_id}


@pytest.mark.postgres
async def test_postgres_traces_with_spans_sees_another_collectors_spans(
    postgres_address: tuple[str, int],
) -> None:
    dsn = postgres_dsn(postgres_address)
    f = SpanFactory()
    async with (
        scratch_schema(dsn) as schema,
        PostgresStore(dsn, schema=schema, min_size=1, max_size=2) as mine,
        PostgresStore(dsn, schema=schema, min_size=1, max_size=2) as theirs,
    ):
        await theirs.write_spans(_run(f))
        assert await mine.traces_with_spans([f.trace_id, SpanFactory().trace_id]) == {f.trace_id}


async def test_graphs_of_many_runs_in_one_read(store: SpanStore) -> None:
    graphs = [graph_of(_run(SpanFactory(), "run-a")), graph_of(_run(SpanFactory(), "run-b", 3))]
    for graph in graphs:
        await store.write_graph(graph)
    wanted = [g.trace_id for g in graphs]
    found = await store.graphs_of([*wanted, "0" * 32, wanted[0]])
    assert set(found) == set(wanted)  # a trace without a graph is absent
    for trace_id in wanted:
        assert found[trace_id] == await store.graph(trace_id)
    assert len(found[wanted[1]].handoffs) > len(found[wanted[0]].handoffs) > 0
    assert await store.graphs_of([]) == {}


async def test_a_traces_first_spans(store: SpanStore) -> None:
    f = SpanFactory()
    spans = _run(f, loops=3)
    await store.write_spans([*reversed(spans), spans[0]])  # out of order, one re-delivered
    every = await store.spans(f.trace_id)
    assert len(every) == len(spans)
    for limit in (1, 3, len(spans), len(spans) + 5):
        assert await store.spans(f.trace_id, limit=limit) == every[:limit]
    assert await store.spans("0" * 32, limit=2) == []


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
    graph = graph_of(spans)
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
    assert [h.checkpoint_id for h in stored.handoffs] == [
        f"ck-{h.span_id}" for h in graph.handoffs
    ]  # the checkpoint taken at each handoff is part of the stored graph
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
    await store.write_graph(graph_of(spans))
    smaller = graph_of([spans[0], spans[1]])  # only the workflow and one supervisor span
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
        await store.write_graph(graph_of(_run(f, run_id=f"run-{i}")))
    await store.write_detection(_detection(factories[1].trace_id, id_="d1"))
    await store.write_detection(_detection(factories[1].trace_id, id_="d2"))
    runs = await store.runs()
    assert [r.run_id for r in runs] == ["run-0", "run-2", "run-1"]
    assert [r.detections for r in runs] == [0, 0, 2]
    assert [r.run_id for r in await store.runs(limit=2)] == ["run-0", "run-2"]
    with pytest.raises(StoreError):
        await store.runs(limit=0)


async def test_pages_of_runs_that_started_in_one_nanosecond_lose_and_repeat_none(
    store: SpanStore,
) -> None:
    # Windows clocks tick every ~15 ms: runs started in a burst share their start time
    starts = [5_000, 4_000, 4_000, 4_000, 4_000, 3_000]
    for i, start in enumerate(starts):
        trace_id = f"{i:032x}"[::-1]  # trace ids not in the order they were written
        f = SpanFactory(start_ns=start, trace_id=trace_id)
        await store.write_graph(graph_of(_run(f, run_id=f"run-{i}")))
    everything = [(r.start_ns, r.trace_id) for r in await store.runs()]
    assert everything == sorted(everything, key=lambda r: (-r[0], r[1]))
    for size in (1, 2, 3):
        pages: list[list[tuple[int, str]]] = []
        after = None
        while page := [(r.start_ns, r.trace_id) for r in await store.runs(size, after=after)]:
            pages.append(page)
            after = page[-1]
        assert [run for page in pages for run in page] == everything
        assert all(len(page) == size for page in pages[:-1])
        whole = [run async for page in run_pages(store, first=size, most=size) for run in page]
        assert [(r.start_ns, r.trace_id) for r in whole] == everything
    # with the other bounds: after the first run of 4,000, before 5,000, since 3,500
    after = everything[1]
    found = await store.runs(2, since_ns=3_500, until_ns=5_000, after=after)
    assert [(r.start_ns, r.trace_id) for r in found] == everything[2:4]


async def test_a_paused_run_reads_back_paused(store: SpanStore) -> None:
    waiting, finished = SpanFactory(start_ns=2_000), SpanFactory(start_ns=1_000)
    spans = _run(waiting, run_id="run-waiting")
    # the workflow span of a run that stopped for human input says so
    spans[0] = with_attributes(spans[0], {semconv.AGENTMESH_RUN_PAUSED: True})
    await store.write_graph(graph_of(spans))
    await store.write_graph(graph_of(_run(finished, run_id="run-done")))
    runs = await store.runs()
    assert [(r.run_id, r.complete, r.paused) for r in runs] == [
        ("run-waiting", True, True),
        ("run-done", True, False),
    ]
    stored = await store.graph(waiting.trace_id)
    assert stored is not None
    assert stored.run.paused
    (found,) = await store.find_runs("run-waiting", limit=10)
    assert found.paused


async def test_the_runs_that_resume_a_run(store: SpanStore) -> None:
    def resumed(start_ns: int, run_id: str, source: str | None) -> list[SpanRecord]:
        spans = _run(SpanFactory(start_ns=start_ns), run_id=run_id)
        if source is not None:  # its workflow span names the run it continues
            spans[0] = with_attributes(spans[0], {semconv.AGENTMESH_RESUME_FROM_RUN_ID: source})
        return spans

    for start, run_id, source in (
        (1_000, "run-a", None),
        (2_000, "run-b", "run-a"),
        (4_000, "run-c", "run-a"),
        (3_000, "run-d", "run-b"),
    ):
        await store.write_graph(graph_of(resumed(start, run_id, source)))

    async def ids(run_id: str, limit: int = 10) -> list[str]:
        return [r.run_id for r in await store.resumptions(run_id, limit=limit)]

    assert await ids("run-a") == ["run-c", "run-b"]  # latest first
    assert await ids("run-a", limit=1) == ["run-c"]
    assert await ids("run-b") == ["run-d"]
    assert await ids("run-c") == []
    assert await ids("RUN-A") == []  # exactly
    assert {r.run_id: r.resumed_from for r in await store.runs()} == {
        "run-a": None,
        "run-b": "run-a",
        "run-c": "run-a",
        "run-d": "run-b",
    }
    with pytest.raises(StoreError):
        await store.resumptions("run-a", limit=0)


async def test_the_previous_run_of_a_conversation(store: SpanStore) -> None:
    def conversation(spans: list[SpanRecord], name: str | None, resumed: bool) -> RunGraph:
        attributes: dict[str, AttributeValue] = {semconv.AGENTMESH_RUN_RESUMED: resumed}
        if name is not None:
            attributes[semconv.GEN_AI_CONVERSATION_ID] = name
        return graph_of([with_attributes(spans[0], attributes), *spans[1:]])

    runs: dict[str, list[SpanRecord]] = {}
    for start, run_id, name, resumed in (
        (1_000, "run-a", "thread-1", False),
        (2_000, "run-b", "thread-2", False),
        (3_000, "run-c", "thread-1", True),
        (5_000, "run-d", "thread-1", True),
        (4_000, "run-e", None, False),
    ):
        runs[run_id] = _run(SpanFactory(start_ns=start), run_id=run_id)
        await store.write_graph(conversation(runs[run_id], name, resumed))

    async def previous(name: str, before_ns: int) -> str | None:
        found = await store.previous_run(name, before_ns=before_ns)
        return None if found is None else found.run_id

    assert await previous("thread-1", 5_000) == "run-c"  # the latest before, strictly
    assert await previous("thread-1", 3_000) == "run-a"
    assert await previous("thread-1", 1_000) is None
    assert await previous("thread-2", 10_000) == "run-b"
    assert await previous("THREAD-1", 10_000) is None  # exactly
    assert {r.run_id: (r.conversation_id, r.resumed) for r in await store.runs()} == {
        "run-a": ("thread-1", False),
        "run-b": ("thread-2", False),
        "run-c": ("thread-1", True),
        "run-d": ("thread-1", True),
        "run-e": (None, False),
    }
    # a run's newest graph counts: run-c rewritten in another conversation leaves thread-1
    await store.write_graph(conversation(runs["run-c"], "thread-3", True))
    assert await previous("thread-1", 5_000) == "run-a"
    assert await previous("thread-3", 5_000) == "run-c"


async def test_runs_by_workflow(store: SpanStore) -> None:
    for start, run_id, workflow, broken in (
        (1_000, "run-e1", "essay", False),
        (2_000, "run-r1", "research", True),
        (3_000, "run-e2", "essay", True),
        (4_000, "run-e3", "essay", False),
        (5_000, "run-E", "Essay", False),
    ):
        spans = _run(SpanFactory(start_ns=start), run_id=run_id)
        spans[0] = with_attributes(spans[0], {semconv.GEN_AI_WORKFLOW_NAME: workflow})
        if broken:
            spans[0] = failed(spans[0], "Boom")
        await store.write_graph(graph_of(spans))

    async def ids(**filters: Any) -> list[str]:
        return [r.run_id for r in await store.runs(**filters)]

    assert await ids(workflow_name="essay") == ["run-e3", "run-e2", "run-e1"]  # exactly: not Essay
    assert await ids(workflow_name="essay", state="failed") == ["run-e2"]
    assert await ids(workflow_name="research", state="failed") == ["run-r1"]
    assert await ids(workflow_name="essay", limit=1, since_ns=1_500) == ["run-e3"]
    first, second = await store.runs(2, workflow_name="essay")  # pages: the next after these
    after = (second.start_ns, second.trace_id)
    assert [r.run_id for r in await store.runs(2, workflow_name="essay", after=after)] == ["run-e1"]
    assert (first.run_id, first.workflow_name) == ("run-e3", "essay")
    assert await ids(workflow_name="poem") == []


async def test_runs_by_state_and_by_conversation(store: SpanStore) -> None:
    def run(start_ns: int, run_id: str, marks: dict[str, AttributeValue], live: bool) -> RunGraph:
        spans = _run(SpanFactory(start_ns=start_ns), run_id=run_id)
        if live:  # its root has not ended: an agent span says what the run is
            spans = spans[1:]
            marks = {**marks, semconv.AGENTMESH_RUN_ID: run_id}
        spans[0] = with_attributes(spans[0], marks)
        return graph_of(spans)

    paused = {semconv.AGENTMESH_RUN_PAUSED: True}
    for start, run_id, marks, live in (
        (1_000, "run-asked", {**paused, semconv.GEN_AI_CONVERSATION_ID: "t-1"}, False),
        (2_000, "run-done", {semconv.GEN_AI_CONVERSATION_ID: "t-2"}, False),
        (3_000, "run-going", {semconv.GEN_AI_CONVERSATION_ID: "t-1"}, True),
        (4_000, "run-asked-2", paused, False),
    ):
        await store.write_graph(run(start, run_id, marks, live))

    async def ids(**filters: Any) -> list[str]:
        return [r.run_id for r in await store.runs(**filters)]

    assert await ids(state="paused") == ["run-asked-2", "run-asked"]
    assert await ids(state="complete") == ["run-done"]
    assert await ids(state="live") == ["run-going"]
    assert await ids(conversation_id="t-1") == ["run-going", "run-asked"]
    assert await ids(conversation_id="t-1", state="paused") == ["run-asked"]
    assert await ids(conversation_id="t-3") == []
    assert await ids(state="paused", limit=1, since_ns=1_500) == ["run-asked-2"]
    assert await ids(state="paused", until_ns=4_000) == ["run-asked"]
    assert await ids(state="resumed") == []
    # a run that continues run-asked: run-asked no longer waits, it was resumed
    answer = {semconv.AGENTMESH_RESUME_FROM_RUN_ID: "run-asked"}
    await store.write_graph(run(5_000, "run-answered", answer, False))
    assert await ids(state="paused") == ["run-asked-2"]
    assert await ids(state="resumed") == ["run-asked"]
    assert await ids(state="complete") == ["run-answered", "run-done"]
    resumptions = {r.run_id: r.resumptions for r in await store.runs()}
    assert (resumptions["run-asked"], resumptions["run-asked-2"]) == (1, 0)
    with pytest.raises(
        StoreError,
        match="state must be one of live, paused, resumed, failed, interrupted, complete",
    ):
        await store.runs(state="waiting")  # pyright: ignore[reportArgumentType]


async def test_a_failed_run_reads_back_failed_until_a_run_continues_it(store: SpanStore) -> None:
    def broken(start_ns: int, run_id: str, *, root_error: bool) -> list[SpanRecord]:
        spans = _run(SpanFactory(start_ns=start_ns), run_id=run_id)
        spans[2] = failed(spans[2], "RateLimitError")  # the researcher failed
        if root_error:
            spans[0] = failed(spans[0], "RateLimitError")
        return spans

    await store.write_graph(graph_of(broken(1_000, "run-broken", root_error=True)))
    # a step error the app caught (the root ended well) does not fail the run
    await store.write_graph(graph_of(broken(2_000, "run-caught", root_error=False)))
    await store.write_graph(graph_of(_run(SpanFactory(start_ns=3_000), run_id="run-fine")))
    # Ctrl-C: the root span ends without error, the KeyboardInterrupt as its event
    stopped = _run(SpanFactory(start_ns=3_500), run_id="run-stopped")
    ctrl_c = SpanEventRecord("exception", 1, {"exception.type": "KeyboardInterrupt"})
    stopped[0] = replace(stopped[0], events=(ctrl_c,))
    await store.write_graph(graph_of(stopped))

    async def ids(**filters: Any) -> list[str]:
        return [r.run_id for r in await store.runs(**filters)]

    runs = {r.run_id: (r.state, r.error) for r in await store.runs()}
    assert runs == {
        "run-broken": ("failed", "step 'researcher' failed: RateLimitError"),
        "run-caught": ("complete", None),
        "run-fine": ("complete", None),
        "run-stopped": ("interrupted", None),
    }
    assert await ids(state="failed") == ["run-broken"]
    assert await ids(state="interrupted") == ["run-stopped"]
    assert await ids(state="complete") == ["run-fine", "run-caught"]
    (interrupted,) = await store.find_runs("run-stopped", limit=1)
    assert interrupted.interrupted == "KeyboardInterrupt"
    assert await ids(state="live") == []
    stored = await store.graph((await store.find_runs("run-broken", limit=1))[0].trace_id)
    assert stored is not None
    assert stored.run.error == "step 'researcher' failed: RateLimitError"
    # `agentmesh resume` ran it again: the failure is taken care of
    resumed = _run(SpanFactory(start_ns=4_000), run_id="run-again")
    resumed[0] = with_attributes(resumed[0], {semconv.AGENTMESH_RESUME_FROM_RUN_ID: "run-broken"})
    await store.write_graph(graph_of(resumed))
    assert await ids(state="failed") == []
    assert await ids(state="resumed") == ["run-broken"]
    again = _run(SpanFactory(start_ns=5_000), run_id="run-again-2")
    again[0] = with_attributes(again[0], {semconv.AGENTMESH_RESUME_FROM_RUN_ID: "run-stopped"})
    await store.write_graph(graph_of(again))
    assert await ids(state="interrupted") == []
    assert await ids(state="resumed") == ["run-stopped", "run-broken"]
    (found,) = await store.find_runs("run-broken", limit=10)
    assert (found.state, found.error) == ("resumed", "step 'researcher' failed: RateLimitError")


async def test_find_runs_by_the_start_of_a_run_or_trace_id(store: SpanStore) -> None:
    factories = [SpanFactory(start_ns=start) for start in (1_000, 2_000, 3_000, 4_000)]
    run_ids = ["Run-Alpha", "run-alpha-2", "run-beta", "run_50%"]
    for f, run_id in zip(factories, run_ids, strict=True):
        await store.write_graph(graph_of(_run(f, run_id=run_id)))

    async def ids(prefix: str, limit: int = 10) -> list[str]:
        return [r.run_id for r in await store.find_runs(prefix, limit=limit)]

    assert await ids("run-alpha") == ["run-alpha-2", "Run-Alpha"]  # any case, latest first
    assert await ids("run-") == ["run-beta", "run-alpha-2", "Run-Alpha"]
    # the exact match comes first when the limit cuts: the newest would be run-alpha-2
    assert await ids("run-alpha", limit=1) == ["Run-Alpha"]
    assert await ids("run_5") == ["run_50%"]  # _ and % are plain characters
    assert await ids("run%") == []
    assert await ids("run_") == ["run_50%"]
    trace = factories[2].trace_id
    (found,) = await store.find_runs(trace[:10], limit=10)
    assert (found.run_id, found.trace_id, found.agents) == (
        "run-beta",
        trace,
        ("researcher", "supervisor"),
    )
    assert await ids("nothing") == []
    with pytest.raises(StoreError):
        await store.find_runs("run", limit=0)


async def test_prune_deletes_whole_runs_that_ended_before_the_cut_off(store: SpanStore) -> None:
    def stored_run(start: int, run_id: str, *, last_end: int | None = None) -> SpanFactory:
        f = SpanFactory(start_ns=start, step_ns=10)
        spans = _run(f, run_id=run_id)
        if last_end is not None:  # a long run: its last span ends much later
            spans.append(f.span("tool", parent=spans[0], duration_ns=last_end - (start + 40)))
        pending.append((spans, graph_of(spans)))
        return f

    pending: list[tuple[list[SpanRecord], RunGraph]] = []
    old_a = stored_run(1_000, "run-a")
    old_b = stored_run(2_000, "run-b")
    long_c = stored_run(3_000, "run-c", last_end=9_000)  # started before the cut-off, ended after
    new_d = stored_run(10_000, "run-d")
    for spans, graph in pending:
        await store.write_spans(spans)
        await store.write_graph(graph)
    # run-e ended early in a first graph, and later in its newest one: the newest counts
    f_e = SpanFactory(start_ns=1_500, step_ns=10)
    early = _run(f_e, run_id="run-e")
    await store.write_spans(early)
    await store.write_graph(graph_of(early))
    late = [*early, f_e.span("tool", parent=early[0], start_ns=7_000)]
    await store.write_spans(late)
    await store.write_graph(graph_of(late))
    # traces never graphed (the collector stopped first): one old, one recent
    gone = SpanFactory(start_ns=1_200, step_ns=10)
    kept = SpanFactory(start_ns=20_000, step_ns=10)
    await store.write_spans([gone.workflow("w"), gone.workflow("w")])
    await store.write_spans([kept.workflow("w")])
    for trace_id, id_, at in (
        (old_a.trace_id, "det-a", 1_010),
        (new_d.trace_id, "det-d", 10_010),
        (gone.trace_id, "det-gone", 1_210),
        (kept.trace_id, "det-kept", 20_010),
    ):
        await store.write_detection(_detection(trace_id, id_=id_, at=at))
    total = await store.count_spans()

    # one run per call, the earliest started first; leftovers wait for a call that is not full
    assert await store.prune(5_000, limit=1) == Pruned(runs=1, spans=4, detections=1)
    assert await store.graph(old_a.trace_id) is None
    assert await store.spans(old_a.trace_id) == []
    assert await store.prune(5_000, limit=1) == Pruned(runs=1, spans=4, detections=0)
    assert await store.graph(old_b.trace_id) is None
    assert await store.prune(5_000, limit=1) == Pruned(runs=0, spans=2, detections=1)
    assert await store.spans(gone.trace_id) == []
    assert not await store.prune(5_000, limit=1)  # nothing left to delete

    assert [r.run_id for r in await store.runs()] == ["run-d", "run-c", "run-e"]
    assert await store.count_spans() == total - 10
    assert len(await store.spans(long_c.trace_id)) == 5
    assert len(await store.spans(kept.trace_id)) == 1
    assert [d.id for d in await store.detections()] == ["det-d", "det-kept"]
    stored = await store.graph(new_d.trace_id)
    assert stored is not None
    assert stored.run.detections == 1
    assert [a.name for a in stored.agents] == ["researcher", "supervisor"]
    # a larger limit deletes several runs in one call, then the leftovers
    assert await store.prune(50_000, limit=10) == Pruned(runs=3, spans=15, detections=2)
    assert await store.runs() == []
    assert await store.count_spans() == 0
    with pytest.raises(StoreError, match="at least 1"):
        await store.prune(5_000, limit=0)


async def test_runs_by_time_window(store: SpanStore) -> None:
    starts = (1_000, 2_000, 3_000, 4_000)
    for i, start in enumerate(starts):
        await store.write_graph(graph_of(_run(SpanFactory(start_ns=start), run_id=f"run-{i}")))

    async def ids(**window: int | None) -> list[str]:
        return [r.run_id for r in await store.runs(**window)]  # type: ignore[arg-type]

    assert await ids(since_ns=2_000) == ["run-3", "run-2", "run-1"]  # since is included
    assert await ids(until_ns=3_000) == ["run-1", "run-0"]  # until is excluded
    assert await ids(since_ns=2_000, until_ns=4_000) == ["run-2", "run-1"]
    assert await ids(since_ns=2_000, until_ns=4_000, limit=1) == ["run-2"]
    assert await ids(since_ns=5_000) == []
    assert await store.runs(None) == await store.runs(since_ns=None, until_ns=None)


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
    # a time range and the newest few, still oldest first; ties broken by id
    assert await store.detections(since_ns=21) == [later]
    assert await store.detections(since_ns=20) == [tie, first, later]
    assert await store.detections(limit=2) == [first, later]
    assert await store.detections(limit=1) == [later]
    assert await store.detections(limit=5) == [tie, first, later]
    assert await store.detections(f1.trace_id, since_ns=20, limit=1) == [first]
    assert await store.detections(since_ns=31, limit=3) == []
    spike = _detection(f2.trace_id, id_="det-c", at=25, type="cost_spike")
    assert await store.write_detection(spike)
    assert await store.detections(detection_type="cost_spike") == [spike]
    assert await store.detections(detection_type="handoff_loop", limit=1) == [later]
    assert await store.detections(detection_type="stuck") == []


async def test_detections_page_backwards_from_a_cursor_with_ties_on_time(store: SpanStore) -> None:
    f = SpanFactory()
    # six detections, three of them found in the same instant (one cycle's)
    made = [
        _detection(f.trace_id, id_=id_, at=at)
        for id_, at in [("d1", 10), ("d3", 20), ("d2", 20), ("d4", 20), ("d5", 30), ("d0", 40)]
    ]
    for detection in made:
        assert await store.write_detection(detection)
    ordered = sorted(made, key=lambda d: (d.detected_at_ns, d.id))
    pages: list[list[str]] = []
    before: tuple[int, str] | None = None
    while True:
        page = await store.detections(limit=2, before=before)
        pages.append([d.id for d in page])
        if len(page) < 2:
            break
        before = (page[0].detected_at_ns, page[0].id)
    assert pages == [["d5", "d0"], ["d3", "d4"], ["d1", "d2"], []]
    assert [d.id for page in reversed(pages) for d in ordered if d.id in page] == [
        d.id for d in ordered
    ]
    # a bare time: everything detected strictly before it
    assert [d.id for d in await store.detections(before=(20, ""))] == ["d1"]
    assert [d.id for d in await store.detections(before=(21, ""), limit=1)] == ["d4"]
    assert await store.detections(f.trace_id, before=(30, "d5"), detection_type="stuck") == []


def _costs_fixture() -> tuple[list[list[SpanRecord]], list[RunGraph]]:
    """Two runs: an early one (t=1000) and a late one (t=9000), with two models."""
    early, late = SpanFactory(start_ns=1_000), SpanFactory(start_ns=9_000)
    runs: list[list[SpanRecord]] = []
    for f, scale in ((early, 1), (late, 10)):
        root = f.workflow("w", run_id=f"run-{scale}")
        sup = f.agent("supervisor", parent=root)
        res = f.agent("researcher", parent=root, handoff_from="supervisor")
        unknown = replace(
            f.chat(parent=root, input_tokens=1, output_tokens=1, cost_usd=0.125 * scale),
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 1,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1,
                semconv.AGENTMESH_COST_USD: 0.125 * scale,
            },
        )  # no model recorded, and outside any agent
        request_only = replace(
            f.chat(parent=res, model="small", input_tokens=3, output_tokens=1, cost_usd=0.25),
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
                semconv.GEN_AI_REQUEST_MODEL: "small",
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 3,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1,
                semconv.AGENTMESH_COST_USD: 0.25,
            },
        )  # only the request model: used as the model
        runs.append(
            [
                root,
                sup,
                res,
                f.chat(parent=sup, model="big", input_tokens=100, output_tokens=10, cost_usd=2.0),
                f.chat(parent=res, model="big", input_tokens=50, output_tokens=5, cost_usd=1.0),
                request_only,
                unknown,
            ]
        )
    return runs, [graph_of(spans) for spans in runs]


async def test_costs_by_agent_and_by_model_over_a_window(store: SpanStore) -> None:
    runs, graphs = _costs_fixture()
    for spans, graph in zip(runs, graphs, strict=True):
        await store.write_spans(spans)
        await store.write_graph(graph)
    assert await store.costs(group_by="agent") == [
        CostRow("supervisor", 2, 200, 20, 4.0),
        CostRow("researcher", 4, 106, 12, 2.5),
        CostRow(None, 2, 2, 2, 1.375),  # outside any agent: the rows add up to the runs
    ]
    calls = sum(run.llm_calls for run in await store.runs())
    assert sum(row.llm_calls for row in await store.costs(group_by="model")) == calls
    assert await store.costs(group_by="model") == [
        CostRow("big", 4, 300, 30, 6.0),
        CostRow(None, 2, 2, 2, 1.375),
        CostRow("small", 2, 6, 2, 0.5),
    ]
    # The window is on the run's start: only the late run.
    assert await store.costs(since_ns=5_000) == [
        CostRow("supervisor", 1, 100, 10, 2.0),
        CostRow("researcher", 2, 53, 6, 1.25),
        CostRow(None, 1, 1, 1, 1.25),
    ]
    assert await store.costs(since_ns=5_000, group_by="model") == [
        CostRow("big", 2, 150, 15, 3.0),
        CostRow(None, 1, 1, 1, 1.25),
        CostRow("small", 1, 3, 1, 0.25),
    ]
    assert await store.costs(until_ns=5_000, group_by="model") == [
        CostRow("big", 2, 150, 15, 3.0),
        CostRow("small", 1, 3, 1, 0.25),
        CostRow(None, 1, 1, 1, 0.125),
    ]
    assert await store.costs(since_ns=1_001, until_ns=9_000) == []
    with pytest.raises(StoreError, match="'agent' or 'model'"):
        await store.costs(group_by="provider")  # type: ignore[arg-type]


async def test_negative_costs_and_token_counts_are_no_amounts(store: SpanStore) -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="run-negative")
    agent = f.agent("writer", parent=root)
    fine = f.chat(parent=agent, model="m", input_tokens=10, output_tokens=2, cost_usd=0.5)
    faulty = f.chat(parent=agent, model="m", input_tokens=-3, output_tokens=-1, cost_usd=-5.0)
    spans = [root, agent, fine, faulty]
    await store.write_spans(spans)
    await store.write_graph(graph_of(spans))
    (run,) = await store.runs()
    assert (run.llm_calls, run.input_tokens, run.output_tokens, run.cost_usd) == (2, 10, 2, 0.5)
    expected = [CostRow("writer", 2, 10, 2, 0.5)]
    assert await store.costs() == expected
    assert await store.costs(group_by="model") == [CostRow("m", 2, 10, 2, 0.5)]


async def test_costs_count_redelivered_spans_once(store: SpanStore) -> None:
    runs, graphs = _costs_fixture()
    await store.write_spans(runs[0])
    await store.write_spans(runs[0])
    await store.write_graph(graphs[0])
    await store.write_graph(graphs[0])
    by_model = await store.costs(group_by="model")
    assert [(row.key, row.llm_calls) for row in by_model] == [("big", 2), ("small", 1), (None, 1)]


async def test_two_writers_on_one_trace(store: SpanStore) -> None:
    f = SpanFactory()
    spans = _run(f, loops=6)
    small, big = graph_of(spans[:4]), graph_of(spans)

    async def writer(graph: RunGraph, part: list[SpanRecord]) -> int:
        stored = 0
        for _ in range(5):
            stored += await store.write_spans(part)
            await store.write_graph(graph)
        return stored

    counts = await asyncio.gather(writer(small, spans[:10]), writer(big, spans[5:]))
    assert sum(counts) == len(spans)  # each span stored once, whoever won the race
    assert await store.count_spans() == len(spans)
    stored = await store.graph(f.trace_id)
    assert stored is not None
    # The last write won as a whole: its run row, agents and handoffs agree (never a mix).
    winner = small if stored.run.span_count == small.span_count else big
    assert stored.run.span_count == winner.span_count
    assert stored.agents == sorted(winner.agents.values(), key=lambda a: a.name)
    assert stored.handoffs == winner.handoffs
    await store.write_graph(big)
    again = await store.graph(f.trace_id)
    assert again is not None
    assert again.handoffs == big.handoffs


async def test_large_batch_round_trips(store: SpanStore) -> None:
    spans: list[SpanRecord] = []
    for _ in range(40):  # 40 runs of 7 spans: more than the PostgreSQL COPY threshold
        spans += _run(SpanFactory(), loops=2)
    assert await store.write_spans(spans) == len(spans)
    assert await store.write_spans(spans) == 0
    assert await store.count_spans() == len(spans)
    one = spans[7].trace_id
    assert await store.spans(one) == [s for s in spans if s.trace_id == one]


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
        await store.write_graph(graph_of(spans))
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
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
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


async def test_duckdb_upgrades_a_version_1_file_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    agent = f.agent("researcher", parent=root)
    chat = f.chat(parent=agent, model="m-1", input_tokens=7, output_tokens=3, cost_usd=0.5)
    con = duckdb.connect(str(path))  # what a version-1 collector wrote
    try:
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        con.execute("INSERT INTO schema_version VALUES (1)")
        con.execute(
            "CREATE TABLE spans (trace_id VARCHAR NOT NULL, span_id VARCHAR NOT NULL, "
            "parent_span_id VARCHAR, name VARCHAR NOT NULL, kind VARCHAR NOT NULL, "
            "start_ns BIGINT NOT NULL, end_ns BIGINT NOT NULL, status_code VARCHAR NOT NULL, "
            "status_message VARCHAR NOT NULL, operation VARCHAR, run_id VARCHAR, "
            "service_name VARCHAR, scope_name VARCHAR NOT NULL, attributes VARCHAR NOT NULL, "
            "events VARCHAR NOT NULL, resource VARCHAR NOT NULL, PRIMARY KEY (trace_id, span_id))"
        )
        for span in (root, agent, chat):
            con.execute(
                "INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', '{}')",
                [
                    span.trace_id,
                    span.span_id,
                    span.parent_span_id,
                    span.name,
                    span.kind,
                    span.start_ns,
                    span.end_ns,
                    span.status_code,
                    span.status_message,
                    span.operation,
                    "run-1",
                    span.service_name,
                    span.scope_name,
                    json.dumps(dict(span.attributes)),
                ],
            )
    finally:
        con.close()
    async with DuckDBStore(path) as store:
        await store.write_graph(graph_of([root, agent, chat]))
        assert await store.costs(group_by="model") == [CostRow("m-1", 1, 7, 3, 0.5)]
        assert len(await store.spans(f.trace_id)) == 3
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("SELECT model FROM spans WHERE model IS NOT NULL").fetchall() == [
            ("m-1",)
        ]
    finally:
        con.close()


# --- the factory --------------------------------------------------------------------------------


async def test_make_store_follows_the_settings(tmp_path: Path) -> None:
    duck = make_store(CollectorSettings.load(store="duckdb", duckdb_path=tmp_path / "a.duckdb"))
    assert isinstance(duck, DuckDBStore)
    assert duck.path == str(tmp_path / "a.duckdb")
    assert isinstance(make_store(CollectorSettings.load(store="memory")), MemoryStore)
    pg = make_store(
        CollectorSettings.load(
            store="postgres",
            postgres_dsn="postgresql://u@db.example:6543/x",
            postgres_schema="agentmesh",
        )
    )
    assert isinstance(pg, PostgresStore)
    assert (pg.address, pg.schema) == ("db.example:6543", "agentmesh")
    store = await open_store(CollectorSettings.load(store="memory"))
    assert await store.count_spans() == 0
    await store.close()


async def test_open_store_with_a_dead_postgres_says_so() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = CollectorSettings.load(
        store="postgres", postgres_dsn=f"postgresql://postgres@127.0.0.1:{port}/test"
    )
    with pytest.raises(StoreError) as info:
        await open_store(settings)
    assert str(info.value) == f"cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused"
