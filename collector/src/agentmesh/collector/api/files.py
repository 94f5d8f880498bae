"""What the export routes share: one export at a time, written to a scratch folder, then sent.

An export reads the whole store (or its decision log), so one is written at a time: a second
request meanwhile is answered ``503`` with ``Retry-After``. Sending a finished file does not
count, so a client that asks again once it has read one is never refused. The file is sent in
chunks read in a thread, and the scratch folder is removed once the answer is sent or fails.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final

from aiohttp import web

from agentmesh.collector.api.params import error_response
from agentmesh.core import StoreError
from agentmesh.core.log import get_logger

__all__ = ["RETRY_AFTER_SECONDS", "OneExport"]

log = get_logger(__name__)

_CHUNK_BYTES: Final = 1 << 20
RETRY_AFTER_SECONDS: Final = 5
"""The ``Retry-After`` of an export refused while another is being written."""

Produce = Callable[[Path], Awaitable[tuple[Path, Mapping[str, str]]]]
"""Writes an export into a scratch folder; returns the file to send and the answer's headers."""


class OneExport:
    """Answers export requests one at a time (see the module's description).

    Args:
        prefix: Name prefix of the scratch folders.
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._running = asyncio.Lock()

    async def answer(self, request: web.Request, produce: Produce) -> web.StreamResponse:
        """Write an export with ``produce`` and send it, or refuse while another is written.

        Args:
            request: The request.
            produce: Writes the export into the folder it is given.

        Returns:
            The file sent; ``503`` with ``Retry-After`` while another export is written;
            ``500`` with the store's error when the export fails.
        """
        if self._running.locked():
            return web.json_response(
                {"error": "an export is already running; try again when it has finished"},
                status=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        work: Path | None = None
        try:
            async with self._running:  # taken at once: nothing awaited since the check above
                work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=self._prefix))
                try:
                    path, headers = await produce(work)
                except StoreError as exc:
                    log.warning("export failed", path=request.path, error=str(exc))
                    return error_response(str(exc), 500)
            response = await _send(request, path, headers)
            log.info("export sent", path=request.path, bytes=response.content_length)
            return response
        finally:
            if work is not None:
                await asyncio.to_thread(shutil.rmtree, work, True)


async def _send(request: web.Request, path: Path, headers: Mapping[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(headers=dict(headers))
    response.content_length = (await asyncio.to_thread(path.stat)).st_size
    await response.prepare(request)
    with path.open("rb") as source:
        while chunk := await asyncio.to_thread(source.read, _CHUNK_BYTES):
            await response.write(chunk)
    await response.write_eof()
    return response
