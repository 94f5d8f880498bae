"""The web dashboard's routes: its page and assets under ``/ui/``, served from the package.

The page and its script hold no data: they are served without credentials and call the query
API (``/v1/runs``, ``/v1/costs``…), which keeps the receiver's authentication. Only the files
shipped in ``static/`` can be served (a fixed table read once, so no request path reaches the
file system); each answer carries a content hash as its ``ETag`` (``304`` when unchanged) and a
content security policy that allows nothing but this origin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Final

from aiohttp import web

__all__ = ["UI_PATH", "web_routes"]

UI_PATH: Final = "/ui/"
"""Where the dashboard is served."""

_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


def _assets() -> dict[str, _Asset]:
    assets: dict[str, _Asset] = {}
    for entry in (
        resources.files(__package__ or "agentmesh.collector.web").joinpath("static").iterdir()
    ):
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            assets[entry.name] = _Asset(body, _TYPES[suffix], etag)
    return assets


def web_routes() -> list[web.RouteDef]:
    """Return the dashboard's routes: ``/`` and ``/ui`` redirect to ``/ui/``, which serves it.

    Returns:
        The routes to mount, without credentials, on the OTLP/HTTP receiver.
    """
    assets = _assets()

    def serve(request: web.Request, name: str) -> web.StreamResponse:
        asset = assets.get(name)
        if asset is None:
            return web.Response(status=404, text=f"no such file in the dashboard: {name}\n")
        headers = {**_HEADERS, "ETag": asset.etag}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=asset.body,
            content_type=None,
            headers={**headers, "Content-Type": asset.content_type},
        )

    async def index(request: web.Request) -> web.StreamResponse:
        return serve(request, "index.html")

    async def asset(request: web.Request) -> web.StreamResponse:
        return serve(request, request.match_info["name"])

    async def to_ui(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(UI_PATH)

    return [
        web.route("GET", "/", to_ui),
        web.route("GET", UI_PATH.rstrip("/"), to_ui),
        web.route("GET", UI_PATH, index),
        web.route("GET", UI_PATH + "{name}", asset),
    ]
