"""The route table cache file: the last good table, for a start while the collector is away.

Written atomically (a temporary file in the same directory, then :func:`os.replace`), so a
reader never sees half a table; read with the same checks as a collector's answer
(:func:`read_table`: the table's fields, then its predictor, parsed ahead). Neither
:func:`load_table` nor :func:`save_table` raises: a missing, unreadable or refused file is
logged and ignored.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from agentmesh.router.table import RouteTable
    >>> path = Path(tempfile.mkdtemp()) / "agentmesh" / "route_table.json"
    >>> save_table(path, RouteTable(version=4))
    True
    >>> load_table(path).version
    4
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Final, cast

from agentmesh.core.errors import RouteTableError
from agentmesh.core.log import get_logger
from agentmesh.instrumentation._failopen import report
from agentmesh.router.learned.parse_ahead import parse_ahead
from agentmesh.router.table import MAX_ROUTE_TABLE_BYTES, RouteTable

__all__ = ["default_cache_path", "load_table", "read_table", "save_table"]

_log = get_logger(__name__)

_LARGEST_INT: Final = 2**63 - 1
"""The largest whole number an OpenTelemetry attribute holds (OTLP's ``int_value`` is int64)."""
_SMALLEST_INT: Final = -(2**63)
_LONG_DIGITS: Final = re.compile(rb"[0-9]{19}")
"""19 digits in a row: what a whole number out of that range needs (the quick test)."""


def read_table(data: str | bytes) -> RouteTable:
    """Read a route table as the application takes it (a collector's answer, the cache file).

    :meth:`RouteTable.from_json` checks the fields and keeps the predictor as JSON data; here
    every whole number (the predictor's included) is also checked to fit a signed 64-bit
    integer (the version goes on every routed call's span as ``agentmesh.route.table_version``,
    which OTLP cannot encode beyond that range), and the predictor is parsed, ahead of the
    first routed call that needs it (:func:`~agentmesh.router.learned.parse_ahead.parse_ahead`):
    a table refused for either is refused whole (the last good table and the cache file are
    kept), as taking it would print an encoding error for every span, or route by pass-through.

    Args:
        data: The table's JSON.

    Returns:
        The table, its predictor parsed.

    Raises:
        RouteTableError: The table is refused; the message says why.

    Example:
        >>> read_table('{"version": 9223372036854775808}')
        Traceback (most recent call last):
        ...
        agentmesh.core.errors.RouteTableError: version must be a whole number that fits in 64 bits (-9223372036854775808 to 9223372036854775807), got 9223372036854775808
    """  # noqa: E501 - a doctest's expected output is one line
    table = RouteTable.from_json(data)
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_DIGITS.search(raw) is not None:  # else every whole number has 18 digits at most
        _check_whole_numbers(table)
    try:
        ready = parse_ahead(table, keep_invalid=False)
    except Exception as exc:  # noqa: BLE001 - fail-open: the policy then parses it itself
        report("route_table.parse_ahead", exc)
        return table
    if ready.error is not None:
        raise RouteTableError(f"the predictor cannot be used: {ready.error}")
    return table


def _check_whole_numbers(table: RouteTable) -> None:
    """Refuse a whole number a span attribute (an int64) cannot hold, wherever it is.

    The version goes on spans; the models' counts and the predictor's outcome counts are held
    in int64 arrays by the policy, which could not rank with a larger one.
    """
    pending: list[tuple[str, object]] = [(name, value) for name, value in table.to_dict().items()]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            entries = cast("dict[str, object]", value)
            pending += [(f"{where}.{key}", item) for key, item in entries.items()]
        elif isinstance(value, list):
            items = cast("list[object]", value)
            pending += [(f"{where}[{index}]", item) for index, item in enumerate(items)]
        elif isinstance(value, int) and not _SMALLEST_INT <= value <= _LARGEST_INT:
            raise RouteTableError(
                f"{where} must be a whole number that fits in 64 bits ({_SMALLEST_INT} to "
                f"{_LARGEST_INT}), got {value}"
            )


def default_cache_path(url: str | None = None) -> Path:
    """Return where the route table of a collector is cached by default.

    One file per collector URL: a table cached from one collector never stands in for
    another's (a staging table in a production app, a test's table in the next test).

    Args:
        url: The collector's base URL (``None``: the unkeyed name).

    Returns:
        ``$XDG_CACHE_HOME/agentmesh/route_table-<12 hex of the URL's SHA-256>.json``, else the
        same under ``~/.cache``.
    """
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".cache"
    if url is None:
        return root / "agentmesh" / "route_table.json"
    key = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:12]
    return root / "agentmesh" / f"route_table-{key}.json"


def load_table(path: Path) -> RouteTable | None:
    """Read the cached table (never raises).

    Args:
        path: The cache file.

    Returns:
        The table, or ``None`` when there is none or it is refused (logged).
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_ROUTE_TABLE_BYTES + 1)
        return read_table(data)
    except FileNotFoundError:
        return None
    except (OSError, RouteTableError) as exc:
        with suppress(Exception):
            _log.warning(
                "agentmesh.route_table.cache_refused",
                path=str(path),
                error_type=type(exc).__name__,
                error=str(exc),
            )
        return None


def save_table(path: Path, table: RouteTable) -> bool:
    """Write the table to the cache file atomically (never raises).

    Args:
        path: The cache file (its directory is created).
        table: The table.

    Returns:
        Whether it was written (a failure is logged).
    """
    temporary: str | None = None
    try:
        text = table.to_json().encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
        return True
    except (OSError, RouteTableError) as exc:
        with suppress(Exception):
            _log.warning(
                "agentmesh.route_table.cache_not_written",
                path=str(path),
                error_type=type(exc).__name__,
                error=str(exc),
            )
        return False
    finally:
        if temporary is not None:
            with suppress(OSError):
                os.unlink(temporary)
