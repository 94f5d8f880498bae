"""Time added per ``chat.completions.create`` call by AgentMesh and by each peer instrumentation.

Contenders: AgentMesh's ``OpenAIInstrumentor`` (this workspace, installed editable), OpenLLMetry
(``opentelemetry-instrumentation-openai``), OpenInference
(``openinference-instrumentation-openai``), OpenLIT (``openlit``) and the official OpenTelemetry
GenAI instrumentation (``opentelemetry-instrumentation-genai-openai``).

Each contender gets its own throwaway venv (instrumentations patch the same SDK, so they cannot
share a process), created with ``uv`` under ``~/.cache/agentmesh-bench/<name>-<hash>`` (or
``$AGENTMESH_BENCH_CACHE``) and reused while its requirements are unchanged. Every venv has the
same ``openai`` 2.x and ``httpx``, independent of the dev environment's. In each venv one
worker process applies the contender with its default settings (exporting through a
``SimpleSpanProcessor`` into an ``InMemorySpanExporter``) and times bare and instrumented calls
in alternating blocks: for bare calls it switches back in the SDK attributes the contender
replaced (found by comparing the SDK's attributes before and after instrumenting) and uses
clients built before instrumenting, and it checks that bare calls emit no span. Measuring both
in one process keeps process-to-process differences (±150 µs per call on a shared 2-core
machine) out of the figure. The SDK talks to an in-process ``httpx.MockTransport`` serving
canned JSON and SSE (with usage), so no network is involved. Rounds interleave contenders and
modes; each round yields instrumented median - bare median per call, and the figure is the
median over rounds (min..max is the noise). Plain and streamed calls are measured; a streamed
call is read to its end.

The JSON line's ``overhead_us`` is the mean of the plain and streamed overheads;
``ratio_vs_best_peer`` divides ours by the lightest peer's. Per-mode figures follow.

Run: ``uv run python bench/instrumentation_overhead.py`` (``--quick`` for a short run,
``--profile 3000`` to profile AgentMesh's wrapper instead).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _overhead import runner, stats, venvs
from _overhead.peers import BY_NAME, OPENAI_VERSION, PEERS, Peer, with_agentmesh


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of 100 calls")
    parser.add_argument("--rounds", type=int, default=None, help="default 9 (3 with --quick)")
    parser.add_argument(
        "--calls", type=int, default=None, help="timed calls of each kind per batch (600)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per batch (60)")
    parser.add_argument(
        "--block", type=int, default=25, help="calls per bare or instrumented block (25)"
    )
    parser.add_argument(
        "--peers",
        default=",".join(p.name for p in PEERS),
        help="comma-separated contenders (default: all)",
    )
    parser.add_argument("--cache-dir", type=Path, default=venvs.default_cache_dir())
    parser.add_argument(
        "--cpu",
        type=int,
        default=(os.cpu_count() or 1) - 1,
        help="CPU the workers are pinned to (-1: no pinning; default: the last one)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="CALLS",
        help="profile AgentMesh's wrapper over CALLS plain + CALLS streamed calls, then exit",
    )
    parser.add_argument(
        "--coexist",
        action="store_true",
        help="instead: install each peer next to AgentMesh and print the spans of one call "
        "in each instrumentation order and suppression scenario (duplicate-span probe)",
    )
    return parser.parse_args()


def _venvs(peers: list[Peer], cache_dir: Path) -> dict[str, venvs.Venv]:
    def ensure(peer: Peer) -> venvs.Venv:
        return venvs.ensure(peer, cache_dir)

    with ThreadPoolExecutor(max_workers=len(peers)) as pool:
        ready = list(pool.map(ensure, peers))
    return {venv.peer.name: venv for venv in ready}


def _coexist(peers: list[Peer], cache_dir: Path) -> None:
    combined = _venvs([with_agentmesh(peer) for peer in peers], cache_dir)
    for peer in peers:
        venv = combined[f"{peer.name}+agentmesh"]
        print(f"## {peer.label} {peer.requirements[0]} + AgentMesh", flush=True)
        subprocess.run(
            [str(venv.python), "-m", "_overhead.coexist", peer.name],
            cwd=runner.BENCH_DIR,
            env=runner.worker_env(),
            check=True,
        )


def main() -> None:
    args = _parse()
    rounds = args.rounds or (3 if args.quick else 9)
    calls = args.calls or (100 if args.quick else 600)
    warmup = args.warmup if args.warmup is not None else (20 if args.quick else 60)
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        sys.exit(f"unknown contenders {unknown}; known: {list(BY_NAME)}")
    started = time.perf_counter()
    peers = [BY_NAME["agentmesh"]] if args.profile else [BY_NAME[n] for n in names]
    ready = {} if args.coexist else _venvs(peers, args.cache_dir)
    installed = {name: v.install_s for name, v in ready.items() if v.install_s > 0}
    if installed:
        print(
            f"created venvs under {args.cache_dir}: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in installed.items())
        )
    if args.coexist:
        _coexist([p for p in peers if p.name != "agentmesh"], args.cache_dir)
        return
    if args.profile:
        venv = ready["agentmesh"]
        worker = [str(venv.python), "-m", "_overhead.worker", "agentmesh", "instrumented"]
        subprocess.run(
            [*worker, "--profile", str(args.profile)],
            cwd=runner.BENCH_DIR,
            env=runner.worker_env(),
            check=True,
        )
        return

    plan = runner.Plan(rounds=rounds, calls=calls, warmup=warmup, block=args.block, cpu=args.cpu)
    print(
        f"openai {OPENAI_VERSION} + httpx.MockTransport, SimpleSpanProcessor -> "
        f"InMemorySpanExporter; {rounds} rounds x {calls} bare + {calls} instrumented calls "
        f"(+{warmup} warm-up) per batch in blocks of {args.block}, one process per contender; "
        f"workers pinned to CPU {args.cpu}"
    )
    results = runner.measure(
        {name: v.python for name, v in ready.items()},
        plan,
        progress=lambda message: print(
            f"[{time.perf_counter() - started:5.1f} s] {message}", file=sys.stderr, flush=True
        ),
    )
    for name, samples in results.items():
        print(f"{name} patches: {', '.join(samples.patched) or 'nothing found'}")
    for line in stats.table(results, {p.name: p.label for p in PEERS}):
        print(line)
    for warning in stats.not_one_span(results):
        print(f"WARNING: {warning}")
    summary = stats.summary(results)
    ratio = summary["ratio_vs_best_peer"]
    if ratio is not None:
        print(
            f"agentmesh / lightest peer ({summary['best_peer']}): {ratio:.2f}x "
            f"(plain {summary['ratio_vs_best_peer_plain']}, "
            f"stream {summary['ratio_vs_best_peer_stream']}; goal <= 0.5)"
        )
    print(f"wall time {time.perf_counter() - started:.1f} s")
    print(
        json.dumps(
            {
                **summary,
                "benchmark": "instrumentation_overhead",
                "openai": OPENAI_VERSION,
                "rounds": rounds,
                "calls": calls,
                "block": args.block,
                "method": "in-process, bare and instrumented blocks alternating",
                "first_run_install_s": {k: round(v, 1) for k, v in installed.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
