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
    for flag, field, kind, meaning in _RECEIVER_FLAGS:
        parser.add_argument(
            flag,
            dest=field,
            type=kind,
            help=f"{meaning} ({CollectorSettings.env_var(field)})",
        )
    parser.add_argument(
        "--no-http",
        dest="http_enabled",
        action="store_const",
        const=False,
        help="do not serve OTLP/HTTP (AGENTMESH_COLLECTOR_HTTP_ENABLED=false)",
    )
    parser.epilog = (
        "Authentication secrets are read from the environment only, never from flags: "
        "AGENTMESH_COLLECTOR_AUTH_BEARER_TOKENS and AGENTMESH_COLLECTOR_AUTH_API_KEYS "
        "(comma-separated or a JSON list)."
    )
    parser.set_defaults(handler=_handle)


_RECEIVER_FLAGS: list[tuple[str, str, type[int] | type[str], str]] = [
    ("--http-host", "http_host", str, "interface of the OTLP/HTTP receiver"),
    ("--http-port", "http_port", int, "OTLP/HTTP port, 0 for any free one"),
    ("--max-receive-bytes", "max_receive_message_bytes", int, "largest OTLP request in bytes"),
    ("--retry-after", "retry_after_seconds", int, "retry delay asked of exporters when busy"),
    ("--max-attributes-per-span", "max_attributes_per_span", int, "attributes kept per span"),
    ("--max-events-per-span", "max_events_per_span", int, "events kept per span"),
    ("--max-attribute-value-bytes", "max_attribute_value_bytes", int, "longest value kept"),
    ("--max-attribute-depth", "max_attribute_depth", int, "deepest array/map nesting kept"),
]


def _handle(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["grpc_host"] = args.host
    if args.port is not None:
        overrides["grpc_port"] = args.port
    if args.db is not None:
        overrides["duckdb_path"] = args.db
    for _, field, _, _ in _RECEIVER_FLAGS:
        value: object = getattr(args, field)
        if value is not None:
            overrides[field] = value
    if args.http_enabled is not None:
        overrides["http_enabled"] = args.http_enabled
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
        http = (
            f", OTLP/HTTP on {collector.http_endpoint}/v1/traces" if settings.http_enabled else ""
        )
        print(f"AgentMesh collector: OTLP/gRPC on {collector.endpoint}{http}", flush=True)
        await stop.wait()
        log.info("collector stopping")
