"""``GET /v1/export?format=parquet``: the collector's store exported as one ZIP archive.

The same tables as ``agentmesh export`` (``runs``, ``agents``, ``handoffs``, ``spans``,
``detections``; Parquet, CSV or JSON lines), written from the collector's own store while it
runs, so a DuckDB collector need not be stopped to export. The archive is built in a temporary
directory and sent in chunks; the rows per table are in the ``X-AgentMesh-Export-Rows`` header
(JSON). An export reads the whole store (a page of runs at a time, staged in a scratch file on
disk), so one is written at a time: a second request meanwhile is answered ``503`` with
``Retry-After`` (sending a finished archive does not count).

``format`` is its only parameter: the archive holds the whole store, so any other (a ``since``,
say) is answered ``400`` rather than ignored.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path
from typing import Final

from aiohttp import web

from agentmesh.collector.api.files import OneExport
from agentmesh.collector.api.params import error_response, format_param, query_route
from agentmesh.collector.export import EXPORT_FORMATS, export_store
from agentmesh.collector.store.base import SpanStore
from agentmesh.core import ConfigError
from agentmesh.core.log import get_logger

__all__ = ["EXPORT_PATH", "EXPORT_ROWS_HEADER", "export_routes"]

log = get_logger(__name__)

EXPORT_PATH: Final = "/v1/export"
EXPORT_ROWS_HEADER: Final = "X-AgentMesh-Export-Rows"
"""The answer's header holding the rows written per table, as a JSON object."""


def _zip(files: Path, archive: Path, fmt: str) -> None:
    # Parquet is compressed already; CSV and JSON lines shrink several times when deflated.
    method = zipfile.ZIP_STORED if fmt == "parquet" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(archive, "w", compression=method) as out:
        for path in sorted(files.iterdir()):
            out.write(path, arcname=path.name)


def export_routes(store: SpanStore) -> list[web.RouteDef]:
    """Return the export route, reading ``store``.

    Args:
        store: The collector's span store.

    Returns:
        The route to mount on the OTLP/HTTP receiver.
    """
    one = OneExport("agentmesh-export-")

    async def export(request: web.Request) -> web.StreamResponse:
        try:
            fmt = format_param(request, EXPORT_FORMATS)
        except ConfigError as exc:
            return error_response(str(exc), 400)

        async def produce(work: Path) -> tuple[Path, dict[str, str]]:
            counts = await export_store(store, work / "files", fmt)
            archive = work / "export.zip"
            await asyncio.to_thread(_zip, work / "files", archive, fmt)
            log.info("export written", format=fmt, **counts)
            return archive, {
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="agentmesh-{fmt}.zip"',
                EXPORT_ROWS_HEADER: json.dumps(counts),
            }

        return await one.answer(request, produce)

    return [query_route(EXPORT_PATH, export, ("format",))]
