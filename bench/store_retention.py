"""Store retention: what a pass costs on DuckDB and Postgres, against what writing the runs cost.

Fills a fresh store (a temporary DuckDB file; a scratch Postgres schema, dropped after) with
``--runs`` runs of 20 spans each (a workflow, six agents each with an LLM call and a tool, a
final step; started evenly over 20 days), written the way the pipeline writes them (spans in
batches of 500 runs, then their graphs), then runs the collector's retention pass
(``agentmesh.collector.store.retention``) with a cut-off of 10 days: half the runs go, 1,000 per
store call, then a second pass finds nothing. There is no peer: the figure to read is the share
of the write cost that deleting costs (``delete_vs_write``: seconds to delete a run over seconds
to write it, same run, same machine, same minute).

Prints a table and a last line of JSON: ``{"backends": {name: {"runs": …, "write_s": …,
"prune_s": …, "per_batch_ms": [...], "empty_pass_ms": …, "delete_vs_write": …}}}``.
Run: ``uv run python bench/store_retention.py`` (20,000 runs; ``--quick``: 4,000, under a
minute). ``--postgres DSN`` (default ``$AGENTMESH_BENCH_POSTGRES`` or
``postgresql://postgres@127.0.0.1:5432/test``); ``--backends duckdb`` skips Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agentmesh.collector.model import SpanRecord
from agentmesh.collector.store import DuckDBStore, PostgresStore, Pruned, SpanStore
from agentmesh.collector.store.retention import Retention
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, graph_of

NOW = 1_800_000_000.0
DAY = 86_400.0
CHUNK = 500


def _run(i: int, n: int) -> list[SpanRecord]:
    start = NOW - 20 * DAY * (n - i) / n
    f = SpanFactory(start_ns=int(start * 1e9), step_ns=10**7)
    root = f.workflow("research", run_id=f"run-{i}")
    spans = [root]
    previous = None
    for j in range(6):
        name = "writer" if j % 2 else "researcher"
        agent = f.agent(name, parent=root, handoff_from=previous)
        previous = name
        llm = f.chat(parent=agent, input_tokens=900, output_tokens=120, cost_usd=0.002)
        spans += [agent, llm, f.span("execute_tool search", parent=agent)]
    spans.append(f.span("final", parent=root))
    return spans


async def _fill(store: SpanStore, n: int) -> float:
    started = time.perf_counter()
    for chunk in range(0, n, CHUNK):
        runs = [_run(i, n) for i in range(chunk, min(n, chunk + CHUNK))]
        await store.write_spans([s for spans in runs for s in spans])
        graphs = [graph_of(spans) for spans in runs]
        write_graphs = getattr(store, "write_graphs", None)
        if write_graphs is not None:
            await write_graphs(graphs)
        else:
            for graph in graphs:
                await store.write_graph(graph)
    return time.perf_counter() - started


async def _measure(store: SpanStore, n: int) -> dict[str, Any]:
    write_s = await _fill(store, n)
    batches: list[float] = []
    prune = store.prune

    async def timed(before_ns: int, *, limit: int) -> Pruned:
        started = time.perf_counter()
        try:
            return await prune(before_ns, limit=limit)
        finally:
            batches.append((time.perf_counter() - started) * 1000)

    store.prune = timed  # type: ignore[method-assign]
    retention = Retention(store, keep_seconds=10 * DAY, clock=lambda: NOW)
    started = time.perf_counter()
    pruned = await retention.prune()
    prune_s = time.perf_counter() - started
    per_batch = list(batches)
    started = time.perf_counter()
    again = await retention.prune()
    empty_ms = (time.perf_counter() - started) * 1000
    left = await store.count_spans()
    return {
        "runs": n,
        "deleted_runs": pruned.runs,
        "deleted_spans": pruned.spans,
        "spans_left": left,
        "second_pass_deleted": again.runs,
        "write_s": round(write_s, 2),
        "prune_s": round(prune_s, 3),
        "per_batch_ms": [round(ms, 1) for ms in per_batch],
        "empty_pass_ms": round(empty_ms, 1),
        "delete_vs_write": round((prune_s / max(1, pruned.runs)) / (write_s / n), 3),
    }


async def _duckdb(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        async with DuckDBStore(Path(folder) / "retention.duckdb") as store:
            return await _measure(store, n)


async def _postgres(dsn: str, n: int) -> dict[str, Any]:
    async with scratch_schema(dsn) as schema:
        store = await PostgresStore(dsn, schema=schema).open()
        try:
            return await _measure(store, n)
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4,000 runs (under a minute)")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "AGENTMESH_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    n = args.runs or (4_000 if args.quick else 20_000)
    console = Console()
    runners: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "duckdb": lambda: _duckdb(n),
        "postgres": lambda: _postgres(args.postgres, n),
    }
    results: dict[str, dict[str, Any]] = {}
    for name in args.backends.split(","):
        results[name] = asyncio.run(runners[name]())
    table = Table(title=f"Retention pass on {n:,} runs x 20 spans, half older than the cut-off")
    for column in ("store", "write", "runs deleted", "spans deleted", "pass", "per batch"):
        table.add_column(column, justify="right")
    table.add_column("empty pass", justify="right")
    table.add_column("delete/write", justify="right")
    for name, r in results.items():
        batches = r["per_batch_ms"]
        table.add_row(
            name,
            f"{r['write_s']:.1f} s",
            f"{r['deleted_runs']:,}",
            f"{r['deleted_spans']:,}",
            f"{r['prune_s']:.2f} s",
            f"{min(batches):.0f}-{max(batches):.0f} ms",
            f"{r['empty_pass_ms']:.0f} ms",
            f"{r['delete_vs_write']:.2f}",
        )
    console.print(table)
    print(json.dumps({"benchmark": "store_retention", "backends": results}))


if __name__ == "__main__":
    main()
