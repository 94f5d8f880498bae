"""The table and the goal lines (rich renderables; pure functions of the figures)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.markup import escape
from rich.table import Table

from _checkpoint.savers import SaverSpec
from _checkpoint.stats import Figures, Goal


def fmt_us(value: float | None) -> str:
    """µs as an integer with thousands separators, ms above 100 ms; ``-`` when missing."""
    if value is None:
        return "-"
    if value >= 100_000:
        return f"{value / 1000:,.0f} ms"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def fmt_bytes(value: float | None) -> str:
    """Bytes in decimal units (B, kB, MB, GB); ``-`` when missing."""
    if value is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return (
                f"{value / scale:.2f} {unit}"
                if value < 10 * scale
                else f"{value / scale:.1f} {unit}"
            )
    return f"{value:.0f} B"


def table(
    figs: Mapping[tuple[str, int], Mapping[str, Figures]], specs: Sequence[SaverSpec], title: str
) -> Table:
    """One row per config x saver: latencies (µs), bytes per thread, samples, errors."""
    t = Table(title=title)
    for column in (
        "size", "steps", "saver", "put p50", "put p99", "writes p50", "get p50", "get p99",
        "list p50", "list p99", "bytes/thread", "n put/get/list",
    ):  # fmt: skip
        t.add_column(column, justify="left" if column in ("size", "saver") else "right")
    labels = {s.name: s.label for s in specs}
    for (size, steps), cells in figs.items():
        for k, (saver, f) in enumerate(cells.items()):
            label = labels.get(saver, saver)
            style = "red" if f.errors else ("bold" if saver.startswith("agentmesh") else "")
            t.add_row(
                size if k == 0 else "",
                str(steps) if k == 0 else "",
                f"[{style}]{label}[/{style}]" if style else label,
                fmt_us(f.p50_us["put"]),
                fmt_us(f.p99_us["put"]),
                fmt_us(f.writes_p50_us),
                fmt_us(f.p50_us["get"]),
                fmt_us(f.p99_us["get"]),
                fmt_us(f.p50_us["list"]),
                fmt_us(f.p99_us["list"]),
                fmt_bytes(f.bytes),
                "/".join(str(f.samples[op]) for op in ("put", "get", "list")),
                end_section=k == len(cells) - 1,
            )
    return t


def goal_lines(verdicts: Sequence[Goal]) -> list[str]:
    """One rich-markup line per goal: met / NOT met / not measured, with the ratios."""
    lines: list[str] = []
    for g in verdicts:
        if g.met is None:
            state = "[yellow]not measured[/yellow]"
        else:
            state = "[green]met[/green]" if g.met else "[red]NOT met[/red]"
        lines.append(f"goal {g.name}: {state} ({g.detail})")
    return lines


def error_lines(figs: Mapping[tuple[str, int], Mapping[str, Figures]], limit: int = 3) -> list[str]:
    """Rich-markup lines naming each saver's first errors per config (at most ``limit``)."""
    lines: list[str] = []
    for (size, steps), cells in figs.items():
        for saver, f in cells.items():
            for error in f.errors[:limit]:
                lines.append(f"[red]{saver} {size}/{steps}: {escape(error)}[/red]")
    return lines
