"""``agentmesh check``: what a collector with this configuration needs, checked before it starts.

Takes the same flags and ``AGENTMESH_COLLECTOR_*`` variables as ``agentmesh collector`` and
prints one line per check (ports, TLS, store, Redis, forwarding endpoints); exits 1 when one
fails, 0 otherwise (warnings included). Nothing is started or written. A configuration the
collector refuses before it starts (a wrong flag or variable) is refused the same way, by the
same code: ``invalid configuration: …``, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from agentmesh.collector.cli.collector_cmd import add_collector_flags, load_collector_settings

__all__ = ["add_check_command"]

_MARKS = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def add_check_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh check``: the collector's, and ``--json``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument(
        "--json", action="store_true", help="print the findings as JSON (one object per check)"
    )
    add_collector_flags(parser)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from agentmesh.collector.preflight import run_checks

    settings = load_collector_settings(args)  # refuses what `agentmesh collector` refuses
    findings = asyncio.run(run_checks(settings))
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("check", "", "detail"):
            table.add_column(column, overflow="fold")
        for finding in findings:
            table.add_row(finding.check, _MARKS[finding.verdict], escape(finding.detail))
        console = Console()
        console.print(table)
        failed = sum(f.verdict == "fail" for f in findings)
        warned = sum(f.verdict == "warn" for f in findings)
        verdict = "[red]not ready to start[/]" if failed else "[green]ready to start[/]"
        console.print(f"{verdict}: {failed} failed, {warned} warning(s)")
    return 1 if any(f.verdict == "fail" for f in findings) else 0
