"""The AgentMesh side of the benchmark: one collector (gRPC → graph → loop rule → DuckDB).

Set up as ``agentmesh collector`` sets itself up: the garbage-collector tuning and the decode
worker processes of the settings (``--decode-workers`` overrides; 0 decodes in-process), and
the settings' DuckDB memory limit, threads and dedupe window (``AGENTMESH_COLLECTOR_*``).

Run as ``python bench/_throughput/server.py DB_PATH [--max-batches N] [--max-spans N]``. It
prints ``{"port": …}`` once listening, then a JSON status line every 0.1 s (stored spans, queue,
ingest→graph latency percentiles, traces held by the graph builder, resident memory and CPU
seconds of this process and of its child processes, the decode workers); closing its stdin stops
it, after which it prints a final line with the stored count read back from DuckDB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

from agentmesh.collector.detectors.handoff_loop import HandoffLoopRule
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.pipeline import Pipeline
from agentmesh.collector.receiver.decode_pool import DecodePool
from agentmesh.collector.receiver.grpc_server import OtlpGrpcReceiver
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.runtime import tune_gc
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


def descendants() -> list[str]:
    """The pids of this process's descendants (decode workers and helpers)."""
    found: list[str] = []
    pending = ["self"]
    while pending:
        pid = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children", "rb") as fh:
                    children = fh.read().decode().split()
            except OSError:
                continue
            found.extend(children)
            pending.extend(children)
    return found


_TICKS = os.sysconf("SC_CLK_TCK")
_RESCAN_SECONDS = 1.0


class Children:
    """Resident memory and CPU time of this process's descendants, read from ``/proc``.

    The status loop reads them ten times a second while the collector runs flat out, so the
    walk that finds the descendants (every thread's ``children`` file) runs once a second,
    not per reading: per reading it cost the collector's process about 1 ms of CPU and GIL.
    A worker started since the last walk is counted from the next one.
    """

    def __init__(self) -> None:
        self._pids: list[str] = []
        self._scanned = float("-inf")

    def _current(self) -> list[str]:
        now = time.monotonic()
        if now - self._scanned >= _RESCAN_SECONDS:
            self._pids, self._scanned = descendants(), now
        return self._pids

    def rss_kb(self) -> int:
        """The summed ``VmRSS`` (kB) of the descendants."""
        return sum(memory_kb("VmRSS", child) for child in self._current())

    def cpu_s(self) -> float:
        """The CPU seconds (user + system) used so far by the live descendants."""
        total = 0
        for child in self._current():
            try:
                with open(f"/proc/{child}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / _TICKS


async def serve(
    db: str, max_batches: int, max_spans: int, max_cycle_spans: int, decode_workers: int | None
) -> None:
    """Run the collector until stdin closes.

    Args:
        db: The DuckDB file.
        max_batches: Queue bound in batches.
        max_spans: Queue bound in spans.
        max_cycle_spans: Most spans per worker cycle.
        decode_workers: Decode processes (``None``: the settings' default).
    """
    settings = CollectorSettings.load(grpc_port=0, http_enabled=False)
    workers = settings.effective_decode_workers if decode_workers is None else decode_workers
    pool = DecodePool(workers, DecodeLimits.from_settings(settings)) if workers > 0 else None
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stopped.set)), daemon=True
    ).start()
    builder = GraphBuilder(
        max_traces=settings.max_live_traces,
        complete_linger_seconds=settings.complete_trace_linger_seconds,
        idle_timeout_seconds=settings.trace_idle_timeout_seconds,
    )
    async with (
        DuckDBStore(
            db,
            dedupe_spans=settings.duckdb_dedupe_spans,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            checkpoint_threshold=settings.duckdb_checkpoint_threshold,
        ) as store,
        Pipeline(
            store,
            builder=builder,
            rules=[HandoffLoopRule(settings.loop_max_repeats, settings.loop_max_cycle_length)],
            max_batches=max_batches,
            max_spans=max_spans,
            max_cycle_spans=max_cycle_spans,
            graph_write_seconds=settings.graph_write_seconds,
        ) as pipeline,
        contextlib.AsyncExitStack() as stack,
    ):
        if pool is not None:
            await stack.enter_async_context(pool)
        receiver = await stack.enter_async_context(
            OtlpGrpcReceiver(pipeline, settings, decode_pool=pool)
        )
        print(json.dumps({"port": receiver.port, "decode_workers": workers}), flush=True)
        tick = 0
        children = Children()
        p50: float | None = None
        p99: float | None = None
        while not stopped.is_set():
            stats = pipeline.stats
            if tick % 5 == 0:  # sorting 65,536 latencies costs: twice a second is enough
                p50, p99 = pipeline.ingest_to_graph_quantiles_ms(0.5, 0.99)
            tick += 1
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
                        "p50_ms": p50,
                        "p99_ms": p99,
                        "live_traces": len(builder),
                        "evicted_traces": builder.evicted,
                        "rss_kb": memory_kb("VmRSS"),
                        "children_rss_kb": children.rss_kb(),
                        "cpu_s": time.process_time(),
                        "children_cpu_s": children.cpu_s(),
                        "hwm_kb": memory_kb("VmHWM"),
                        # the store samples it itself, at most once a second
                        "duckdb_kb": (store.memory_sampled or 0) // 1024,
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
    parser.add_argument("--decode-workers", type=int, help="decode processes (0: in-process)")
    parser.add_argument("--profile", help="write a cProfile of the event loop thread here")
    args = parser.parse_args()
    tune_gc()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 50, 100)
    if args.profile:
        import cProfile

        cProfile.runctx(
            "asyncio.run(serve(args.db, args.max_batches, args.max_spans, args.max_cycle_spans,"
            " args.decode_workers))",
            globals(),
            {"args": args, "asyncio": asyncio, "serve": serve},
            args.profile,
        )
        return
    asyncio.run(
        serve(args.db, args.max_batches, args.max_spans, args.max_cycle_spans, args.decode_workers)
    )


if __name__ == "__main__":
    main()
