"""Cells of measurements to figures, goals and the JSON line (pure functions).

Latencies are per call, in µs: p50 and p99 by nearest rank. ``bytes`` is the storage a saver
used after a config, divided by the threads it ran (one thread for the 200-step configs).
The JSON's ``p50_put_us`` / ``p50_get_us`` / ``p50_list_us`` (and ``p99_*``) are
``{saver: {size: µs}}`` on the 200-step threads; ``*_10_steps`` keys give the same on the
10-step threads. ``ratio_vs_official_postgres`` is ours / official (lower is better) for
``put``, ``get``, ``list`` and ``bytes``, the worst (largest) over the three sizes on the
200-step threads; ``ratio_vs_official_postgres_by_size`` has each size.

Goals (issue 6), on the 200-step threads, at every size:
- ``postgres``: our Postgres saver's p50 put and get, and its bytes, at most half the official
  PostgresSaver's;
- ``duckdb``: our DuckDB saver's p50 put and get no higher than the official SqliteSaver's;
- ``redis``: our Redis saver's p50 put and get lower than every other saver's (langgraph's
  in-memory saver, when run, is not a contender).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from _checkpoint.run import Cell

OPS = ("put", "get", "list")
LONG = 200
SHORT = 10
OURS_PG, OFFICIAL_PG = "agentmesh_postgres", "official_postgres"
OURS_DUCKDB, OFFICIAL_SQLITE = "agentmesh_duckdb", "official_sqlite"
OURS_REDIS = "agentmesh_redis"
NOT_CONTENDERS = frozenset({"langgraph_memory"})

Results = Mapping[tuple[str, int], Mapping[str, Cell]]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile.

    Args:
        values: Samples.
        q: Between 0 and 1.

    Returns:
        The percentile, or ``None`` without samples.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Figures:
    """One saver in one config, reduced.

    Attributes:
        p50_us: Operation to its median µs (``None`` without samples).
        p99_us: Operation to its p99 µs.
        writes_p50_us: ``put_writes`` median µs.
        samples: Operation to its number of samples.
        bytes: Bytes stored per thread, ``None`` when not measured.
        errors: What went wrong.
    """

    p50_us: dict[str, float | None]
    p99_us: dict[str, float | None]
    writes_p50_us: float | None
    samples: dict[str, int]
    bytes: float | None
    errors: tuple[str, ...]


def _us(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1000.0, 1)


def figures(cell: Cell) -> Figures:
    """Reduce a cell to its figures."""
    series = {"put": cell.put_ns, "get": cell.get_ns, "list": cell.list_ns}
    return Figures(
        p50_us={op: _us(percentile(series[op], 0.5)) for op in OPS},
        p99_us={op: _us(percentile(series[op], 0.99)) for op in OPS},
        writes_p50_us=_us(percentile(cell.writes_ns, 0.5)),
        samples={op: len(series[op]) for op in OPS},
        bytes=cell.bytes_per_thread,
        errors=tuple(cell.errors),
    )


def reduce(results: Results) -> dict[tuple[str, int], dict[str, Figures]]:
    """Reduce every cell."""
    return {key: {n: figures(c) for n, c in cells.items()} for key, cells in results.items()}


def _sizes(figs: Mapping[tuple[str, int], Mapping[str, Figures]], steps: int) -> list[str]:
    return [size for size, n in figs if n == steps]


def _by_saver(
    figs: Mapping[tuple[str, int], Mapping[str, Figures]], steps: int, pick: str
) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for size in _sizes(figs, steps):
        for saver, f in figs[(size, steps)].items():
            value: float | None
            if pick == "bytes":
                value = None if f.bytes is None else round(f.bytes)
            else:
                stat, op = pick.split("_")
                value = (f.p50_us if stat == "p50" else f.p99_us)[op]
            out.setdefault(saver, {})[size] = value
    return out


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """Return ``ours / theirs`` rounded to 3 places, ``None`` when either is missing or 0."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, 3)


def _value(f: Figures, what: str) -> float | None:
    return f.bytes if what == "bytes" else f.p50_us[what]


def ratios_by_size(
    figs: Mapping[tuple[str, int], Mapping[str, Figures]], ours: str, theirs: str
) -> dict[str, dict[str, float | None]]:
    """Return ``{what: {size: ours / theirs}}`` on the 200-step threads (p50s, bytes)."""
    out: dict[str, dict[str, float | None]] = {w: {} for w in (*OPS, "bytes")}
    for size in _sizes(figs, LONG):
        cells = figs[(size, LONG)]
        for what in out:
            a, b = cells.get(ours), cells.get(theirs)
            out[what][size] = (
                None if a is None or b is None else ratio(_value(a, what), _value(b, what))
            )
    return out


def worst(by_size: Mapping[str, Mapping[str, float | None]]) -> dict[str, float | None]:
    """Return the largest ratio over sizes for each quantity (``None`` if any is missing)."""
    out: dict[str, float | None] = {}
    for what, sizes in by_size.items():
        values = list(sizes.values())
        out[what] = None if not values or None in values else max(v or 0.0 for v in values)
    return out


@dataclass(frozen=True)
class Goal:
    """One goal's verdict.

    Attributes:
        name: ``postgres``, ``duckdb`` or ``redis``.
        met: ``True``/``False``, ``None`` when not measured.
        detail: One line saying why.
    """

    name: str
    met: bool | None
    detail: str


def _fmt_ratios(by_size: Mapping[str, float | None]) -> str:
    return ", ".join(f"{s} {'-' if r is None else f'{r:.2f}'}" for s, r in by_size.items())


def goals(figs: Mapping[tuple[str, int], Mapping[str, Figures]]) -> list[Goal]:
    """Judge the three goals of the issue on the 200-step threads."""
    out: list[Goal] = []
    pg = ratios_by_size(figs, OURS_PG, OFFICIAL_PG)
    pg_worst = worst({k: pg[k] for k in ("put", "get", "bytes")})
    met = None if None in pg_worst.values() else all((v or 0.0) <= 0.5 for v in pg_worst.values())
    out.append(
        Goal(
            "postgres",
            met,
            "ours/official Postgres <= 0.5: "
            + "; ".join(f"{k} {_fmt_ratios(pg[k])}" for k in ("put", "get", "bytes")),
        )
    )
    dk = ratios_by_size(figs, OURS_DUCKDB, OFFICIAL_SQLITE)
    dk_worst = worst({k: dk[k] for k in ("put", "get")})
    met = None if None in dk_worst.values() else all((v or 0.0) <= 1.0 for v in dk_worst.values())
    out.append(
        Goal(
            "duckdb",
            met,
            "ours DuckDB / official SQLite <= 1: "
            + "; ".join(f"{k} {_fmt_ratios(dk[k])}" for k in ("put", "get")),
        )
    )
    slower: list[str] = []
    measured = True
    for size in _sizes(figs, LONG):
        cells = figs[(size, LONG)]
        redis = cells.get(OURS_REDIS)
        if redis is None or redis.errors:
            measured = False
            continue
        for op in ("put", "get"):
            mine = redis.p50_us[op]
            for other, f in cells.items():
                if other in (OURS_REDIS, *NOT_CONTENDERS):
                    continue
                theirs = f.p50_us[op]
                if mine is None or theirs is None:
                    continue
                if theirs <= mine:
                    slower.append(f"{size} {op}: {other} {theirs:.0f} <= {mine:.0f} µs")
    met = (not slower) if measured and _sizes(figs, LONG) else None
    if met is None:
        detail = "ours Redis fastest p50 put and get: ours Redis not measured"
    else:
        detail = "ours Redis fastest p50 put and get: " + ("; ".join(slower) or "yes, every size")
    out.append(Goal("redis", met, detail))
    return out


def summary(
    results: Results, versions: Mapping[str, str], quick: bool, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the JSON line (see the module docstring)."""
    figs = reduce(results)
    by_size = ratios_by_size(figs, OURS_PG, OFFICIAL_PG)
    verdicts = goals(figs)
    out: dict[str, Any] = {"benchmark": "checkpoint"}
    for pick in ("p50_put", "p50_get", "p50_list", "p99_put", "p99_get", "p99_list"):
        out[f"{pick}_us"] = _by_saver(figs, LONG, pick)
    out["bytes_200_steps"] = _by_saver(figs, LONG, "bytes")
    out["ratio_vs_official_postgres"] = worst(by_size)
    out["ratio_vs_official_postgres_by_size"] = by_size
    out["ratio_duckdb_vs_official_sqlite"] = worst(
        ratios_by_size(figs, OURS_DUCKDB, OFFICIAL_SQLITE)
    )
    for pick in ("p50_put", "p50_get", "p50_list"):
        out[f"{pick}_us_10_steps"] = _by_saver(figs, SHORT, pick)
    out["bytes_10_steps"] = _by_saver(figs, SHORT, "bytes")
    out["goals"] = {g.name: g.met for g in verdicts}
    out["goal_met"] = all(g.met is True for g in verdicts)
    errors: dict[str, list[str]] = {}
    for (size, steps), cells in figs.items():
        for saver, f in cells.items():
            errors.setdefault(saver, []).extend(f"{size}/{steps}: {e}" for e in f.errors)
    errors = {saver: found for saver, found in errors.items() if found}
    if errors:
        out["errors"] = errors
    out["versions"] = dict(versions)
    out.update(extra)
    if quick:
        out["quick"] = True
    return out
