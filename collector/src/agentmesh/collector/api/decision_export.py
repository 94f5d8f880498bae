"""``GET /v1/decisions/export``: the routing decisions with their outcomes, as one file.

The rows of ``agentmesh export decisions`` (training data for the router: see
:mod:`~agentmesh.collector.routing.decision_file`), written from the collector's own store
while it runs, so a DuckDB collector need not be stopped to export its decision log.

- ``format``: ``parquet`` (default), ``jsonl`` or ``csv``;
- ``since``, ``until``: calls started at or after / before a time, given as a duration ago
  (``90s``, ``15m``, ``24h``, ``7d``) or an ISO date-time (``2026-12-01T00:00:00Z``);
- ``limit``: most decisions written (the latest), all by default.

The file is written in a temporary directory, then sent in chunks; its row count is in the
``X-AgentMesh-Export-Rows`` header (``{"decisions": n}``). One export is written at a time: a
second request meanwhile is answered ``503`` with ``Retry-After``. Same credentials as OTLP
requests when authentication is configured; a wrong parameter, or one not listed above, is
answered ``400`` in plain words.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Final

from aiohttp import web

from agentmesh.collector.api.export import EXPORT_ROWS_HEADER
from agentmesh.collector.api.files import OneExport
from agentmesh.collector.api.params import error_response, format_param, query_route
from agentmesh.collector.durations import parse_when
from agentmesh.collector.routing.decision_file import DECISION_FORMATS, write_decisions
from agentmesh.collector.routing.outcomes import decision_outcomes
from agentmesh.collector.store.base import SpanStore
from agentmesh.core import ConfigError
from agentmesh.core.log import get_logger

__all__ = ["DECISION_EXPORT_PATH", "decision_export_routes"]

log = get_logger(__name__)

DECISION_EXPORT_PATH: Final = "/v1/decisions/export"

_MEDIA_TYPES: Final = {
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}


def _when(request: web.Request, name: str) -> float | None:
    text = request.query.get(name)
    return None if text is None else parse_when(text, name)


def _limit(request: web.Request) -> int | None:
    text = request.query.get("limit")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigError(f"limit must be a whole number from 1 up, not {text!r}")
    return int(text)


def decision_export_routes(store: SpanStore) -> list[web.RouteDef]:
    """Return the decision export route, reading ``store``.

    Args:
        store: The collector's span store.

    Returns:
        The route to mount on the OTLP/HTTP receiver.
    """
    one = OneExport("agentmesh-decisions-")

    async def export(request: web.Request) -> web.StreamResponse:
        try:
            fmt = format_param(request, DECISION_FORMATS)
            since, until, limit = _when(request, "since"), _when(request, "until"), _limit(request)
        except ConfigError as exc:
            return error_response(str(exc), 400)

        async def produce(work: Path) -> tuple[Path, dict[str, str]]:
            path = work / f"decisions.{fmt}"
            outcomes = await decision_outcomes(store, since=since, until=until, limit=limit)
            rows = await asyncio.to_thread(write_decisions, outcomes, path, fmt)
            log.info("decision export written", format=fmt, rows=rows)
            return path, {
                "Content-Type": _MEDIA_TYPES[fmt],
                "Content-Disposition": f'attachment; filename="decisions.{fmt}"',
                EXPORT_ROWS_HEADER: json.dumps({"decisions": rows}),
            }

        return await one.answer(request, produce)

    return [query_route(DECISION_EXPORT_PATH, export, ("format", "since", "until", "limit"))]
