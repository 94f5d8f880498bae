"""Options shared by the commands that read the store (``runs``, ``graph``, ``export``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentmesh.collector.settings import CollectorSettings

__all__ = ["add_store_options", "store_settings"]


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """Declare ``--store`` and ``--db``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument(
        "--store",
        choices=["duckdb", "postgres"],
        help="backend to read (AGENTMESH_COLLECTOR_STORE; Postgres from "
        "AGENTMESH_COLLECTOR_POSTGRES_DSN)",
    )
    parser.add_argument("--db", type=Path, help="DuckDB file (AGENTMESH_COLLECTOR_DUCKDB_PATH)")


def store_settings(args: argparse.Namespace) -> CollectorSettings:
    """Collector settings with the command line's store options applied.

    Args:
        args: Parsed arguments.

    Returns:
        The settings.
    """
    overrides: dict[str, object] = {}
    if args.store is not None:
        overrides["store"] = args.store
    if args.db is not None:
        overrides["duckdb_path"] = args.db
        overrides.setdefault("store", "duckdb")
    return CollectorSettings.load(**overrides)
