"""LangGraph checkpoint savers: put / get / list latency and bytes stored, ours vs official.

Savers (``_checkpoint/savers.py``): our ``agentmesh.checkpoint.langgraph`` PostgresSaver,
RedisSaver and DuckDBSaver; the official ``langgraph-checkpoint-postgres`` PostgresSaver on the
same Postgres and the official ``langgraph-checkpoint-sqlite`` SqliteSaver (file) as the
embedded reference (``--savers langgraph_memory,...`` adds langgraph's InMemorySaver). The
official savers are not project dependencies: the benchmark installs them into a cache
directory and appends it to ``sys.path`` (``_checkpoint/peers.py``), so all savers run in this
one process, through the SYNC API, interleaved step by step (``_checkpoint/run.py``).

Workload (``_checkpoint/workload.py``): agent threads of 10 and 200 checkpoints with a
text-like state of 1 KB, 100 KB or 1 MB (a message history and retrieved documents), driven
the way LangGraph's loop drives a saver: ``put_writes`` of each step's task writes, ``put`` with
``new_versions`` of the channels that changed (versions from the saver's ``get_next_version``),
``get_tuple`` of the latest checkpoint after each put and ``list`` of the whole thread after it.
Full run: 20 ten-step threads and one 200-step thread (listed 3 times) per size; ``--quick``:
3 ten-step threads and one 200-step thread (a get after every 4th put, listed once). Every
saver's answers are checked (latest id, thread length, values round-tripped); a saver that
fails is dropped from that config and its error reported. Storage: each saver gets a schema /
key prefix / file of its own per config, measured after close, then dropped.

Reported: the floor (``SELECT 1``, a durable one-row ``INSERT``, ``PING``;
``_checkpoint/floor.py``; with the official Postgres saver's 1 KB put, whether half of it is
below one durable commit on this server, which no durable put can beat), p50 / p99 µs
of put, get and list (and p50 of put_writes), bytes stored per thread,
goals of issue 6 (``_checkpoint/stats.py``): our Postgres saver at most half the official
PostgresSaver's p50 put and get and bytes on 200-step threads; our DuckDB saver no slower than
SqliteSaver; our Redis saver the fastest of all. The last line is JSON: ``p50_put_us``,
``p50_get_us`` (``{saver: {size: µs}}`` on 200-step threads), ``bytes_200_steps``,
``ratio_vs_official_postgres`` (ours / official, worst size) and more.

Run: ``uv run python bench/checkpoint.py`` (2-4 minutes) or with ``--quick`` (about 35 s on
an idle 2-core machine, longer on a loaded one; most of it is the 1 MB x 200-step thread).
``--postgres DSN`` (default ``$AGENTMESH_BENCH_POSTGRES`` or
``postgresql://postgres@127.0.0.1:5432/test``), ``--redis URL`` (``$AGENTMESH_BENCH_REDIS`` or
``redis://127.0.0.1:6379/0``), ``--savers a,b`` (names of the JSON), ``--sizes 1KB,1MB``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _checkpoint import floor, peers
from _checkpoint.report import error_lines, goal_lines, table
from _checkpoint.run import Cell, Config, run_config
from _checkpoint.savers import BY_NAME, DEFAULT, Backends, SaverSpec
from _checkpoint.stats import LONG, SHORT, goals, reduce, summary
from _checkpoint.workload import SIZES, make_plan
from rich.console import Console

SEED = 6


def _configs(quick: bool, sizes: list[str]) -> list[Config]:
    configs: list[Config] = []
    for size in sizes:
        if quick:
            configs.append(Config(size, SHORT, threads=3, get_every=1, list_reps=1))
            configs.append(Config(size, LONG, threads=1, get_every=4, list_reps=1))
        else:
            configs.append(Config(size, SHORT, threads=20, get_every=1, list_reps=1))
            configs.append(Config(size, LONG, threads=1, get_every=1, list_reps=3))
    return configs


def _state_bytes(size: str) -> int:
    """Serialized size (langgraph's serde) of a thread's initial state (the size it keeps)."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    plan = make_plan(size, 2, SEED)
    serde = JsonPlusSerializer()
    return sum(len(serde.dumps_typed(v)[1]) for v in (plan.messages, plan.documents))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer threads and samples (< 60 s)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "AGENTMESH_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--redis", default=os.environ.get("AGENTMESH_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--savers", default=",".join(DEFAULT), help="comma-separated names")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: 1KB,100KB,1MB")
    args = parser.parse_args()
    console = Console(stderr=True, width=150)
    started = time.perf_counter()

    peer_dir = peers.ensure(peers.default_cache_dir())
    versions = peers.versions()
    console.print(
        "peers: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + (f" (installed in {peer_dir.install_s:.1f} s)" if peer_dir.install_s else " (cached)")
    )
    specs: list[SaverSpec] = []
    missing: dict[str, str] = {}
    for name in args.savers.split(","):
        spec = BY_NAME[name.strip()]
        why = spec.missing()
        if why is None:
            specs.append(spec)
        else:
            missing[spec.name] = why
            console.print(f"[yellow]skipped {spec.name}: {why}[/yellow]")
    sizes = [s.strip() for s in args.sizes.split(",")]
    state_bytes = {size: _state_bytes(size) for size in sizes}
    for size, n in state_bytes.items():
        console.print(f"state {size}: {n:,} bytes serialized (messages, documents)")

    floor_us = floor.measure(args.postgres, args.redis)
    console.print(
        "round-trip floor p50: "
        + ", ".join(f"{k} {'-' if v is None else f'{v:.0f}'} µs" for k, v in floor_us.items())
    )
    results: dict[tuple[str, int], dict[str, Cell]] = {}
    with tempfile.TemporaryDirectory(prefix="agentmesh-bench-ckpt-") as workdir:
        backends = Backends(args.postgres, args.redis, Path(workdir), f"ambench{os.getpid()}")
        for config in _configs(args.quick, sizes):
            t0 = time.perf_counter()
            results[(config.size, config.steps)] = run_config(specs, backends, config, SEED)
            console.print(
                f"{config.size} x {config.steps} steps x {config.threads} thread(s): "
                f"{time.perf_counter() - t0:.1f} s",
                style="dim",
            )
    figs = reduce(results)
    mode = "quick" if args.quick else "full"
    console.print(table(figs, specs, f"Checkpoint savers, sync API, µs per call ({mode} run)"))
    for line in [*error_lines(figs), *goal_lines(goals(figs))]:
        console.print(line)
    elapsed = time.perf_counter() - started
    console.print(f"elapsed {elapsed:.1f} s", style="dim")
    extra: dict[str, object] = {
        "state_bytes": state_bytes,
        "floor_us": floor_us,
        "elapsed_s": round(elapsed, 1),
    }
    if missing:
        extra["skipped"] = missing
    out = summary(results, versions, args.quick, extra)
    line = floor.commit_floor_line(out, floor_us)
    if line is not None:
        console.print(line)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
