"""The scrape job ``dashboards/README.md`` gives for a collector with authentication works.

With auth configured, ``/metrics`` needs a bearer token like the query API. The README's job
with an ``authorization`` block (the token read from a file) is run by a real Prometheus
against a real collector that requires a token: the target is up and its series are stored.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import yaml

from agentmesh.collector import Collector, CollectorSettings, MemoryStore

README = Path(__file__).parents[2] / "dashboards" / "README.md"
TOKEN = "prometheus-scrape-token"


def _documented_job() -> dict[str, Any]:
    """The README's scrape job that carries credentials."""
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        config = cast("dict[str, Any]", yaml.safe_load(block))
        for job in config["scrape_configs"]:
            if "authorization" in job:
                return cast("dict[str, Any]", job)
    raise AssertionError("dashboards/README.md shows no scrape job with an authorization block")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_documented_scrape_job_reads_metrics_that_need_a_token(
    tmp_path: Path, prometheus_binary: str
) -> None:
    job = _documented_job()
    assert job["authorization"].get("type", "Bearer") == "Bearer"
    assert "credentials_file" in job["authorization"]  # the secret stays out of the config
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        grpc_grace_seconds=1.0,
        decode_workers=0,
        auth_bearer_tokens=[TOKEN],
    )
    async with Collector(settings, MemoryStore()) as collector, aiohttp.ClientSession() as client:
        async with client.get(collector.http_endpoint + "/metrics") as response:
            assert response.status == 401  # without the token
        secret = tmp_path / "agentmesh-token"
        secret.write_text(TOKEN + "\n")  # as a mounted secret often is
        job["authorization"]["credentials_file"] = str(secret)
        job["static_configs"] = [{"targets": [urlsplit(collector.http_endpoint).netloc]}]
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})
        )
        port = _free_port()
        prometheus = subprocess.Popen(  # noqa: ASYNC220 - a server left running, not waited for
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            health: dict[str, Any] = {}
            for _ in range(120):  # until the first scrape is reported, at most 30 s
                try:
                    async with client.get(f"http://127.0.0.1:{port}/api/v1/targets") as answer:
                        targets = (await answer.json())["data"]["activeTargets"]
                except aiohttp.ClientError:
                    targets = []  # still starting
                health = cast("dict[str, Any]", targets[0]) if targets else {}
                if health.get("health") in ("up", "down"):
                    break
                await asyncio.sleep(0.25)
            assert (health.get("health"), health.get("lastError")) == ("up", "")
            query = {"query": "agentmesh_spans_received_total"}
            async with client.get(f"http://127.0.0.1:{port}/api/v1/query", params=query) as answer:
                assert (await answer.json())["data"]["result"]  # the series were stored
        finally:
            prometheus.terminate()
            try:
                prometheus.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait()
