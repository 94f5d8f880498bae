"""``agentmesh runs``, ``agentmesh graph RUN_ID`` and ``agentmesh export``: read what was stored."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.parse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from agentmesh.collector.cli.collector_client import get_json
from agentmesh.collector.cli.store_options import add_store_options, store_settings
from agentmesh.collector.durations import parse_duration
from agentmesh.collector.export import EXPORT_FORMATS
from agentmesh.core import ConfigError

if TYPE_CHECKING:
    from agentmesh.collector.detection import Detection
    from agentmesh.collector.settings import CollectorSettings
    from agentmesh.collector.store import RunSummary, SpanStore, StoredGraph
    from agentmesh.collector.store.base import CostGroup, CostRow

__all__ = [
    "add_costs_command",
    "add_export_command",
    "add_graph_command",
    "add_runs_command",
    "parse_duration",
]


def _since(text: str) -> int:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise ConfigError(f"--since {exc}") from exc


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
    _add_collector_option(parser)
    parser.set_defaults(handler=_runs)


def _add_collector_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--collector",
        metavar="URL",
        help="ask a running collector's OTLP/HTTP endpoint (http://127.0.0.1:4318) instead of "
        "reading the store: no need to stop a DuckDB collector (AGENTMESH_API_TOKEN: its token)",
    )


def _runs_from_collector(base: str, limit: int, since: str | None) -> list[RunSummary]:
    from agentmesh.collector.api.payloads import run_from_json

    query = {"limit": str(limit)} | ({"since": since} if since is not None else {})
    answer = cast("dict[str, list[dict[str, object]]]", get_json(base, "/v1/runs", **query))
    return [run_from_json(run) for run in answer["runs"]]


def _runs(args: argparse.Namespace) -> int:
    if args.collector:
        runs = _runs_from_collector(str(args.collector), int(args.limit), args.since)
    else:
        settings = store_settings(args)
        since = None if args.since is None else time.time_ns() - _since(args.since)

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


def add_costs_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh costs``.

    Args:
        parser: The subcommand's parser.
    """
    add_store_options(parser)
    parser.add_argument(
        "--by", choices=("agent", "model"), default="agent", help="sum by agent (default) or model"
    )
    parser.add_argument("--since", help="only runs started this long ago or later (15m, 2h, 7d)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    _add_collector_option(parser)
    parser.set_defaults(handler=_costs)


def _costs(args: argparse.Namespace) -> int:
    by: CostGroup = "model" if args.by == "model" else "agent"
    if args.collector:
        from agentmesh.collector.api.payloads import cost_from_json

        query = {"group_by": by} | ({"since": args.since} if args.since is not None else {})
        answer = cast(
            "dict[str, list[dict[str, object]]]", get_json(args.collector, "/v1/costs", **query)
        )
        rows = [cost_from_json(row) for row in answer["costs"]]
    else:
        settings = store_settings(args)
        since = None if args.since is None else time.time_ns() - _since(args.since)

        async def read() -> list[CostRow]:
            store = await _open(settings)
            try:
                return await store.costs(since, group_by=by)
            finally:
                await store.close()

        rows = asyncio.run(read())
    if args.json:
        for row in rows:
            print(json.dumps(asdict(row)))
    else:
        from rich.console import Console

        from agentmesh.collector.cli.render import render_costs

        render_costs(Console(), rows, by)
    return 0


def add_graph_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh graph``.

    Args:
        parser: The subcommand's parser.
    """
    add_store_options(parser)
    parser.add_argument("run", metavar="RUN_ID", help="run id or trace id (a unique prefix works)")
    _add_collector_option(parser)
    parser.set_defaults(handler=_graph)


def _graph_from_collector(base: str, run: str) -> tuple[StoredGraph, list[Detection]]:
    from agentmesh.collector.api.payloads import graph_from_json
    from agentmesh.collector.hot_state.events import detection_from_json

    path = "/v1/runs/" + urllib.parse.quote(run, safe="")
    answer = cast("dict[str, Any]", get_json(base, path))
    detections = [detection_from_json(json.dumps(d)) for d in answer["detections"]]
    return graph_from_json(answer["graph"]), detections


def _graph(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agentmesh.collector.cli.render import render_graph
    from agentmesh.collector.store.lookup import find_run

    if args.collector:
        graph, detections = _graph_from_collector(str(args.collector), str(args.run))
        render_graph(Console(), graph, detections)
        return 0
    settings = store_settings(args)

    async def read() -> int:
        store = await _open(settings)
        try:
            trace_id = (await find_run(store, str(args.run))).trace_id
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
