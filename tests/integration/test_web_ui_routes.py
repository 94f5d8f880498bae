"""The web dashboard's page and assets as the collector serves them at ``/ui/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from agentmesh.collector import Collector, CollectorSettings, MemoryStore


@asynccontextmanager
async def _collector(**settings: Any) -> AsyncIterator[str]:
    config = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0, **settings
    )
    async with Collector(config, MemoryStore()) as collector:
        yield collector.http_endpoint


async def test_the_page_and_its_assets_are_served_with_a_strict_policy() -> None:
    async with _collector() as base, aiohttp.ClientSession() as client:
        async with client.get(base + "/", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (302, "/ui/")
        async with client.get(base + "/ui/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy
            assert "default-src 'none'" in policy
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert '<script type="module" src="app.js">' in page
        for name, kind in [
            ("app.js", "text/javascript"),
            ("app.css", "text/css"),
            ("logo.svg", "image/svg+xml"),
        ]:
            async with client.get(base + "/ui/" + name) as response:
                assert (response.status, response.content_type) == (200, kind)
                etag = response.headers["ETag"]
                assert len(await response.read()) > 100
            async with client.get(base + "/ui/" + name, headers={"If-None-Match": etag}) as again:
                assert again.status == 304
                assert await again.read() == b""


async def test_only_the_shipped_files_are_served() -> None:
    async with _collector() as base, aiohttp.ClientSession() as client:
        for path in [
            "/ui/nope.js",
            "/ui/..%2F..%2Fsettings.py",
            "/ui/%2E%2E/routes.py",
            "/ui/static/app.js",
            "/ui/__init__.py",
        ]:
            async with client.get(base + path) as response:
                assert response.status == 404, path
                assert "import" not in await response.text()


async def test_the_page_needs_no_credentials_but_the_data_does() -> None:
    async with (
        _collector(auth_bearer_tokens=["s3cret"]) as base,
        aiohttp.ClientSession() as client,
    ):
        async with client.get(base + "/ui/app.js") as response:
            assert response.status == 200
        async with client.get(base + "/ui/") as response:
            assert response.status == 200
        async with client.get(base + "/v1/runs") as response:
            assert response.status == 401


async def test_the_dashboard_can_be_turned_off() -> None:
    async with _collector(web_enabled=False) as base, aiohttp.ClientSession() as client:
        for path in ["/ui/", "/ui/app.js", "/"]:
            async with client.get(base + path, allow_redirects=False) as response:
                assert response.status == 404, path
        async with client.get(base + "/v1/runs") as response:
            assert response.status == 200
