"""A short-lived app's spans reach the collector: the exporter is built before Python exits.

The OTLP exporter is built on the first export (so importing gRPC costs start-up nothing). An
app that ends before its first scheduled export (200 ms) exports everything at exit, when
thread pools already refuse work, and importing the exporter needs one: without the
exit-time preparation those spans were lost ("cannot schedule new futures after interpreter
shutdown").
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from agentmesh.collector import Collector, CollectorSettings, MemoryStore

APP = textwrap.dedent(
    """
    from opentelemetry import trace

    from agentmesh.instrumentation import init

    init()
    with trace.get_tracer("short").start_as_current_span("only-span"):
        pass
    """
)


async def test_the_spans_of_an_app_that_exits_before_its_first_export_arrive(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, duckdb_path=tmp_path / "unused.duckdb"
    )
    async with Collector(settings, store) as collector:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMESH_"))}
        env.update(AGENTMESH_ENDPOINT=collector.endpoint, AGENTMESH_CONTROL_ENABLED="false")
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", APP],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        await collector.drain()
        count = await store.count_spans()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "export_failed" not in done.stderr
    assert count == 1
