"""``agentmesh collector``: serve OTLP until interrupted.

The collector's modules are imported when it starts, not when the parser is built: every
``agentmesh`` command builds this parser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from agentmesh.collector.cli.settings_flags import (
    add_settings_flags,
    load_from_flags,
    secret_fields,
)
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core import ConfigError, configure_logging
from agentmesh.core.log import get_logger

__all__ = ["add_collector_command", "add_collector_flags", "load_collector_settings", "serve"]

log = get_logger(__name__)


def add_collector_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh collector``: short aliases, then every setting.

    Args:
        parser: The subcommand's parser.
    """
    add_collector_flags(parser)
    parser.set_defaults(handler=_handle)


def add_collector_flags(parser: argparse.ArgumentParser) -> None:
    """Declare the collector's settings as flags: short aliases, then every setting.

    Args:
        parser: A parser of a command that takes a collector's configuration.
    """
    parser.add_argument("--host", dest="grpc_host", help="alias of --grpc-host")
    parser.add_argument("--port", dest="grpc_port", type=int, help="alias of --grpc-port")
    parser.add_argument("--db", dest="duckdb_path", type=Path, help="alias of --duckdb-path")
    parser.add_argument(
        "--retry-after", dest="retry_after_seconds", type=int, help="alias of --retry-after-seconds"
    )
    parser.add_argument(
        "--max-receive-bytes",
        dest="max_receive_message_bytes",
        type=int,
        help="alias of --max-receive-message-bytes",
    )
    parser.add_argument(
        "--no-http",
        dest="http_enabled",
        action="store_const",
        const=False,
        help="alias of --no-http-enabled: serve OTLP/gRPC only",
    )
    env = {name: CollectorSettings.env_var(name) for name in CollectorSettings.model_fields}
    add_settings_flags(parser, CollectorSettings, env)
    secrets = ", ".join(env[name] for name in secret_fields(CollectorSettings))
    parser.epilog = (
        "Every setting is a flag and an AGENTMESH_COLLECTOR_* variable (docs/configuration.md). "
        f"Secrets are read from the environment only, never from flags: {secrets} "
        "(lists as comma-separated values or JSON)."
    )


def load_collector_settings(args: argparse.Namespace) -> CollectorSettings:
    """Load the collector's settings and refuse what the collector refuses before it starts.

    ``agentmesh collector`` and ``agentmesh check`` both load their configuration here, so
    that check passes only what the collector accepts: the settings (flags and
    ``AGENTMESH_COLLECTOR_*`` variables), the logging settings (``AGENTMESH_LOG_*``), and what
    the collector builds from them before it opens or binds anything: its store (not
    connected), graph rules, detectors and recovery policy (the very constructor the collector
    runs), its detection webhooks and its forwarding targets.

    Args:
        args: Parsed arguments of either command.

    Returns:
        The settings.

    Raises:
        ConfigError: A flag or variable is wrong; the message names it.
    """
    from agentmesh.collector.events import webhook_targets
    from agentmesh.collector.forward.targets import targets_from_settings
    from agentmesh.collector.service import Collector
    from agentmesh.core.log import LoggingSettings

    settings = load_from_flags(CollectorSettings, args)
    LoggingSettings.load()
    Collector(settings)  # builds, and so checks, what the collector derives from the settings
    try:  # built when the collector starts its detection fan-out
        webhook_targets(settings.detection_webhook_urls, settings.detection_webhook_headers)
    except ConfigError as exc:
        names = ", ".join(
            settings.env_var(n) for n in ("detection_webhook_urls", "detection_webhook_headers")
        )
        raise ConfigError(f"invalid configuration: {names}: {exc}") from exc
    targets_from_settings(settings)
    return settings


def _handle(args: argparse.Namespace) -> int:
    from agentmesh.collector.runtime import tune_gc

    settings = load_collector_settings(args)
    configure_logging()
    tune_gc()
    asyncio.run(serve(settings))
    return 0


async def serve(settings: CollectorSettings) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly.

    Args:
        settings: The collector's settings.
    """
    from agentmesh.collector.service import Collector

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Collector(settings) as collector:
        location = store_location(settings)
        log.info(
            "collector listening",
            endpoint=collector.endpoint,
            store=settings.store,
            store_location=location,
        )
        http = (
            f", OTLP/HTTP on {collector.http_endpoint}/v1/traces" if settings.http_enabled else ""
        )
        if settings.http_enabled and settings.web_enabled:
            http += f"; web dashboard on {collector.http_endpoint}/ui/"
        print(
            f"AgentMesh collector: OTLP/gRPC on {collector.endpoint}{http}; storing to {location}",
            flush=True,
        )
        await stop.wait()
        log.info("collector stopping")


def store_location(settings: CollectorSettings) -> str:
    """Where the collector stores, in words (no user name or password).

    Args:
        settings: The collector's settings.

    Returns:
        The DuckDB file, the PostgreSQL server and schema, or memory.
    """
    if settings.store == "duckdb":
        return f"the DuckDB file {settings.duckdb_path.resolve()}"
    if settings.store == "postgres":
        from agentmesh.collector.store.postgres_errors import server_address

        address = server_address(settings.postgres_dsn.get_secret_value())
        return f"PostgreSQL at {address} (schema {settings.postgres_schema})"
    return "memory (lost on exit)"
