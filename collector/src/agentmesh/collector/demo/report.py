"""Print the demo's report for a person, with rich."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from agentmesh.collector.demo.runner import DemoReport, DemoRunReport
from agentmesh.collector.store.base import StoredGraph

__all__ = ["render_report"]


def _sequence(graph: StoredGraph) -> str:
    if not graph.handoffs:
        return ", ".join(agent.name for agent in graph.agents) or "(no agents)"
    parts = [graph.handoffs[0].source]
    for edge in graph.handoffs:
        parts.append(f"─{edge.kind}→ {edge.target}")
    return " ".join(parts)


def _edges(graph: StoredGraph) -> list[tuple[str, str, str, int]]:
    counts: dict[tuple[str, str, str], int] = {}
    for edge in graph.handoffs:
        key = (edge.source, edge.target, edge.kind)
        counts[key] = counts.get(key, 0) + 1
    return [(s, t, k, n) for (s, t, k), n in counts.items()]


def _render_run(console: Console, number: int, report: DemoRunReport) -> None:
    app = report.app
    console.rule(f"[bold]Run {number}: {app.label}")
    last_line = app.output.strip().splitlines()[-1] if app.output.strip() else "(no output)"
    console.print(
        f"app exit code {app.exit_code} in {app.seconds:.1f} s — app said: {escape(last_line)}"
    )
    graph = report.graph
    if graph is None:
        console.print("[red]no spans arrived for this run[/red]")
        if app.errors.strip():
            console.print(escape(app.errors.strip()[-2000:]))
        return
    run = graph.run
    console.print(
        f"trace {run.trace_id}  run {run.run_id}  workflow {run.workflow_name or '?'}  "
        f"spans {run.span_count}  LLM calls {run.llm_calls}  "
        f"tokens {run.input_tokens}/{run.output_tokens}  cost ${run.cost_usd:.6f}"
    )
    table = Table(title="agents", title_justify="left")
    for column in ("agent", "invocations", "LLM calls", "tokens in", "tokens out", "cost USD"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for agent in graph.agents:
        table.add_row(
            agent.name,
            str(agent.invocations),
            str(agent.llm_calls),
            str(agent.input_tokens),
            str(agent.output_tokens),
            f"{agent.cost_usd:.6f}",
        )
    console.print(table)
    tree = Tree(f"handoffs ({len(graph.handoffs)})")
    for source, target, kind, count in _edges(graph):
        tree.add(escape(f"{source} → {target}  [{kind}] x {count}"))
    console.print(tree)
    console.print(escape(f"sequence: {_sequence(graph)}"), soft_wrap=True)
    if report.detections:
        for detection in report.detections:
            console.print(
                f"[bold red]DETECTION[/bold red] {detection.type} ({detection.severity}): "
                f"{escape(detection.explanation)}"
            )
    else:
        console.print("[green]no detection[/green]")


def render_report(report: DemoReport, console: Console) -> None:
    """Print the demo's report.

    Args:
        report: What :func:`~agentmesh.collector.demo.runner.run_demo` returned.
        console: Where to print.
    """
    console.print("[bold]AgentMesh demo[/bold]")
    console.print(f"fake provider   {report.provider_url}")
    console.print(f"collector       OTLP/gRPC {report.collector_endpoint}")
    for number, run in enumerate(report.runs, 1):
        _render_run(console, number, run)
    console.rule("[bold]Summary")
    detections = sum(len(run.detections) for run in report.runs)
    console.print(
        f"spans received {report.spans_received}, stored {report.spans_stored}; "
        f"runs {len(report.runs)}; detections {detections}; {report.seconds:.1f} s in all"
    )
    console.print(
        f"data stored in the DuckDB file {report.db_path} "
        "(tables spans, agents, handoffs, detections)"
    )
