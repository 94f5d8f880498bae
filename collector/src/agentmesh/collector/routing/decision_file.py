"""Routing decisions with their outcomes as one file: Parquet, JSON lines or CSV.

The rows of ``agentmesh export decisions`` and of ``GET /v1/decisions/export``: one per
decision (:class:`~agentmesh.collector.routing.outcomes.DecisionOutcome`), written through
DuckDB: Parquet (list columns as lists, ``features`` as JSON), JSON lines (lists as arrays,
``features`` as an object) or CSV (lists and ``features`` as JSON text). The file is written
next to its final path and moved into place, so a failed export leaves no half-written file.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from agentmesh.collector.routing.outcomes import DecisionOutcome
from agentmesh.core import ConfigError, StoreError

__all__ = ["DECISION_COLUMNS", "DECISION_FORMATS", "check_writable", "write_decisions"]

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
    ("sent_model", "VARCHAR"),
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
    ("call_detections", "VARCHAR[]"),
    ("feedback_score", "DOUBLE"),
    ("quality", "DOUBLE"),
)
"""The exported table's columns, in order (``quality``: :attr:`DecisionOutcome.quality`)."""

_LISTS: Final = ("candidates", "scores", "fallbacks", "detections", "call_detections")


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
    import duckdb  # here, not at import: every `agentmesh` command builds the CLI's parser

    check_writable(output)
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


def check_writable(output: Path) -> None:
    """Fail early, before the store is read, when the file surely cannot be written.

    Args:
        output: The file to be written (its directory is created if missing).

    Raises:
        StoreError: It is a directory, or its directory cannot be made or written to.
    """
    if output.is_dir():
        raise StoreError(f"cannot write {output}: it is a directory")
    blocking = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # mkdir would say "File exists"
        raise StoreError(f"cannot write {output}: {blocking} is a file, not a directory")
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
