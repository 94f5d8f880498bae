"""Print the demo's report for a person, with rich."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from agentmesh.collector.cli.render import render_graph
from agentmesh.collector.demo.runner import DemoReport, DemoRunReport

__all__ = ["render_report"]


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
    render_graph(console, graph, report.detections)


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
