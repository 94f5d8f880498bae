"""``agentmesh collector``: serve OTLP until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from agentmesh.collector.service import Collector
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core import configure_logging
from agentmesh.core.log import get_logger

__all__ = ["add_collector_command", "serve"]

log = get_logger(__name__)


def add_collector_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh collector``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument("--host", help="interface to bind (AGENTMESH_COLLECTOR_GRPC_HOST)")
    parser.add_argument("--port", type=int, help="OTLP/gRPC port (AGENTMESH_COLLECTOR_GRPC_PORT)")
    parser.add_argument("--db", type=Path, help="DuckDB file (AGENTMESH_COLLECTOR_DUCKDB_PATH)")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["grpc_host"] = args.host
    if args.port is not None:
        overrides["grpc_port"] = args.port
    if args.db is not None:
        overrides["duckdb_path"] = args.db
    settings = CollectorSettings.load(**overrides)
    configure_logging()
    asyncio.run(serve(settings))
    return 0


async def serve(settings: CollectorSettings) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly.

    Args:
        settings: The collector's settings.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Collector(settings) as collector:
        log.info(
            "collector listening",
            endpoint=collector.endpoint,
            duckdb_path=str(settings.duckdb_path.resolve()),
        )
        print(f"AgentMesh collector: OTLP/gRPC on {collector.endpoint}", flush=True)
        await stop.wait()
        log.info("collector stopping")
