"""Run the demo: fake provider, collector, and the supervisor app twice."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agentmesh.collector.demo.scripts import clean_scripts, looping_supervisor
from agentmesh.collector.demo.supervisor_app import SUPERVISOR_MODEL
from agentmesh.collector.detection import Detection
from agentmesh.collector.service import Collector
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.store.base import StoredGraph
from agentmesh.core import CollectorError
from agentmesh.instrumentation.testing import FakeProvider

__all__ = ["AppRun", "DemoReport", "DemoRunReport", "run_demo"]

APP_MODULE = "agentmesh.collector.demo.supervisor_app"
"""The module the demo runs as its application."""


@dataclass(frozen=True, slots=True)
class AppRun:
    """One execution of the demo app in its own process.

    Attributes:
        label: What the run is, for people.
        command: The command line that ran it.
        exit_code: Its exit code.
        output: What it printed on standard output.
        errors: What it printed on standard error.
        seconds: Wall time of the process.
    """

    label: str
    command: tuple[str, ...]
    exit_code: int
    output: str
    errors: str
    seconds: float


@dataclass(frozen=True, slots=True)
class DemoRunReport:
    """What the collector made of one app run.

    Attributes:
        app: The process that ran.
        graph: The run's stored agent graph (``None`` if no span arrived).
        detections: Detections raised on the run.
    """

    app: AppRun
    graph: StoredGraph | None
    detections: list[Detection]


@dataclass(frozen=True, slots=True)
class DemoReport:
    """Everything the demo shows.

    Attributes:
        provider_url: Base URL of the fake provider.
        collector_endpoint: OTLP/gRPC endpoint of the collector.
        db_path: The DuckDB file holding spans, graphs and detections.
        runs: The clean run, then the faulty one.
        spans_received: Spans the collector received.
        spans_stored: Spans stored in the DuckDB file.
        seconds: Wall time of the whole demo.
    """

    provider_url: str
    collector_endpoint: str
    db_path: Path
    runs: list[DemoRunReport]
    spans_received: int
    spans_stored: int
    seconds: float


def _launcher() -> list[str]:
    script = shutil.which("agentmesh-instrument", path=str(Path(sys.executable).parent))
    script = script or shutil.which("agentmesh-instrument")
    if script is None:
        raise CollectorError(
            "agentmesh-instrument is not installed; install agentmesh-collector[demo]"
        )
    return [script]


async def _run_app(label: str, base_url: str, endpoint: str, max_steps: int) -> AppRun:
    command = (
        *_launcher(),
        sys.executable,
        "-m",
        APP_MODULE,
        "--base-url",
        base_url,
        "--max-steps",
        str(max_steps),
    )
    env = dict(os.environ)
    env.update(
        {
            "AGENTMESH_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "agentmesh-demo",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "AGENTMESH_LOG_LEVEL": "warning",
        }
    )
    # the router decides each call in shadow mode (recorded, never changing the model), so the
    # dashboard's decision log has something to show; a mode set by the user wins
    env.setdefault("AGENTMESH_ROUTING_MODE", "shadow")
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return AppRun(
        label=label,
        command=command,
        exit_code=process.returncode if process.returncode is not None else -1,
        output=out.decode(errors="replace"),
        errors=err.decode(errors="replace"),
        seconds=time.perf_counter() - started,
    )


def _fresh_file(db_path: Path) -> Path:
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    return db_path.resolve()


async def _new_runs(
    collector: Collector, seen: set[str]
) -> tuple[StoredGraph | None, list[Detection]]:
    await collector.drain()
    fresh = [run for run in await collector.store.runs() if run.trace_id not in seen]
    if not fresh:
        return None, []
    fresh.sort(key=lambda run: run.start_ns)
    trace_id = fresh[0].trace_id
    seen.update(run.trace_id for run in fresh)
    return await collector.store.graph(trace_id), await collector.store.detections(trace_id)


async def run_demo(db_path: Path, *, max_steps: int = 16) -> DemoReport:
    """Run the demo end to end.

    Args:
        db_path: DuckDB file to store into (replaced if it exists).
        max_steps: LangGraph recursion limit of the app, which ends the looping run.

    Returns:
        The report.
    """
    started = time.perf_counter()
    db_path = await asyncio.to_thread(_fresh_file, db_path)
    settings = CollectorSettings.load(
        grpc_host="127.0.0.1",
        grpc_port=0,
        http_host="127.0.0.1",
        http_port=0,
        duckdb_path=db_path,
        decode_workers=0,  # a few dozen spans: worker processes would only add start-up time
    )
    reports: list[DemoRunReport] = []
    async with FakeProvider(scripts=clean_scripts()) as provider, Collector(settings) as collector:
        seen: set[str] = set()
        plan = [("clean run", False), ("faulty run: the supervisor's model loops", True)]
        for label, faulty in plan:
            if faulty:
                provider.set_script(SUPERVISOR_MODEL, looping_supervisor())
            app = await _run_app(label, provider.openai_base_url, collector.endpoint, max_steps)
            graph, detections = await _new_runs(collector, seen)
            reports.append(DemoRunReport(app=app, graph=graph, detections=detections))
        stats = collector.stats
        stored = await collector.store.count_spans()
        return DemoReport(
            provider_url=provider.openai_base_url,
            collector_endpoint=collector.endpoint,
            db_path=db_path,
            runs=reports,
            spans_received=stats.spans_received,
            spans_stored=stored,
            seconds=time.perf_counter() - started,
        )
