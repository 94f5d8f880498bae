"""``agentmesh runs``, ``agentmesh graph RUN_ID`` and ``agentmesh export``: read what was stored."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from agentmesh.collector.cli.store_options import add_store_options, store_settings
from agentmesh.collector.export import EXPORT_FORMATS
from agentmesh.core import ConfigError

if TYPE_CHECKING:
    from agentmesh.collector.settings import CollectorSettings
    from agentmesh.collector.store import RunSummary, SpanStore

__all__ = ["add_export_command", "add_graph_command", "add_runs_command", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Parse ``90s``, ``15m``, ``2h`` or ``7d`` into nanoseconds.

    Args:
        text: The duration.

    Returns:
        Nanoseconds.

    Raises:
        ConfigError: The text is not a duration.

    Example:
        >>> parse_duration("15m")
        900000000000
    """
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit():
        raise ConfigError(f"--since {text!r}: expected a number and a unit, like 90s, 15m, 2h, 7d")
    return int(number) * _UNITS[unit] * 1_000_000_000


async def _open(settings: CollectorSettings) -> SpanStore:
    from agentmesh.collector.store.factory import make_store

    store = make_store(settings)
    await store.open()
    return store


def add_runs_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh runs``.

    Args:
        parser: The subcommand's parser.
    """
    add_store_options(parser)
    parser.add_argument("--limit", type=int, default=20, help="most runs listed (default 20)")
    parser.add_argument("--since", help="only runs started this long ago or later (15m, 2h, 7d)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=_runs)


def _runs(args: argparse.Namespace) -> int:
    settings = store_settings(args)
    since = None if args.since is None else time.time_ns() - parse_duration(args.since)

    async def read() -> list[RunSummary]:
        store = await _open(settings)
        try:
            return await store.runs(int(args.limit), since_ns=since)
        finally:
            await store.close()

    runs = asyncio.run(read())
    if args.json:
        for run in runs:
            print(json.dumps(asdict(run)))
    else:
        from rich.console import Console

        from agentmesh.collector.cli.render import render_runs

        render_runs(Console(), runs)
    return 0


def add_graph_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh graph``.

    Args:
        parser: The subcommand's parser.
    """
    add_store_options(parser)
    parser.add_argument("run", metavar="RUN_ID", help="run id or trace id (a unique prefix works)")
    parser.set_defaults(handler=_graph)


def _graph(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agentmesh.collector.cli.render import render_graph

    settings = store_settings(args)
    wanted = str(args.run).lower()

    async def read() -> int:
        store = await _open(settings)
        try:
            matches = [
                run
                for run in await store.runs()
                if run.run_id.lower().startswith(wanted) or run.trace_id.startswith(wanted)
            ]
            if len(matches) != 1:
                found = "no run" if not matches else f"{len(matches)} runs"
                raise ConfigError(f"{found} match {args.run!r}; `agentmesh runs` lists them")
            trace_id = matches[0].trace_id
            graph = await store.graph(trace_id)
            if graph is None:
                raise ConfigError(f"run {args.run!r} has no stored graph yet")
            render_graph(Console(), graph, await store.detections(trace_id))
            return 0
        finally:
            await store.close()

    return asyncio.run(read())


def add_export_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh export``.

    Args:
        parser: The subcommand's parser.
    """
    add_store_options(parser)
    parser.add_argument(
        "--format", choices=EXPORT_FORMATS, default="parquet", help="file format (default parquet)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("agentmesh-export"), help="directory to write into"
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    settings = store_settings(args)

    from agentmesh.collector.export import export_store

    async def run() -> dict[str, int]:
        store = await _open(settings)
        try:
            return await export_store(store, Path(args.out), str(args.format))
        finally:
            await store.close()

    counts = asyncio.run(run())
    for table, rows in counts.items():
        print(f"{table}: {rows} rows → {Path(args.out) / f'{table}.{args.format}'}")
    return 0
