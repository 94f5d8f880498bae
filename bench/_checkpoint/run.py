"""The interleaved runner: every saver runs the same thread side by side, step by step.

For one config (state size x thread length), each saver gets fresh storage; then for each
thread, step k is run by every saver in turn (the order rotated each step, so no saver always
goes first), each saver's ``get_tuple`` of the latest checkpoint right after its own ``put``
(every ``get_every`` steps), and after the thread each saver lists the thread ``list_reps``
times (order rotated too). The machine is shared and noisy: interleaving at this grain gives
every saver the same noise. A saver that raises is dropped from the rest of the config and the
error is reported. Once every thread is done the savers are closed, their storage measured and
dropped.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from _checkpoint.savers import Backends, SaverSpec, Storage
from _checkpoint.workload import ThreadDriver, ThreadPlan, make_plan


@dataclass(frozen=True)
class Config:
    """One cell of the matrix, for all savers.

    Attributes:
        size: State size label (``1KB``...).
        steps: Checkpoints per thread.
        threads: Threads run (one after the other, in the same storage).
        get_every: ``get_tuple`` after every this many steps.
        list_reps: ``list`` calls per thread per saver.
    """

    size: str
    steps: int
    threads: int
    get_every: int
    list_reps: int

    @property
    def name(self) -> str:
        """``<size>_<steps>``, e.g. ``1MB_200`` (used in schema and file names)."""
        return f"{self.size}_{self.steps}"


@dataclass
class Cell:
    """What one saver measured in one config (nanoseconds).

    Attributes:
        put_ns: ``put`` times.
        writes_ns: ``put_writes`` times.
        get_ns: ``get_tuple`` (latest) times.
        list_ns: ``list`` (whole thread) times.
        threads: Threads completed.
        stored_bytes: Bytes stored after all threads, ``None`` when not measurable.
        errors: What went wrong (a failed call, a wrong answer).
    """

    put_ns: list[int] = field(default_factory=list[int])
    writes_ns: list[int] = field(default_factory=list[int])
    get_ns: list[int] = field(default_factory=list[int])
    list_ns: list[int] = field(default_factory=list[int])
    threads: int = 0
    stored_bytes: int | None = None
    errors: list[str] = field(default_factory=list[str])

    @property
    def bytes_per_thread(self) -> float | None:
        """Bytes stored divided by threads completed."""
        if self.stored_bytes is None or self.threads == 0:
            return None
        return self.stored_bytes / self.threads


def rotated(items: Sequence[str], k: int) -> list[str]:
    """Return ``items`` rotated left by ``k`` (any ``k``)."""
    if not items:
        return []
    k %= len(items)
    return [*items[k:], *items[:k]]


class _Run:
    def __init__(self, cells: dict[str, Cell]) -> None:
        self.cells = cells
        self.failed: set[str] = set()

    def call(self, name: str, what: str, fn: Callable[[], Any]) -> Any:
        if name in self.failed:
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - any saver failure is reported, not fatal
            self.failed.add(name)
            self.cells[name].errors.append(f"{what}: {type(exc).__name__}: {exc}"[:300])
            return None

    def live(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if n not in self.failed]


def _run_thread(
    run: _Run, savers: dict[str, Any], plan: ThreadPlan, config: Config, thread: int
) -> None:
    clock = time.perf_counter_ns
    cells = run.cells
    drivers = {
        n: ThreadDriver(saver, f"thread-{thread:04d}", plan, clock) for n, saver in savers.items()
    }
    names = list(drivers)
    for n in rotated(names, thread):
        elapsed = run.call(n, "put (input)", drivers[n].start)
        if elapsed is not None:
            cells[n].put_ns.append(elapsed)
    for i in range(len(plan.steps)):
        do_get = (i + 1) % config.get_every == 0
        for n in run.live(rotated(names, thread + i + 1)):
            timed = run.call(n, f"step {i + 1}", lambda d=drivers[n], i=i: d.advance(i))
            if timed is None:
                continue
            cells[n].writes_ns.append(timed[0])
            cells[n].put_ns.append(timed[1])
            if do_get:
                got = run.call(n, f"get_tuple after step {i + 1}", drivers[n].get_latest)
                if got is not None:
                    cells[n].get_ns.append(got[0])
                    if not got[1]:
                        run.failed.add(n)
                        cells[n].errors.append(f"get_tuple after step {i + 1}: not the latest")
    for r in range(config.list_reps):
        for n in run.live(rotated(names, thread + r)):
            listed = run.call(n, "list", drivers[n].list_all)
            if listed is None:
                continue
            cells[n].list_ns.append(listed[0])
            if listed[1] != config.steps:
                run.failed.add(n)
                cells[n].errors.append(f"list: {listed[1]} checkpoints, {config.steps} put")
    for n in run.live(names):
        problem = run.call(n, "verify", drivers[n].verify)
        if problem:
            run.failed.add(n)
            cells[n].errors.append(f"verify: {problem}")
        elif n not in run.failed:
            cells[n].threads += 1


def _close(run: _Run, name: str, cm: contextlib.AbstractContextManager[Any]) -> None:
    try:
        cm.__exit__(None, None, None)
    except Exception as exc:  # noqa: BLE001 - reported with the saver's results
        run.failed.add(name)
        run.cells[name].errors.append(f"close: {type(exc).__name__}: {exc}"[:300])


def run_config(
    specs: Sequence[SaverSpec],
    backends: Backends,
    config: Config,
    seed: int,
    plan: ThreadPlan | None = None,
) -> dict[str, Cell]:
    """Run one config for every saver, interleaved; return each saver's cell.

    Args:
        specs: The savers.
        backends: Where their storage lives.
        config: Size, thread length, repetitions.
        seed: Seeds the content; thread ``k`` gets ``seed + k``, so no two threads hold the
            same values (a store that deduplicates equal values, as DuckDB's dictionary
            compression does within a column segment, must not gain from a repeated thread).
        plan: The content to use for every thread instead of generating it (tests).

    Returns:
        Saver name to its measurements (errors included; storage always dropped).
    """
    cells = {s.name: Cell() for s in specs}
    run = _Run(cells)
    storages: dict[str, Storage] = {s.name: s.make(backends, config.name) for s in specs}
    opened: dict[str, contextlib.AbstractContextManager[Any]] = {}
    savers: dict[str, Any] = {}
    try:
        for name, storage in storages.items():
            cm = run.call(name, "open", storage.open)
            if cm is None:
                continue
            opened[name] = cm
            saver = run.call(name, "open", cm.__enter__)
            if saver is not None:
                savers[name] = saver
        try:
            for thread in range(config.threads):
                content = plan or make_plan(config.size, config.steps, seed + thread)
                gc.collect()
                gc.freeze()  # the content and the savers' state: not traversed by collections
                _run_thread(run, savers, content, config, thread)
                del content
        finally:
            gc.unfreeze()
            for name, cm in opened.items():
                if name in savers:
                    _close(run, name, cm)
        for name, storage in storages.items():
            if name in savers and name not in run.failed:
                cells[name].stored_bytes = run.call(name, "size", storage.stored_bytes)
    finally:
        for storage in storages.values():
            with contextlib.suppress(Exception):
                storage.drop()
    return cells
