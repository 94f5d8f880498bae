"""``agentmesh export decisions``: routing decisions joined with their outcomes, one row each.

Reads the store through :func:`~agentmesh.collector.routing.outcomes.decision_outcomes` and
writes one file (:mod:`~agentmesh.collector.routing.decision_file`), or, with
``--collector URL``, asks a running collector for it (``GET /v1/decisions/export``), so a
DuckDB collector need not be stopped. Either way the file is written next to its final path
and moved into place: a failed export leaves no half-written file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from agentmesh.collector.cli.collector_client import get_file
from agentmesh.collector.cli.store_options import readable
from agentmesh.collector.durations import parse_when
from agentmesh.collector.routing.decision_file import (
    DECISION_FORMATS,
    check_writable,
    write_decisions,
)
from agentmesh.collector.routing.outcomes import decision_outcomes
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core import ConfigError

__all__ = ["add_export_decisions_command"]

_SUFFIXES: Final[dict[str, str]] = {
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}


def add_export_decisions_command(export: argparse.ArgumentParser) -> None:
    """Declare ``agentmesh export decisions`` under the ``export`` command's parser.

    ``agentmesh export`` without a subcommand keeps writing its tables.

    Args:
        export: The ``export`` command's parser.
    """
    what = export.add_subparsers(dest="export_what", metavar="{decisions}", required=False)
    parser = what.add_parser(
        "decisions",
        help="routing decisions joined with their outcomes (training data for the router)",
        description=(
            "Write one row per routing decision: its context (task class, features, "
            "candidates, scores, choice), how the call went (model, error, latency, cost, "
            "tokens, fallbacks, detections) and the explicit feedback, with a quality in "
            "[0, 1]. Reads the DuckDB file (stop the collector first: DuckDB allows one "
            "writer) or Postgres, or asks a running collector (--collector)."
        ),
    )
    parser.add_argument(
        "--format",
        choices=DECISION_FORMATS,
        help="file format (default: from the --output suffix: .parquet, .jsonl, .csv)",
    )
    parser.add_argument("--output", "-o", type=Path, required=True, help="file to write")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="only calls started at or after WHEN: a duration ago (90s, 15m, 24h, 7d) or an "
        "ISO date-time (2026-12-01T00:00:00Z)",
    )
    parser.add_argument("--until", metavar="WHEN", help="only calls started before WHEN")
    parser.add_argument("--limit", type=int, help="most decisions written (the latest)")
    parser.add_argument(
        "--store",
        metavar="STORE",
        help="duckdb, postgres, a postgresql:// URL or duckdb:///path/to/file.duckdb "
        "(default: AGENTMESH_COLLECTOR_STORE)",
    )
    parser.add_argument("--db", type=Path, help="DuckDB file (AGENTMESH_COLLECTOR_DUCKDB_PATH)")
    parser.add_argument(
        "--collector",
        metavar="URL",
        help="ask a running collector's OTLP/HTTP endpoint (http://127.0.0.1:4318) instead of "
        "reading the store: no need to stop a DuckDB collector (AGENTMESH_API_TOKEN: its token)",
    )
    parser.set_defaults(handler=_export_decisions)


def _settings(args: argparse.Namespace) -> CollectorSettings:
    overrides: dict[str, object] = {}
    store: str | None = args.store
    if store is not None:
        lowered = store.lower()
        if lowered in ("duckdb", "postgres"):
            overrides["store"] = lowered
        elif lowered.startswith(("postgres://", "postgresql://")):
            overrides["store"] = "postgres"
            overrides["postgres_dsn"] = store
        elif lowered.startswith("duckdb://"):
            path = store[len("duckdb://") :]
            if not path:
                raise ConfigError(f"--store {store!r}: name the file, as duckdb:///path/x.duckdb")
            overrides["store"] = "duckdb"
            overrides["duckdb_path"] = Path(path)
        else:
            raise ConfigError(
                f"--store {store!r}: expected duckdb, postgres, a postgresql:// URL or "
                "duckdb:///path/to/file.duckdb"
            )
    if args.db is not None:
        overrides["duckdb_path"] = args.db
        overrides.setdefault("store", "duckdb")
    return readable(CollectorSettings.load(**overrides), db_flag=args.db is not None)


def _format(args: argparse.Namespace, output: Path) -> str:
    if args.format is not None:
        return str(args.format)
    fmt = _SUFFIXES.get(output.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot tell the format of {output}: give --format "
            f"({', '.join(DECISION_FORMATS)}) or a .parquet, .jsonl or .csv file"
        )
    return fmt


def _export_decisions(args: argparse.Namespace) -> int:
    output = Path(args.output)
    fmt = _format(args, output)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    now = time.time()
    since = None if args.since is None else parse_when(str(args.since), "--since", now=now)
    until = None if args.until is None else parse_when(str(args.until), "--until", now=now)
    if since is not None and until is not None and since >= until:
        raise ConfigError(
            f"--since {args.since} is not before --until {args.until}: no call can be in between "
            "(--since 2h --until 1h: from two hours ago to one hour ago)"
        )
    check_writable(output)
    if args.collector is not None:
        rows = _from_collector(str(args.collector), output, fmt, since, until, args.limit)
    else:
        settings = _settings(args)
        from agentmesh.collector.store.factory import open_store

        async def run() -> int:
            store = await open_store(settings)
            try:
                outcomes = await decision_outcomes(
                    store, since=since, until=until, limit=args.limit
                )
            finally:
                await store.close()
            return await asyncio.to_thread(write_decisions, outcomes, output, fmt)

        rows = asyncio.run(run())
    print(f"decisions: {rows} rows → {output}")
    return 0


def _from_collector(
    base: str, output: Path, fmt: str, since: float | None, until: float | None, limit: int | None
) -> int:
    """Download the decisions file from a running collector into ``output``; its row count."""
    from agentmesh.collector.api.decision_export import DECISION_EXPORT_PATH
    from agentmesh.collector.api.export import EXPORT_ROWS_HEADER

    query = {"format": fmt}
    # times resolved here, so "24h" means the same moment to the collector
    for name, when in (("since", since), ("until", until)):
        if when is not None:
            query[name] = datetime.fromtimestamp(when, UTC).isoformat()
    if limit is not None:
        query["limit"] = str(limit)
    partial = output.with_name(f".{output.name}.{secrets.token_hex(4)}.partial")
    try:
        with partial.open("wb") as dest:
            headers = get_file(base, DECISION_EXPORT_PATH, dest, **query)
        try:
            rows = int(json.loads(headers[EXPORT_ROWS_HEADER])["decisions"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"collector at {base} sent a broken export: {exc}") from exc
        partial.replace(output)
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return rows
