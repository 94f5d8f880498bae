"""The AgentMesh side of the benchmark: one collector process (gRPC → graph → loop rule → DuckDB).

Run as ``python bench/_throughput/server.py DB_PATH [--max-batches N] [--max-spans N]``. It
prints ``{"port": …}`` once listening, then a JSON status line every 0.1 s (stored spans, queue,
ingest→graph latency percentiles, resident memory); closing its stdin stops it, after which it
prints a final line with the stored count read back from DuckDB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import threading
from pathlib import Path

from agentmesh.collector.detectors.handoff_loop import HandoffLoopRule
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.pipeline import Pipeline
from agentmesh.collector.receiver.grpc_server import OtlpGrpcReceiver
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.store.duckdb_store import DuckDBStore


def memory_kb(field: str, pid: str = "self") -> int:
    """Read ``VmRSS`` or ``VmHWM`` (kB) from ``/proc/PID/status``.

    Args:
        field: The field name.
        pid: The process id, or ``self``.

    Returns:
        The value in kB (0 when unavailable).
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


async def serve(db: str, max_batches: int, max_spans: int, max_cycle_spans: int) -> None:
    """Run the collector until stdin closes.

    Args:
        db: The DuckDB file.
        max_batches: Queue bound in batches.
        max_spans: Queue bound in spans.
        max_cycle_spans: Most spans per worker cycle.
    """
    settings = CollectorSettings.load(grpc_port=0, http_enabled=False)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stopped.set)), daemon=True
    ).start()
    async with (
        DuckDBStore(db) as store,
        Pipeline(
            store,
            builder=GraphBuilder(max_traces=settings.max_live_traces),
            rules=[HandoffLoopRule(settings.loop_max_repeats, settings.loop_max_cycle_length)],
            max_batches=max_batches,
            max_spans=max_spans,
            max_cycle_spans=max_cycle_spans,
        ) as pipeline,
        OtlpGrpcReceiver(pipeline.offer, settings) as receiver,
    ):
        print(json.dumps({"port": receiver.port}), flush=True)
        while not stopped.is_set():
            stats = pipeline.stats
            print(
                json.dumps(
                    {
                        "stored": stats.spans_stored,
                        "received": stats.spans_received,
                        "rejected_batches": stats.batches_rejected,
                        "failed_batches": stats.batches_failed,
                        "queued_spans": stats.queued_spans,
                        "cycles": stats.cycles,
                        "detections": stats.detections,
                        "p50_ms": pipeline.ingest_to_graph_ms(0.5),
                        "p99_ms": pipeline.ingest_to_graph_ms(0.99),
                        "rss_kb": memory_kb("VmRSS"),
                        "hwm_kb": memory_kb("VmHWM"),
                    }
                ),
                flush=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), 0.1)
        await pipeline.drain()
        print(json.dumps({"final_count": await store.count_spans()}), flush=True)


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--max-batches", type=int, default=1024)
    parser.add_argument("--max-spans", type=int, default=100_000)
    parser.add_argument("--max-cycle-spans", type=int, default=10_000)
    parser.add_argument("--gc-threshold", type=int, help="gen-0 threshold (gc.set_threshold)")
    parser.add_argument("--profile", help="write a cProfile of the event loop thread here")
    args = parser.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 50, 100)
    if args.profile:
        import cProfile

        cProfile.runctx(
            "asyncio.run(serve(args.db, args.max_batches, args.max_spans, args.max_cycle_spans))",
            globals(),
            {"args": args, "asyncio": asyncio, "serve": serve},
            args.profile,
        )
        return
    asyncio.run(serve(args.db, args.max_batches, args.max_spans, args.max_cycle_spans))


if __name__ == "__main__":
    main()
