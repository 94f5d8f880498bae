"""Rendering of runs, graphs, detections, costs and routing decisions for people, with rich."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, cast

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.measure import Measurement
from rich.table import Table
from rich.tree import Tree

from agentmesh.collector.detection import Detection
from agentmesh.collector.store.base import CostRow, RunStateName, RunSummary, StoredGraph
from agentmesh.router.catalog import undated_model

__all__ = [
    "format_time",
    "print_table",
    "printable",
    "render_costs",
    "render_decisions",
    "render_detections",
    "render_graph",
    "render_runs",
]

# Span text is the sender's: terminal escape sequences (ESC, C1 controls) and bidirectional
# overrides in it are shown as escapes, never sent to the terminal as they are.
_UNSAFE: Final = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x00, 0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
    if code != 0x0A  # line breaks in explanations stay line breaks
}


def printable(text: str) -> str:
    r"""Make text from spans safe to print: no rich markup, no terminal control sequences.

    Args:
        text: A run id, agent name, explanation or other text a sender chose.

    Returns:
        The text with markup escaped and control characters written as ``\xNN``.
    """
    return escape_markup(text.translate(_UNSAFE))


_UNBOUNDED: Final = 1 << 20
"""A width no table reaches: what a table is measured against to find its natural width."""


def print_table(console: Console, table: Table) -> None:
    """Print a table; to a pipe or a file, as wide as its content needs.

    rich lays out for the terminal's width, and for 80 columns (or ``COLUMNS``) when the
    output is not a terminal: a wide table then has its headers and cells cut to ``s…``. Output
    read by a program, a pager or a person opening the file later keeps every row on one line
    instead (the console is widened to the table's natural width, never narrowed).

    Args:
        console: Where to print.
        table: The table.
    """
    if not console.is_terminal:
        needed = Measurement.get(console, console.options.update_width(_UNBOUNDED), table)
        if needed.maximum > console.width:
            console.width = needed.maximum
    console.print(table)


def format_time(ns: int) -> str:
    """Format a Unix time in nanoseconds as UTC, to the millisecond.

    Args:
        ns: Nanoseconds since the epoch.

    Returns:
        For example ``2026-11-24 10:49:37.016``.
    """
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _sequence(graph: StoredGraph) -> str:
    if not graph.handoffs:
        return ", ".join(agent.name for agent in graph.agents) or "(no agents)"
    # one chain while each handoff leaves the agent the last one reached; a handoff from
    # elsewhere (a fan-out, a parallel lane) starts another chain
    chains: list[list[str]] = []
    last: str | None = None
    for edge in graph.handoffs:
        if edge.source != last:
            chains.append([edge.source])
        chains[-1].append(f"─{edge.kind}→ {edge.target}")
        last = edge.target
    return "; ".join(" ".join(chain) for chain in chains)


def _edges(graph: StoredGraph) -> list[tuple[str, str, str, int]]:
    counts: dict[tuple[str, str, str], int] = {}
    for edge in graph.handoffs:
        key = (edge.source, edge.target, edge.kind)
        counts[key] = counts.get(key, 0) + 1
    return [(s, t, k, n) for (s, t, k), n in counts.items()]


def render_graph(console: Console, graph: StoredGraph, detections: Sequence[Detection]) -> None:
    """Print a run's summary line, agents table, handoffs, agent sequence and detections.

    Args:
        console: Where to print.
        graph: The run's stored graph.
        detections: Detections raised on the run.
    """
    run = graph.run
    console.print(
        printable(
            f"trace {run.trace_id}  run {run.run_id}  workflow {run.workflow_name or '?'}  "
            f"spans {run.span_count}  LLM calls {run.llm_calls}  "
            f"tokens {run.input_tokens}/{run.output_tokens}  cost ${run.cost_usd:.6f}"
        )
    )
    if run.paused:
        console.print("paused: the run stopped to wait for input (it did not fail)")
    if run.error is not None:
        console.print(
            f"[bold red]FAILED[/bold red] {printable(run.error)}"
            + ("  (a later run continues it)" if run.resumptions else ""),
            soft_wrap=True,
        )
    elif run.interrupted is not None:
        console.print(
            f"[yellow]INTERRUPTED[/yellow] {printable(run.interrupted)}: the run was stopped "
            "before it finished (it did not fail)"
            + ("; a later run continues it" if run.resumptions else ""),
            soft_wrap=True,
        )
    if run.conversation_id is not None:
        console.print(printable(f"conversation {run.conversation_id}"))
    if run.resumed_from is not None:
        console.print(printable(f"continues run {run.resumed_from}"))
    table = Table(title="agents", title_justify="left")
    for column in ("agent", "invocations", "LLM calls", "tokens in", "tokens out", "cost USD"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for agent in graph.agents:
        table.add_row(
            printable(agent.name),
            str(agent.invocations),
            str(agent.llm_calls),
            str(agent.input_tokens),
            str(agent.output_tokens),
            f"{agent.cost_usd:.6f}",
        )
    console.print(table)
    tree = Tree(f"handoffs ({len(graph.handoffs)})")
    for source, target, kind, count in _edges(graph):
        tree.add(printable(f"{source} → {target}  [{kind}] x {count}"))
    console.print(tree)
    checkpointed = [edge for edge in graph.handoffs if edge.checkpoint_id is not None]
    if checkpointed:
        last = checkpointed[-1]
        console.print(
            printable(
                f"checkpoints: {len(checkpointed)} handoffs; last {last.checkpoint_id} "
                f"({last.source} → {last.target}, handoff {last.seq})"
            ),
            soft_wrap=True,
        )
    console.print(printable(f"sequence: {_sequence(graph)}"), soft_wrap=True)
    if not detections:
        console.print("[green]no detection[/green]")
    for detection in detections:
        console.print(
            f"[bold red]DETECTION[/bold red] {printable(detection.type)} ({detection.severity}): "
            f"{printable(detection.explanation)}"
        )


def render_costs(console: Console, rows: Sequence[CostRow], by: str) -> None:
    """Print LLM usage by agent or by model as a table, with a total.

    Args:
        console: Where to print.
        rows: The sums, one per agent or model.
        by: ``agent`` or ``model`` (the first column's name).
    """
    table = Table(title=f"costs by {by} ({len(rows)})", title_justify="left", show_footer=True)
    total = [sum(r.llm_calls for r in rows), sum(r.input_tokens for r in rows)]
    total += [sum(r.output_tokens for r in rows)]
    table.add_column(by, footer="total")
    for name, value in zip(("LLM calls", "tokens in", "tokens out"), total, strict=True):
        table.add_column(name, justify="right", footer=f"{value:,}")
    table.add_column("cost USD", justify="right", footer=f"{sum(r.cost_usd for r in rows):.6f}")
    unnamed = "(outside any agent)" if by == "agent" else "(not recorded)"
    for row in rows:
        table.add_row(
            unnamed if row.key is None else printable(row.key),
            f"{row.llm_calls:,}",
            f"{row.input_tokens:,}",
            f"{row.output_tokens:,}",
            f"{row.cost_usd:.6f}",
        )
    console.print(table)


_STATE_MARKUP: Final[Mapping[RunStateName, str]] = {
    "live": "live",
    "paused": "[yellow]paused[/yellow]",
    "resumed": "resumed",
    "failed": "[red]failed[/red]",
    "interrupted": "[yellow]interrupted[/yellow]",
    "complete": "complete",
}


def render_runs(console: Console, runs: Sequence[RunSummary]) -> None:
    """Print runs as a table, newest first.

    Args:
        console: Where to print.
        runs: The runs.
    """
    table = Table(title=f"runs ({len(runs)})", title_justify="left")
    for column in (
        "started (UTC)",
        "run id",
        "workflow",
        "agents",
        "handoffs",
        "LLM calls",
        "cost USD",
        "detections",
        "state",
    ):
        table.add_column(column)
    for run in runs:
        table.add_row(
            format_time(run.start_ns),
            printable(run.run_id),
            printable(run.workflow_name or "?"),
            printable(", ".join(run.agents)),
            str(run.handoffs),
            str(run.llm_calls),
            f"{run.cost_usd:.6f}",
            str(run.detections),
            _STATE_MARKUP[run.state],
        )
    console.print(table)


_SEVERITY_STYLES = {"critical": "bold red", "error": "red", "warning": "yellow"}


def render_detections(console: Console, detections: Sequence[Detection]) -> None:
    """Print detections as a table, newest first.

    Args:
        console: Where to print.
        detections: The detections, newest first.
    """
    table = Table(title=f"detections ({len(detections)})", title_justify="left")
    for column in ("detected (UTC)", "severity", "type", "run id", "agent", "explanation"):
        table.add_column(column)
    for d in detections:
        style = _SEVERITY_STYLES.get(d.severity)
        table.add_row(
            format_time(d.detected_at_ns),
            f"[{style}]{d.severity}[/{style}]" if style else printable(d.severity),
            printable(d.type),
            printable(d.run_id),
            printable(d.agent or "—"),
            printable(d.explanation),
        )
    console.print(table)


def _outcome(decision: Mapping[str, Any]) -> str:
    if decision.get("error"):
        return f"[red]{printable(str(decision.get('error_type') or 'error'))}[/red]"
    fallbacks = cast("list[str]", decision.get("fallbacks") or [])
    if fallbacks:
        return f"[yellow]ok after {printable(' → '.join(fallbacks))}[/yellow]"
    return "ok"


def _answered_by_another(decision: Mapping[str, object], chosen: str, answered: str) -> bool:
    """Whether a model other than the route's choice answered (a fallback, a shadow decision).

    ``sent_model`` says it; older rows are judged by their fallbacks, and by the answering
    model's name: the choice itself or a dated version of it (``gpt-4o-2024-08-06``), as the
    catalog reads names (:func:`~agentmesh.router.catalog.undated_model`).
    """
    sent = decision.get("sent_model")
    if sent:
        return sent != chosen
    if decision.get("fallbacks"):
        return True
    return undated_model(answered) != undated_model(chosen)


def render_decisions(console: Console, decisions: Sequence[Mapping[str, Any]]) -> None:
    """Print routing decisions and their outcomes as a table, newest first.

    Args:
        console: Where to print.
        decisions: The decisions as ``DecisionOutcome.as_dict`` or ``GET /v1/decisions``
            gives them.
    """
    table = Table(title=f"routing decisions ({len(decisions)})", title_justify="left")
    for column in ("UTC", "task class", "mode", "asked for → chosen", "outcome"):
        table.add_column(column)
    for column in ("latency s", "cost USD", "quality"):
        table.add_column(column, justify="right")
    table.add_column("run id")
    for d in decisions:
        cost = d.get("cost_usd")
        chosen = str(d.get("chosen") or "—")
        answered = d.get("model")
        if answered and _answered_by_another(d, chosen, str(answered)):  # a fallback, a pin
            chosen += f" (answered by {answered})"
        started = datetime.fromtimestamp(float(d["start_time"]), tz=UTC)
        table.add_row(
            started.strftime("%m-%d %H:%M:%S"),
            printable(str(d.get("task_class") or "—")),
            printable(str(d.get("mode") or "—")),
            printable(f"{d.get('requested_model') or '—'} → {chosen}"),
            _outcome(d),
            f"{float(d.get('latency_s') or 0.0):.3f}",
            f"{cost:.6f}" if isinstance(cost, int | float) else "—",
            f"{float(d['quality']):.2f}",
            printable(_short(str(d.get("run_id") or d.get("trace_id")))),
        )
    console.print(table)


def _short(identifier: str, length: int = 12) -> str:
    return identifier if len(identifier) <= length else identifier[:length] + "…"
