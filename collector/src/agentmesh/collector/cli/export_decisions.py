"""``agentmesh export decisions``: routing decisions joined with their outcomes, one row each.

Reads the store through :func:`~agentmesh.collector.routing.outcomes.decision_outcomes` and
writes one file through DuckDB: Parquet (list columns as lists, ``features`` as JSON), JSON
lines (lists as arrays, ``features`` as an object) or CSV (lists and ``features`` as JSON text).
The file is written next to its final path and moved into place, so a failed export leaves no
half-written file.

Example:
    >>> parse_when("2026-12-01T00:00:00Z", "--since", now=0.0)
    1796083200.0
    >>> parse_when("24h", "--since", now=1796083200.0)
    1795996800.0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from agentmesh.collector.durations import parse_duration
from agentmesh.collector.routing.outcomes import DecisionOutcome, decision_outcomes
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core import ConfigError, StoreError

__all__ = [
    "DECISION_COLUMNS",
    "DECISION_FORMATS",
    "add_export_decisions_command",
    "parse_when",
    "write_decisions",
]

DECISION_FORMATS: Final[tuple[str, ...]] = ("parquet", "jsonl", "csv")
"""File formats of ``agentmesh export decisions``."""

DECISION_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("decision_id", "VARCHAR"),
    ("trace_id", "VARCHAR"),
    ("span_id", "VARCHAR"),
    ("run_id", "VARCHAR"),
    ("start_time", "DOUBLE"),
    ("task_class", "VARCHAR"),
    ("mode", "VARCHAR"),
    ("policy", "VARCHAR"),
    ("requested_model", "VARCHAR"),
    ("chosen", "VARCHAR"),
    ("model", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("candidates", "VARCHAR[]"),
    ("scores", "DOUBLE[]"),
    ("reason", "VARCHAR"),
    ("features", "JSON"),
    ("table_version", "BIGINT"),
    ("error", "BOOLEAN"),
    ("error_type", "VARCHAR"),
    ("latency_s", "DOUBLE"),
    ("cost_usd", "DOUBLE"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("fallbacks", "VARCHAR[]"),
    ("detections", "VARCHAR[]"),
    ("feedback_score", "DOUBLE"),
    ("quality", "DOUBLE"),
)
"""The exported table's columns, in order (``quality``: :attr:`DecisionOutcome.quality`)."""

_SUFFIXES: Final[dict[str, str]] = {
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
_LISTS: Final = ("candidates", "scores", "fallbacks", "detections")


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
            "writer) or Postgres."
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
    parser.set_defaults(handler=_export_decisions)


def parse_when(text: str, flag: str, *, now: float | None = None) -> float:
    """Parse a duration ago or an ISO date-time into epoch seconds.

    Args:
        text: ``24h`` (also ``90s``, ``15m``, ``7d``) or ``2026-12-01T00:00:00Z`` (a date-time
            without a zone is UTC).
        flag: The option's name, for the error message.
        now: The current time in epoch seconds (now by default).

    Returns:
        Seconds since the Unix epoch.

    Raises:
        ConfigError: The text is neither.
    """
    text = text.strip()
    try:
        ago_ns = parse_duration(text)
    except ConfigError:
        pass  # not a duration: a date-time?
    else:
        current = time.time() if now is None else now
        return current - ago_ns // 1_000_000_000
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r}: expected a duration (90s, 15m, 24h, 7d) or an ISO date-time "
            "(2026-12-01T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def write_decisions(outcomes: Sequence[DecisionOutcome], output: Path, fmt: str) -> int:
    """Write outcomes to one file (blocking: run it in a thread from async code).

    Args:
        outcomes: The outcomes, one row each.
        output: The file (its directory is created if missing; an existing file is replaced).
        fmt: ``parquet``, ``jsonl`` or ``csv``.

    Returns:
        Rows written.

    Raises:
        ConfigError: The format is unknown.
        StoreError: The file cannot be written; the message says why.
    """
    if fmt not in DECISION_FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(DECISION_FORMATS)}")
    import duckdb  # here, not at import: every `agentmesh` command builds this parser

    _check_writable(output)
    partial = output.with_name(f".{output.name}.{secrets.token_hex(4)}.partial")
    schema = ", ".join(f"{name} {kind}" for name, kind in DECISION_COLUMNS)
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in DECISION_COLUMNS)
    try:
        with tempfile.TemporaryDirectory(prefix="agentmesh-decisions-") as scratch:
            staged = Path(scratch) / "decisions.jsonl"
            with staged.open("w", encoding="utf-8") as file:
                for outcome in outcomes:
                    file.write(json.dumps(_record(outcome), allow_nan=False))
                    file.write("\n")
            with duckdb.connect(":memory:") as con:
                con.execute(f"CREATE TABLE decisions ({schema})")
                if outcomes:  # staged as JSON lines: DuckDB reads them in bulk
                    con.execute(
                        "INSERT INTO decisions SELECT * FROM read_json(?, "  # noqa: S608
                        f"format = 'newline_delimited', columns = {{{columns}}})",
                        [str(staged)],
                    )
                target = str(partial).replace("'", "''")
                if fmt == "parquet":
                    con.execute(f"COPY decisions TO '{target}' (FORMAT parquet)")
                elif fmt == "jsonl":
                    con.execute(f"COPY decisions TO '{target}' (FORMAT json)")
                else:
                    lists = ", ".join(f"to_json({c}) AS {c}" for c in _LISTS)
                    con.execute(
                        f"COPY (SELECT * REPLACE ({lists}) FROM decisions) "  # noqa: S608
                        f"TO '{target}' (FORMAT csv, HEADER)"
                    )
        partial.replace(output)
    except (duckdb.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StoreError(f"cannot write {output}: {reason}") from exc
    return len(outcomes)


def _check_writable(output: Path) -> None:
    """Fail early, before the store is read, when the file surely cannot be written."""
    if output.is_dir():
        raise StoreError(f"cannot write {output}: it is a directory")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot write {output}: {exc.strerror or exc}") from exc
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write {output}: Permission denied")


def _record(outcome: DecisionOutcome) -> dict[str, object]:
    """The outcome as one JSON object; numbers that are not finite become null."""
    record: dict[str, object] = {}
    for name, value in outcome.as_dict().items():
        if isinstance(value, float) and not math.isfinite(value):
            record[name] = None
        elif name == "scores" and isinstance(value, list):
            record[name] = [
                v if not isinstance(v, float) or math.isfinite(v) else None for v in value
            ]
        else:
            record[name] = value
    return record


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
    settings = CollectorSettings.load(**overrides)
    if settings.store == "memory":
        raise ConfigError("the memory store holds nothing outside the collector; use duckdb")
    if settings.store == "duckdb" and not settings.duckdb_path.is_file():
        raise ConfigError(f"no DuckDB file at {settings.duckdb_path} (set --db or --store)")
    return settings


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
    settings = _settings(args)
    _check_writable(output)
    from agentmesh.collector.store.factory import open_store

    async def run() -> int:
        store = await open_store(settings)
        try:
            outcomes = await decision_outcomes(store, since=since, until=until, limit=args.limit)
        finally:
            await store.close()
        return await asyncio.to_thread(write_decisions, outcomes, output, fmt)

    rows = asyncio.run(run())
    print(f"decisions: {rows} rows → {output}")
    return 0
