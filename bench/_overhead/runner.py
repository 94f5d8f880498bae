"""Drive the workers: one long-lived process per contender, interleaved round by round.

Each contender's worker runs in its venv and measures bare and instrumented calls itself, in
alternating blocks (see :mod:`_overhead.worker`). Each round visits the contenders in a rotated
order and asks each for one batch per mode; whether a batch starts with a bare or an
instrumented block alternates between rounds.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from _overhead.stats import MODES, Samples

BENCH_DIR = Path(__file__).resolve().parents[1]
# Settings a contender reads: cleared so each runs with its defaults.
_ENV_PREFIXES = ("OTEL_", "TRACELOOP_", "OPENINFERENCE_", "OPENLIT_", "AGENTMESH_")
REPLY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Plan:
    """How much to measure.

    Attributes:
        rounds: Rounds (each contender, each mode).
        calls: Timed calls of each kind (bare, instrumented) per batch.
        warmup: Untimed calls of each kind before each batch.
        block: Calls per block of one kind within a batch.
        cpu: CPU the workers are pinned to (-1: not pinned).
    """

    rounds: int
    calls: int
    warmup: int
    block: int = 25
    cpu: int = -1


def worker_env() -> dict[str, str]:
    """Return the environment of a worker: ours minus instrumentation settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_ENV_PREFIXES) and key not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONPATH"] = str(BENCH_DIR)
    return env


@dataclass(frozen=True)
class Batch:
    """A worker's answer to one batch.

    Attributes:
        bare_us: Median per-call time of the bare calls.
        median_us: Median per-call time of the instrumented calls.
        pairs_us: For each pair of adjacent blocks, (instrumented median, bare median).
        spans_per_call: Spans exported per instrumented call.
        bare_spans_per_call: Spans exported per bare call (0 when switching off worked).
        span_names: Names of the instrumented calls' spans.
    """

    bare_us: float
    median_us: float
    pairs_us: tuple[tuple[float, float], ...]
    spans_per_call: float
    bare_spans_per_call: float
    span_names: tuple[str, ...]


class Worker:
    """One worker process.

    Args:
        python: The venv's interpreter.
        peer: Contender name.
        mode: ``bare`` or ``instrumented``.
        cpu: CPU to pin to (-1: none).
    """

    def __init__(self, python: Path | str, peer: str, mode: str, cpu: int = -1) -> None:
        self.peer = peer
        self.mode = mode
        self.info: dict[str, object] = {}
        # A file, not a pipe: a chatty contender must never block on a full stderr pipe.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self._process = subprocess.Popen(
            [str(python), "-m", "_overhead.worker", peer, mode, "--cpu", str(cpu)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=BENCH_DIR,
            env=worker_env(),
        )

    def ready(self) -> dict[str, object]:
        """Wait for the worker's self-description (it has imported and set up everything)."""
        self.info = self._read()
        return self.info

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        return stdin, stdout

    def _read(self) -> dict[str, object]:
        stdout = self._pipes()[1]
        readable, _, _ = select.select([stdout], [], [], REPLY_TIMEOUT_S)
        line = stdout.readline() if readable else ""
        if not line:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._stderr.seek(0)
            stderr = self._stderr.read()
            raise RuntimeError(
                f"worker {self.peer}/{self.mode} gave no answer within {REPLY_TIMEOUT_S:.0f} s "
                f"(exit code {self._process.returncode}); its stderr ends with:\n{stderr[-4000:]}"
            )
        return json.loads(line)

    def batch(self, plan: Plan, stream: bool, bare_first: bool) -> Batch:
        """Ask for one timed batch (bare and instrumented blocks) and return its results."""
        stdin = self._pipes()[0]
        request = {
            "calls": plan.calls,
            "stream": stream,
            "warmup": plan.warmup,
            "block": plan.block,
            "bare_first": bare_first,
        }
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        got = self._read()
        names = cast("list[object]", got.get("span_names") or [])
        return Batch(
            bare_us=float(str(got["bare_median_ns"])) / 1000,
            median_us=float(str(got["median_ns"])) / 1000,
            pairs_us=tuple(
                (float(inst) / 1000, float(bare) / 1000)
                for inst, bare in cast("list[tuple[float, float]]", got["pairs_ns"])
            ),
            spans_per_call=float(str(got["spans_per_call"])),
            bare_spans_per_call=float(str(got["bare_spans_per_call"])),
            span_names=tuple(str(n) for n in names),
        )

    def close(self) -> None:
        """Close stdin: the worker exits once it has answered everything."""
        stdin = self._pipes()[0]
        if not stdin.closed:
            stdin.close()

    def wait(self) -> None:
        """Wait for the process to exit (killing it after 30 s) and release its files."""
        self.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._pipes()[1].close()
        self._stderr.close()


def measure(
    pythons: Mapping[str, Path | str],
    plan: Plan,
    progress: Callable[[str], None] = lambda _message: None,
) -> dict[str, Samples]:
    """Measure every contender as planned.

    Args:
        pythons: Contender name to the interpreter of its venv.
        plan: How much to measure.
        progress: Called with a short message after each round.

    Returns:
        Samples per contender, in the order of ``pythons``.
    """
    names = list(pythons)
    workers: dict[str, Worker] = {}
    try:
        for name in names:  # all start at once; their imports overlap
            workers[name] = Worker(pythons[name], name, "instrumented", plan.cpu)
        for worker in workers.values():
            worker.ready()
        progress(f"{len(names)} workers ready")
        results = {
            name: Samples(
                version=str(workers[name].info["version"]),
                patched=[str(p) for p in cast("list[object]", workers[name].info["patched"])],
            )
            for name in names
        }
        for round_no in range(plan.rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                samples = results[name]
                for mode in MODES:
                    got = workers[name].batch(plan, mode == "stream", round_no % 2 == 0)
                    samples.bare_us[mode].append(got.bare_us)
                    samples.instrumented_us[mode].append(got.median_us)
                    samples.pairs_us[mode].append(list(got.pairs_us))
                    samples.spans_per_call[mode].append(got.spans_per_call)
                    samples.bare_spans_per_call[mode].append(got.bare_spans_per_call)
                    samples.span_names.update(got.span_names)
            progress(f"round {round_no + 1}/{plan.rounds} done")
        return results
    finally:
        for worker in workers.values():  # all exit at once
            worker.close()
        for worker in workers.values():
            worker.wait()
        progress("workers stopped")
