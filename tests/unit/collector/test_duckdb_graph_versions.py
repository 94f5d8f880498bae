"""DuckDB graph writes as appended versions: the views show the newest, compaction keeps them."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from agentmesh.collector import DuckDBStore, RunGraph
from agentmesh.collector.store.duckdb_graphs import GraphVersions
from agentmesh.collector.store.duckdb_schema import (
    LEGACY_GRAPH_TABLES,
    SCHEMA,
    SCHEMA_VERSION,
    VIEWS,
)
from agentmesh.collector.testing import SpanFactory, failed, graph_of, with_attributes
from agentmesh.core.semconv import AGENTMESH_RUN_PAUSED as RUN_PAUSED
from agentmesh.core.semconv import GEN_AI_CONVERSATION_ID as CONVERSATION


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path))
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


async def test_each_write_appends_a_version_and_readers_see_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "g.duckdb"
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    planner = f.agent("planner", parent=root)
    first = [root, planner, f.chat(parent=planner, input_tokens=4, cost_usd=0.5)]
    writer = f.agent("writer", parent=root, handoff_from="planner")
    second = [*first, writer, f.chat(parent=writer, input_tokens=6, cost_usd=0.25)]
    async with DuckDBStore(path) as store:
        await store.write_graph(graph_of(first))
        await store.write_graph(graph_of(second))
        stored = await store.graph(f.trace_id)
        assert stored is not None
        assert [a.name for a in stored.agents] == ["planner", "writer"]
        assert [(h.source, h.target) for h in stored.handoffs] == [("planner", "writer")]
        (run,) = await store.runs()
        assert (run.llm_calls, run.input_tokens, run.cost_usd) == (2, 10, 0.75)
    assert _rows(path, "SELECT version, count(*) FROM run_versions GROUP BY 1 ORDER BY 1") == [
        (1, 1),
        (2, 1),
    ]
    assert _rows(path, "SELECT count(*) FROM agent_versions") == [(3,)]  # 1 + 2: appended
    assert _rows(path, "SELECT count(*) FROM runs") == [(1,)]
    assert _rows(path, "SELECT name FROM agents ORDER BY name") == [("planner",), ("writer",)]


async def test_an_agent_gone_from_the_newest_graph_is_gone_from_the_view(tmp_path: Path) -> None:
    path = tmp_path / "g.duckdb"
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    agent = f.agent("planner", parent=root)
    async with DuckDBStore(path) as store:
        await store.write_graph(graph_of([root, agent]))
        await store.write_graph(graph_of([root]))  # e.g. rebuilt after a span was re-sent
        stored = await store.graph(f.trace_id)
        assert stored is not None
        assert stored.agents == []
    assert _rows(path, "SELECT count(*) FROM agents") == [(0,)]


async def test_run_pages_and_windows_go_by_each_runs_newest_version(tmp_path: Path) -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    planner = f.agent("planner", parent=root)
    writer = f.agent("writer", parent=root, handoff_from="planner")
    other = SpanFactory(start_ns=root.start_ns + 5_000)
    other_root = other.workflow("w", run_id="run-2")
    async with DuckDBStore(tmp_path / "g.duckdb") as store:
        # version 1 lacks the root: the run seems to start with the writer, after run-2
        await store.write_graph(graph_of([writer]))
        await store.write_graph(graph_of([other_root]))
        assert [r.trace_id for r in await store.runs(limit=1)] == [f.trace_id]
        # version 3: the root arrived, so the run starts before run-2
        await store.write_graph(graph_of([root, planner, writer]))
        (newest,) = await store.runs(limit=1)
        assert newest.run_id == "run-2"
        assert [r.run_id for r in await store.runs(since_ns=writer.start_ns)] == []
        (run,) = await store.runs(until_ns=other_root.start_ns)
        assert (run.run_id, run.start_ns, run.agents, run.handoffs) == (
            "run-1",
            root.start_ns,
            ("planner", "writer"),
            1,
        )
        graphs = await store.graphs_of([f.trace_id, other.trace_id])
        assert [a.name for a in graphs[f.trace_id].agents] == ["planner", "writer"]
        assert [(h.source, h.target) for h in graphs[f.trace_id].handoffs] == [
            ("planner", "writer")
        ]
        assert graphs[other.trace_id].agents == []


async def test_reads_are_answered_while_a_write_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    released = threading.Event()
    write = GraphVersions.write

    def held(self: GraphVersions, con: Any, graphs: Any) -> None:
        released.wait(10)  # the write holds the store's writer until the reads are done
        write(self, con, graphs)

    async with DuckDBStore(tmp_path / "g.duckdb") as store:
        await store.write_graph(graph_of([root]))
        monkeypatch.setattr(GraphVersions, "write", held)
        writing = asyncio.create_task(
            store.write_graph(graph_of([root, f.agent("a", parent=root)]))
        )
        await asyncio.sleep(0.05)
        # the reader has a connection of its own: it sees what was committed, now
        (run,) = await asyncio.wait_for(store.runs(), 5)
        stored = await asyncio.wait_for(store.graph(f.trace_id), 5)
        assert (run.agents, stored is not None and stored.agents) == ((), [])
        assert not writing.done()
        released.set()
        await writing
        (run,) = await store.runs()  # a write the caller awaited is seen at once
        assert run.agents == ("a",)


async def test_versions_continue_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "g.duckdb"
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    agent = f.agent("planner", parent=root)
    async with DuckDBStore(path) as store:
        await store.write_graph(graph_of([agent]))
        await store.write_graph(graph_of([root, agent]))
    async with DuckDBStore(path) as store:
        await store.write_graph(graph_of([root]))  # must supersede version 2, not lose to it
        stored = await store.graph(f.trace_id)
        assert stored is not None
        assert stored.agents == []
    assert _rows(path, "SELECT max(version) FROM run_versions") == [(3,)]


def test_compaction_deletes_superseded_versions_and_keeps_the_newest(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "g.duckdb"))
    for statement in (*SCHEMA, *VIEWS):
        con.execute(statement)
    versions = GraphVersions(compact_min_rows=20)
    versions.load(con)
    factories = [SpanFactory() for _ in range(3)]
    graphs: dict[str, RunGraph] = {}
    for step in range(6):  # every trace rewritten six times, one agent more each time
        batch: list[RunGraph] = []
        for f in factories:
            root = f.workflow("w", run_id=f"run-{f.trace_id[:4]}")
            agents = [f.agent(f"a{i}", parent=root) for i in range(step + 1)]
            graph = graph_of([root, *agents])
            graphs[f.trace_id] = graph
            batch.append(graph)
        versions.write(con, batch)
    assert versions.compactions >= 1
    superseded = con.execute(
        "SELECT count(*) FROM run_versions r WHERE r.version < "
        "(SELECT max(version) FROM run_versions n WHERE n.trace_id = r.trace_id)"
    ).fetchall()
    total = con.execute("SELECT count(*) FROM agent_versions").fetchall()[0][0]
    assert superseded[0][0] < 3 * 5  # not every old version is still there
    assert total < 3 * sum(range(1, 7))
    for trace_id, graph in graphs.items():
        names = con.execute(
            "SELECT name FROM agents WHERE trace_id = ? ORDER BY name", [trace_id]
        ).fetchall()
        assert [name for (name,) in names] == sorted(graph.agents)
    versions.compact(con)
    assert con.execute("SELECT count(*) FROM run_versions").fetchall() == [(3,)]
    assert con.execute("SELECT count(*) FROM agent_versions").fetchall() == [(3 * 6,)]
    con.close()


async def test_a_version_4_file_moves_its_graphs_to_the_versioned_tables(tmp_path: Path) -> None:
    path = tmp_path / "v4.duckdb"
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    planner = f.agent("planner", parent=root)
    writer = f.agent("writer", parent=root, handoff_from="planner")
    con = duckdb.connect(str(path))  # what a version-4 collector wrote
    try:
        for statement in (*SCHEMA[:2], SCHEMA[-1], *LEGACY_GRAPH_TABLES):
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (4)")
        con.execute(
            "INSERT INTO runs VALUES (?, 'run-1', 'w', NULL, NULL, 1, 9, 3, 0, 0, 0, 0, true)",
            [f.trace_id],
        )
        for name, span in (("planner", planner), ("writer", writer)):
            con.execute(
                "INSERT INTO agents VALUES (?, ?, 1, [?], 0, 0, 0, 0)",
                [f.trace_id, name, span.span_id],
            )
        con.execute(
            "INSERT INTO handoffs VALUES (?, 0, 'planner', 'writer', ?, 5, 'explicit', "
            "NULL, NULL, 'ck-1')",
            [f.trace_id, writer.span_id],
        )
    finally:
        con.close()
    async with DuckDBStore(path) as store:
        stored = await store.graph(f.trace_id)
        assert stored is not None
        assert [a.name for a in stored.agents] == ["planner", "writer"]
        assert [h.checkpoint_id for h in stored.handoffs] == ["ck-1"]
        await store.write_graph(graph_of([root, planner]))  # a newer version wins over version 0
        stored = await store.graph(f.trace_id)
        assert stored is not None
        assert [a.name for a in stored.agents] == ["planner"]
    tables = {
        (name, kind)
        for name, kind in _rows(
            path, "SELECT table_name, table_type FROM information_schema.tables"
        )
    }
    assert {("runs", "VIEW"), ("agents", "VIEW"), ("handoffs", "VIEW")} <= tables
    assert ("run_versions", "BASE TABLE") in tables
    assert _rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert _rows(path, "SELECT version, count(*) FROM agent_versions GROUP BY 1 ORDER BY 1") == [
        (0, 2),
        (1, 1),
    ]


_V6_COLUMNS = ", paused BOOLEAN DEFAULT false, resumed_from VARCHAR"
_V7_COLUMNS = ", conversation_id VARCHAR, resumed BOOLEAN DEFAULT false"
_V8_COLUMNS = ", error VARCHAR, interrupted VARCHAR"


@pytest.mark.parametrize(
    ("version", "missing", "values"),
    [
        (5, _V6_COLUMNS + _V7_COLUMNS + _V8_COLUMNS, "1"),
        (6, _V7_COLUMNS + _V8_COLUMNS, "1, true, 'run-0'"),
        (7, _V8_COLUMNS, "1, true, 'run-0', NULL, false"),
    ],
    ids=["version-5", "version-6", "version-7"],
)
async def test_an_older_file_gets_the_run_columns_added_since(
    tmp_path: Path, version: int, missing: str, values: str
) -> None:
    path = tmp_path / f"v{version}.duckdb"
    f = SpanFactory()
    con = duckdb.connect(str(path))  # what the older collector wrote: fewer run columns
    try:
        for statement in SCHEMA:
            con.execute(statement.replace(missing, ""))
        con.execute(f"INSERT INTO schema_version VALUES ({version})")
        con.execute(
            "INSERT INTO run_versions VALUES (?, 'run-1', 'w', NULL, NULL, 1, 9, 1, 0, 0, 0, 0, "
            f"true, {values})",
            [f.trace_id],
        )
    finally:
        con.close()
    async with DuckDBStore(path) as store:
        (old,) = await store.runs()
        assert (old.run_id, old.complete, old.conversation_id, old.resumed) == (
            "run-1",
            True,
            None,
            False,
        )
        assert old.paused is (version >= 6)
        assert (old.error, old.state) == (None, "paused" if version >= 6 else "complete")
        later = SpanFactory()  # starts long after the stored run (1 ns)
        paused = with_attributes(
            later.workflow("w", run_id="run-2"), {RUN_PAUSED: True, CONVERSATION: "thread-1"}
        )
        await store.write_graph(graph_of([paused]))
        broken = failed(SpanFactory(start_ns=paused.start_ns + 10**9).workflow("w"), "Boom")
        await store.write_graph(graph_of([broken]))
        assert [(r.run_id, r.paused, r.conversation_id, r.error) for r in await store.runs()] == [
            (broken.trace_id, False, None, "Boom"),
            ("run-2", True, "thread-1", None),
            ("run-1", version >= 6, None, None),
        ]
        assert [r.state for r in await store.runs(state="failed")] == ["failed"]
    assert _rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert _rows(
        path,
        "SELECT resumed_from, conversation_id, resumed, error, interrupted FROM run_versions "
        "WHERE run_id = 'run-1'",
    ) == [("run-0" if version >= 6 else None, None, False, None, None)]


def test_a_failed_compaction_does_not_fail_the_write(tmp_path: Path) -> None:
    class _Failing(GraphVersions):
        def compact(self, con: duckdb.DuckDBPyConnection) -> None:
            raise duckdb.IOException("disk full")

    con = duckdb.connect(str(tmp_path / "g.duckdb"))
    for statement in (*SCHEMA, *VIEWS):
        con.execute(statement)
    versions = _Failing(compact_min_rows=1)
    versions.load(con)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    versions.write(con, [graph_of([root, f.agent("planner", parent=root)])])  # no raise
    assert con.execute("SELECT name FROM agents").fetchall() == [("planner",)]
    con.close()


async def test_pages_read_only_what_they_need_and_match_the_whole_list(tmp_path: Path) -> None:
    """Pages (``runs(limit)``, ``find_runs``) agree with the unlimited list, cut, on a file where
    superseded versions crowd the first rows: older versions start later, match filters the
    newest does not, and carry other run ids."""
    rng = random.Random(7)
    f = SpanFactory()
    base = graph_of([f.workflow("w", run_id="seed")])
    async with DuckDBStore(tmp_path / "g.duckdb") as store:
        for round_ in range(6):
            graphs: list[RunGraph] = []
            for i in range(120):
                if round_ and rng.random() < 0.5:
                    continue  # not every trace is rewritten every round
                start = 1_000_000 * rng.randrange(400) + i
                graphs.append(
                    dataclasses.replace(
                        base,
                        trace_id=f"{i:032x}",
                        run_id=f"Run-{i % 40}-{round_ if i % 3 else 0}",
                        # the later a version, the earlier it tends to start: stale rows lead
                        start_ns=start - round_ * 50_000_000,
                        end_ns=start + 1_000,
                        complete=rng.random() < 0.6,
                        paused=rng.random() < 0.3,
                        conversation_id=f"c{rng.randrange(3)}",
                    )
                )
            await store.write_graphs(graphs)
        everything = await store.runs()
        assert len(everything) == 120
        middle = everything[60].start_ns
        filters: list[dict[str, Any]] = [
            {},
            {"since_ns": middle},
            {"until_ns": middle},
            {"state": "paused"},
            {"state": "live"},
            {"state": "complete", "since_ns": middle},
            {"conversation_id": "c1"},
        ]
        for where in filters:
            whole = [r.trace_id for r in await store.runs(**where)]
            for limit in (1, 5, 17, 60, 200):
                page = await store.runs(limit, **where)
                assert [r.trace_id for r in page] == whole[:limit], (where, limit)
        by_id = {r.trace_id: r for r in everything}
        for prefix in ("run-1", "run-3-", "run-7-0", "0000", "nope"):
            matching = [
                r
                for r in everything
                if r.run_id.lower().startswith(prefix) or r.trace_id.startswith(prefix)
            ]
            exact = [r for r in matching if r.run_id.lower() == prefix or r.trace_id == prefix]
            rest = [r for r in matching if r not in exact]
            for limit in (1, 4, 50):
                expected = sorted((exact + rest)[:limit], key=lambda r: (-r.start_ns, r.trace_id))
                found = await store.find_runs(prefix, limit=limit)
                assert [r.trace_id for r in found] == [r.trace_id for r in expected], prefix
                assert all(r == by_id[r.trace_id] for r in found)
