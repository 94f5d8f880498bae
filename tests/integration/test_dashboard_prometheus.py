"""Every query of the Grafana dashboard runs on a real Prometheus scraping a real collector.

The collector receives a looping run over OTLP/HTTP, raises its detection, forwards the spans
to a sink and delivers the detection to a webhook, so every family of metrics has series. A real
Prometheus scrapes ``/metrics`` every second; each panel's query, with Grafana's variables
filled in, must be valid PromQL and return data, and the dashboard's ``Collector`` variable must
list the collector.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from agentmesh.collector import Collector, CollectorSettings, DuckDBStore
from agentmesh.collector.forward.testing import SinkServer
from agentmesh.collector.testing import SpanFactory, to_otlp_request

DASHBOARD = Path(__file__).parents[2] / "dashboards" / "agentmesh-collector.json"
_GRAFANA = {"$__rate_interval": "1m", "$__range": "1m", "$instance": ".*"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def _prometheus(binary: str, target: str, workdir: Path) -> AsyncIterator[str]:
    """Run Prometheus scraping ``target`` (host:port) every second; yield its base URL."""
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: agentmesh-collector\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = _free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - a server left running, not waited for
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _get(session: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with session.get(url, params=params) as response:
        return await response.json()


async def _until(check: Any) -> None:
    for _ in range(120):  # 30 s
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError("Prometheus did not scrape the collector twice within 30 s")


def _queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    found: list[tuple[str, str]] = []
    for panel in panels:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in _GRAFANA.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"a Grafana variable left unfilled: {expr}"
            found.append((panel["title"], expr))
    return found


async def test_every_dashboard_query_returns_data_from_a_scraped_collector(
    tmp_path: Path, prometheus_binary: str
) -> None:
    async with SinkServer() as forwarded, SinkServer() as hook:
        settings = CollectorSettings.load(
            grpc_port=0,
            http_port=0,
            grpc_grace_seconds=1.0,
            decode_workers=0,
            forward_otlp_endpoints=[forwarded.url("/v1/traces")],
            detection_webhook_urls=[hook.url("/agentmesh")],
        )
        f = SpanFactory()
        root = f.workflow("research", run_id="run-loop")
        agents = [f.agent(name, parent=root) for name in ["planner", "researcher", "writer"] * 4]
        body = to_otlp_request([root, *agents]).SerializeToString()
        async with Collector(settings, DuckDBStore(tmp_path / "collector.duckdb")) as collector:
            target = urlsplit(collector.http_endpoint).netloc
            async with (
                _prometheus(prometheus_binary, target, tmp_path) as prometheus,
                aiohttp.ClientSession() as session,
            ):
                async with session.post(
                    collector.http_endpoint + "/v1/traces",
                    data=body,
                    headers={"Content-Type": "application/x-protobuf"},
                ) as response:
                    assert response.status == 200
                await hook.wait_for(1)  # the loop's detection, delivered
                await collector.drain()

                async def scraped_twice() -> bool:
                    try:
                        answer = await _get(
                            session,
                            f"{prometheus}/api/v1/query",
                            query="count_over_time(agentmesh_spans_received_total[1m]) >= 2",
                        )
                    except aiohttp.ClientError:
                        return False  # Prometheus is still starting
                    return bool(answer.get("data", {}).get("result"))

                await _until(scraped_twice)
                results: dict[str, Any] = {}
                for title, expr in _queries():
                    results[expr] = (
                        title,
                        await _get(session, f"{prometheus}/api/v1/query", query=expr),
                    )
                listed = await _get(
                    session,
                    f"{prometheus}/api/v1/label/instance/values",
                    **{"match[]": "agentmesh_spans_received_total"},
                )

    for expr, (title, answer) in results.items():
        assert answer["status"] == "success", f"{title}: {expr}: {answer.get('error')}"
        assert answer["data"]["result"], f"{title}: {expr} returned no data"
    assert listed["data"] == [target]
    by_type = next(a for e, (_, a) in results.items() if "by (type)" in e)
    assert [r["metric"]["type"] for r in by_type["data"]["result"]] == ["handoff_loop"]
