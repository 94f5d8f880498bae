"""DuckDB run pages: reading only a page's runs (ours) vs settling every trace's newest version.

``DuckDBStore.runs(limit, …)`` and ``find_runs`` read a page through
``collector/store/duckdb_newest.py``: the first rows of any version that pass the filter, minus
those a newer version supersedes. The peer is the query the store used before, kept here: a
window that settles the newest version of every trace in the file, then filters, orders and
cuts. Both run on the same file, through the store's reader connection settings (one DuckDB
thread), alternating call by call.

The file: ``--runs`` runs (200,000 by default; ``--quick`` 40,000) of a small multi-agent
graph (6 agents steps, 5 handoffs), 10 % of them rewritten once (a second version), written
through ``DuckDBStore.write_graphs`` as the collector writes them. Measured: the median of
``--repeat`` calls (7) for each page.

Prints a table and a last line of JSON:
``{"ms": {"<page>": {"ours": …, "settle_all": …}}, "speedup": {"<page>": …}, "runs": …}``.
Run: ``uv run python bench/duckdb_run_pages.py`` (about a minute) or ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.store import DuckDBStore
from agentmesh.collector.store.duckdb_graph_reads import (
    MATCHING,
    MATCHING_ORDER,
    RUN_ORDER,
    run_filter,
    summaries_of,
)
from agentmesh.collector.store.duckdb_newest import newest_page
from agentmesh.collector.testing import SpanFactory, graph_of

_LATEST = "QUALIFY version = max(version) OVER (PARTITION BY trace_id)"
T0 = 10**18


def _settle_all(where: str, order: str, limit: int) -> str:
    """The peer: every trace's newest row first, then the filter, the order and the limit."""
    return summaries_of(
        f"SELECT * FROM (SELECT * FROM run_versions {_LATEST}) "
        f"WHERE {where} ORDER BY {order} LIMIT {limit}"
    )


def _template() -> RunGraph:
    f = SpanFactory(start_ns=T0, step_ns=10**7)
    root = f.workflow("research", run_id="run-x")
    spans = [root]
    previous = None
    for j in range(6):
        name = "writer" if j % 2 else "researcher"
        agent = f.agent(name, parent=root, handoff_from=previous)
        previous = name
        spans += [agent, f.chat(parent=agent, input_tokens=900, output_tokens=120, cost_usd=0.002)]
    return graph_of(spans)


async def _fill(path: Path, runs: int) -> float:
    template = _template()
    started = time.perf_counter()
    async with DuckDBStore(path) as store:
        for chunk in range(0, runs, 2_000):
            graphs: list[RunGraph] = []
            for i in range(chunk, min(runs, chunk + 2_000)):
                graph = dataclasses.replace(
                    template,
                    trace_id=f"{i:032x}",
                    run_id=f"run-{i}",
                    start_ns=T0 + i * 10**9,
                    end_ns=T0 + i * 10**9 + 10**8,
                    paused=i % 97 == 0,
                )
                graphs.append(graph)
                if i % 10 == 0:  # a live run written again: a second version
                    graphs.append(dataclasses.replace(graph, span_count=graph.span_count + 1))
            await store.write_graphs(graphs)
    return time.perf_counter() - started


def _ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1e3


def _fetch(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any]) -> object:
    return con.execute(query, params).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="runs in the file")
    parser.add_argument("--repeat", type=int, default=7, help="calls per page and reader")
    parser.add_argument("--quick", action="store_true", help="40,000 runs")
    args = parser.parse_args()
    runs = args.runs or (40_000 if args.quick else 200_000)
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pages.duckdb"
        fill_s = asyncio.run(_fill(path, runs))
        console.print(f"wrote {runs:,} runs in {fill_s:.1f} s")
        con = duckdb.connect(
            str(path),
            read_only=True,
            config={"threads": 1, "memory_limit": "256MB", "preserve_insertion_order": False},
        )
        middle = T0 + (runs // 2) * 10**9
        pages: dict[str, tuple[str, str, dict[str, Any], int]] = {
            "runs(20)": (run_filter(since=False, until=False), RUN_ORDER, {}, 20),
            "runs(200)": (run_filter(since=False, until=False), RUN_ORDER, {}, 200),
            "runs(20, until middle)": (
                run_filter(since=False, until=True),
                RUN_ORDER,
                {"until": middle},
                20,
            ),
            "runs(20, paused)": (
                run_filter(since=False, until=False, state="paused"),
                RUN_ORDER,
                {},
                20,
            ),
            "find_runs(run-1234, 20)": (MATCHING, MATCHING_ORDER, {"prefix": "run-1234"}, 20),
        }
        results: dict[str, dict[str, float]] = {}
        for name, (where, order, params, limit) in pages.items():
            ours = newest_page(con, where, order, params, limit)
            peer = con.execute(_settle_all(where, order, limit), params).fetchall()
            if ours != peer:
                sys.exit(f"{name}: the two readers disagree ({len(ours)} vs {len(peer)} rows)")
            peer_query = _settle_all(where, order, limit)
            readers: dict[str, Callable[[], object]] = {
                "ours": partial(newest_page, con, where, order, params, limit),
                "settle_all": partial(_fetch, con, peer_query, params),
            }
            times: dict[str, list[float]] = {key: [] for key in readers}
            for _ in range(args.repeat):  # alternate, so both see the same machine
                for key, read in readers.items():
                    times[key].append(_ms(read))
            results[name] = {k: round(statistics.median(v), 2) for k, v in times.items()}
        con.close()
    table = Table(title=f"DuckDB run pages at {runs:,} runs (median of {args.repeat}, ms)")
    for column in ("page", "ours", "settle every trace", "speedup"):
        table.add_column(column, justify="right" if column != "page" else "left")
    speedup = {n: round(r["settle_all"] / r["ours"], 2) for n, r in results.items()}
    for name, result in results.items():
        table.add_row(
            name, f"{result['ours']:.1f}", f"{result['settle_all']:.1f}", f"{speedup[name]:.1f}x"
        )
    Console().print(table)
    print(json.dumps({"ms": results, "speedup": speedup, "runs": runs, "quick": args.quick}))


if __name__ == "__main__":
    main()
