"""DuckDB graph writes: versioned appends (ours) vs replacing rows in place, as the file grows.

The collector writes each changed run graph once per cycle (live runs at most once a second).
Until schema version 5 the DuckDB store replaced a trace's rows in place: keys on ``runs``,
``agents`` and ``handoffs``, ``DELETE … WHERE trace_id IN (the batch)``, ``INSERT OR REPLACE``
of the run. Since then each write appends the rows under a new version and views show the
newest (``collector/store/duckdb_graphs.py``). This benchmark replays the graphs of the
collector benchmark's span stream (``_throughput/stream.py``, fixed seed; spans graphed by the
real ``GraphBuilder`` in cycles of ``--cycle`` requests, each cycle's changed graphs written in
one call), over and over with fresh trace ids so the tables grow, into two DuckDB files side by
side: one through :class:`GraphVersions`, one through the in-place statements (kept here as the
peer). Writes alternate between the two, so both see the same machine at the same moment.

Prints CPU ms per write by stage of growth, and a last line of JSON:
``{"ms_per_write": {"versioned": …, "in_place": …}, "ratio": …, "last_stage_ratio": …}``.
Run: ``uv run python bench/duckdb_graph_writes.py`` (``--quick``: under a minute).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

from _throughput.stream import payloads

from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.receiver.decode_pool import decode_payload
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.store.duckdb_graphs import GraphVersions
from agentmesh.collector.store.duckdb_schema import (
    LEGACY_GRAPH_TABLES,
    SCHEMA,
    VIEWS,
)
from agentmesh.collector.store.graph_tables import (
    AGENT_SCHEMA,
    HANDOFF_SCHEMA,
    RUN_SCHEMA,
    graph_tables,
)

_LEGACY_RUN_COLUMNS = ", ".join(
    name for name in RUN_SCHEMA.names if re.search(rf"\b{name} ", LEGACY_GRAPH_TABLES[0])
)
"""The run columns of versions 1 to 4 (those of their ``runs`` table; version 6 added more)."""
_IN_PLACE = (
    "DELETE FROM agents WHERE trace_id IN (SELECT trace_id FROM g_runs)",
    "DELETE FROM handoffs WHERE trace_id IN (SELECT trace_id FROM g_runs)",
    f"INSERT OR REPLACE INTO runs ({_LEGACY_RUN_COLUMNS}) SELECT {_LEGACY_RUN_COLUMNS} FROM g_runs",
    f"INSERT INTO agents ({', '.join(AGENT_SCHEMA.names)}) SELECT * FROM g_agents",
    f"INSERT INTO handoffs ({', '.join(HANDOFF_SCHEMA.names)}) SELECT * FROM g_handoffs",
)
"""The writes of schema versions 1 to 4, as the store ran them (one transaction)."""


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    # The store's settings (store/duckdb_store.py: _connect).
    return duckdb.connect(
        str(path),
        config={"preserve_insertion_order": False, "checkpoint_threshold": "256MB", "threads": 1},
    )


def _write_in_place(con: duckdb.DuckDBPyConnection, graphs: list[RunGraph]) -> None:
    tables = graph_tables(graphs)
    con.register("g_runs", tables.runs)
    con.register("g_agents", tables.agents)
    con.register("g_handoffs", tables.handoffs)
    con.execute("BEGIN TRANSACTION")
    for statement in _IN_PLACE:
        con.execute(statement)
    con.execute("COMMIT")
    for name in ("g_runs", "g_agents", "g_handoffs"):
        con.unregister(name)


def _cycles(spans: int, cycle: int) -> list[list[RunGraph]]:
    """The changed graphs of each cycle of the stream, as the pipeline would write them."""
    limits = DecodeLimits()
    builder = GraphBuilder(max_traces=1_000_000)
    writes: list[list[RunGraph]] = []
    bodies = payloads(spans, 7)
    for start in range(0, len(bodies), cycle):
        changed: set[str] = set()
        for body in bodies[start : start + cycle]:
            changed |= builder.add_nodes(decode_payload(body, limits, False).nodes)
        graphs = [builder.get(trace_id) for trace_id in sorted(changed)]
        writes.append([g for g in graphs if g is not None])
    return writes


def _renamed(graphs: list[RunGraph], replay: int) -> list[RunGraph]:
    prefix = f"{replay:08x}"
    return [dataclasses.replace(g, trace_id=prefix + g.trace_id[8:]) for g in graphs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer replays (under a minute)")
    parser.add_argument("--spans", type=int, default=100_000, help="spans in the stream")
    parser.add_argument("--replays", type=int, default=12, help="replays, fresh trace ids each")
    parser.add_argument("--cycle", type=int, default=4, help="requests of 512 spans per cycle")
    args = parser.parse_args()
    replays = 4 if args.quick else args.replays
    started = time.perf_counter()
    writes = _cycles(args.spans, args.cycle)
    with tempfile.TemporaryDirectory(prefix="agentmesh-graph-writes-") as tmp:
        ours = _connect(Path(tmp) / "versioned.duckdb")
        peer = _connect(Path(tmp) / "in_place.duckdb")
        for statement in (*SCHEMA, *VIEWS):
            ours.execute(statement)
        for statement in LEGACY_GRAPH_TABLES:
            peer.execute(statement)
        versions = GraphVersions()
        versions.load(ours)
        stages: list[tuple[int, float, float]] = []  # (rows held by the peer, ours ms, peer ms)
        for replay in range(replays):
            ours_ms: list[float] = []
            peer_ms: list[float] = []
            for graphs in writes:
                batch = _renamed(graphs, replay)
                for write, into, times in (
                    (versions.write, ours, ours_ms),
                    (_write_in_place, peer, peer_ms),
                ):
                    begin = time.thread_time()
                    write(into, batch)
                    times.append((time.thread_time() - begin) * 1e3)
            rows = peer.execute(
                "SELECT (SELECT count(*) FROM agents) + (SELECT count(*) FROM handoffs)"
            ).fetchall()[0][0]
            stages.append((int(rows), statistics.mean(ours_ms), statistics.mean(peer_ms)))
        check = (
            "SELECT trace_id, name, invocations, llm_calls, cost_usd FROM agents "
            "ORDER BY trace_id, name"
        )
        same = ours.execute(check).fetchall() == peer.execute(check).fetchall()
        compactions = versions.compactions
        ours.close()
        peer.close()
    table = Table(title="DuckDB graph writes, CPU ms per write (store thread), as the file grows")
    for column in ("replay", "graph rows held", "versioned (ours)", "in place", "ratio"):
        table.add_column(column, justify="right")
    for index, (rows, ours_mean, peer_mean) in enumerate(stages):
        table.add_row(
            str(index + 1),
            f"{rows:,}",
            f"{ours_mean:.2f}",
            f"{peer_mean:.2f}",
            f"{ours_mean / peer_mean:.2f}",
        )
    console = Console()
    console.print(table)
    graphs_per_write = statistics.mean(len(w) for w in writes)
    console.print(
        f"{len(writes)} writes per replay, {graphs_per_write:.0f} graphs per write; "
        f"same rows read back from both: {same}; superseded versions deleted {compactions} times"
    )
    ours_all = statistics.mean(s[1] for s in stages)
    peer_all = statistics.mean(s[2] for s in stages)
    result = {
        "benchmark": "duckdb_graph_writes",
        "ms_per_write": {"versioned": round(ours_all, 3), "in_place": round(peer_all, 3)},
        "ratio": round(ours_all / peer_all, 3),
        "last_stage_ratio": round(stages[-1][1] / stages[-1][2], 3),
        "by_stage": [
            {"rows": rows, "versioned": round(o, 3), "in_place": round(p, 3)}
            for rows, o, p in stages
        ],
        "writes_per_replay": len(writes),
        "graphs_per_write": round(graphs_per_write, 1),
        "same_rows": same,
        "compactions": compactions,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
