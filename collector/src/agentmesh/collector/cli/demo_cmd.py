"""``agentmesh demo``: the whole loop in one command, offline."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from pathlib import Path

from agentmesh.core import ConfigError, configure_logging

__all__ = ["add_demo_command"]


def add_demo_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh demo``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument(
        "--db",
        type=Path,
        default=Path("agentmesh-demo.duckdb"),
        help="DuckDB file to store into, replaced if it exists (default: %(default)s)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=16,
        help="LangGraph recursion limit that ends the looping run (default: %(default)s)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="then keep a collector running on the demo's DuckDB file, with the web dashboard "
        "at http://127.0.0.1:HTTP_PORT/ui/, until Ctrl-C",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=4317,
        help="with --serve: OTLP/gRPC port, 0 for any free one (default: %(default)s)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=4318,
        help="with --serve: OTLP/HTTP, API and dashboard port, 0 for any free one "
        "(default: %(default)s)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    missing = [m for m in ("langgraph", "openai", "aiohttp") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"the demo needs {', '.join(missing)}: pip install 'agentmesh-collector[demo]'"
        )
    if args.serve:  # found busy now, not after the demo's runs
        from agentmesh.collector.preflight.listen import check_port

        for name, port in (("--grpc-port", args.grpc_port), ("--http-port", args.http_port)):
            finding = check_port(name, "127.0.0.1", int(port))
            if finding.verdict == "fail":
                raise ConfigError(f"{name}: {finding.detail}")
    configure_logging(level="error")
    from rich.console import Console

    from agentmesh.collector.demo import render_report, run_demo

    report = asyncio.run(run_demo(Path(args.db), max_steps=int(args.max_steps)))
    render_report(report, Console())
    clean, faulty = report.runs[0], report.runs[-1]
    ok = (
        clean.graph is not None
        and faulty.graph is not None
        and not clean.detections
        and len(faulty.detections) == 1
    )
    if args.serve:
        from agentmesh.collector.cli.collector_cmd import serve
        from agentmesh.collector.settings import CollectorSettings

        settings = CollectorSettings.load(
            grpc_host="127.0.0.1",
            grpc_port=int(args.grpc_port),
            http_host="127.0.0.1",
            http_port=int(args.http_port),
            duckdb_path=report.db_path,
        )
        asyncio.run(serve(settings))
    return 0 if ok else 1
