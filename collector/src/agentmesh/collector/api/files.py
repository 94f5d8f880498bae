"""What the export routes share: a finished file sent in chunks, a second export refused."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from aiohttp import web

__all__ = ["RETRY_AFTER_SECONDS", "busy_response", "send_file"]

_CHUNK_BYTES: Final = 1 << 20
RETRY_AFTER_SECONDS: Final = 5
"""The ``Retry-After`` of an export refused while another is being written."""


def busy_response() -> web.Response:
    """Answer ``503`` with ``Retry-After``: an export is already being written.

    Returns:
        The response.
    """
    return web.json_response(
        {"error": "an export is already running; try again when it has finished"},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def send_file(
    request: web.Request, path: Path, headers: Mapping[str, str]
) -> web.StreamResponse:
    """Answer ``request`` with the bytes of ``path`` (never blocking the event loop on disk).

    Args:
        request: The request.
        path: The file, complete.
        headers: The answer's headers (``Content-Type``, ``Content-Disposition``...).

    Returns:
        The response, sent.
    """
    response = web.StreamResponse(headers=dict(headers))
    response.content_length = (await asyncio.to_thread(path.stat)).st_size
    await response.prepare(request)
    with path.open("rb") as source:
        while chunk := await asyncio.to_thread(source.read, _CHUNK_BYTES):
            await response.write(chunk)
    await response.write_eof()
    return response
