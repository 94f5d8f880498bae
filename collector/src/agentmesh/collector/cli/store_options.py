"""Options shared by the commands that read the store (``runs``, ``graph``, ``export``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError

__all__ = ["add_store_options", "readable", "store_settings"]


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
    """Collector settings with the command line's store options applied, for reading a store.

    Args:
        args: Parsed arguments.

    Returns:
        The settings.

    Raises:
        ConfigError: The DuckDB file does not exist (a mistyped path would otherwise be
            created empty and read as a store without runs), or the store is the collector's
            memory, which no other process can read (see :func:`readable`).
    """
    overrides: dict[str, object] = {}
    if args.store is not None:
        overrides["store"] = args.store
    if args.db is not None:
        overrides["duckdb_path"] = args.db
        overrides.setdefault("store", "duckdb")
    remote = getattr(args, "collector", False) is not False  # the command has --collector
    return readable(CollectorSettings.load(**overrides), db_flag=args.db is not None, remote=remote)


def readable(
    settings: CollectorSettings, *, db_flag: bool, remote: bool = True
) -> CollectorSettings:
    """The settings, when they name a store another process can read.

    Args:
        settings: The collector settings.
        db_flag: Whether the DuckDB path came from ``--db`` (the error names it).
        remote: Whether the command can read a running collector instead (``--collector``;
            the error suggests it).

    Returns:
        ``settings``.

    Raises:
        ConfigError: The DuckDB file does not exist, or the store is the collector's memory.
    """
    if settings.store == "memory":
        ask = "read it with --collector URL (its OTLP/HTTP endpoint), or " if remote else ""
        raise ConfigError(
            f"the memory store lives inside the collector process: {ask}name a DuckDB file "
            "(--db) or Postgres (--store postgres)"
        )
    path = settings.duckdb_path
    if settings.store == "duckdb" and not path.is_file():
        where = "--db" if db_flag else "AGENTMESH_COLLECTOR_DUCKDB_PATH (or --db)"
        ask = ", or ask a running collector with --collector URL" if remote else ""
        raise ConfigError(
            f"no DuckDB file at {path}: give the file the collector writes with {where}{ask}"
        )
    if settings.store == "duckdb" and not _is_duckdb(path):
        raise ConfigError(
            f"{path} is not a DuckDB file: give the file the collector writes (its "
            "AGENTMESH_COLLECTOR_DUCKDB_PATH)"
        )
    return settings


def _is_duckdb(path: Path) -> bool:
    """Whether the file starts as a DuckDB database does (its magic bytes, ``DUCK``)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError:
        return True  # unreadable: opening the store says why, in words
    return head[8:12] == b"DUCK"
