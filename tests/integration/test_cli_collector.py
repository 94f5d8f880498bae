"""`agentmesh collector` as a user runs it: a real process, real OTLP/gRPC, SIGTERM to stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import duckdb
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentmesh.core import semconv

AGENTMESH = str(Path(sys.executable).parent / "agentmesh")


def test_collector_command_receives_stores_and_stops_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    process = subprocess.Popen(
        [AGENTMESH, "collector", "--port", "0", "--http-port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, AGENTMESH_LOG_LEVEL="info"),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"OTLP/gRPC on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        assert line.rstrip().endswith(f"storing to the DuckDB file {db.resolve()}"), line
        provider = TracerProvider(resource=Resource.create({"service.name": "cli-test"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=match.group(1), insecure=True))
        )
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span(
            "invoke_workflow g",
            attributes={
                semconv.GEN_AI_OPERATION_NAME: "invoke_workflow",
                semconv.AGENTMESH_RUN_ID: "run-cli",
            },
        ):
            for agent in ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]:
                with tracer.start_as_current_span(
                    f"invoke_agent {agent}",
                    attributes={
                        semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
                        semconv.GEN_AI_AGENT_NAME: agent,
                        semconv.AGENTMESH_RUN_ID: "run-cli",
                    },
                ):
                    pass
        provider.shutdown()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert '"event": "collector listening"' in err
    assert '"type": "ping_pong"' in err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from spans").fetchone() == (11,)
        assert con.execute("select run_id from runs").fetchall() == [("run-cli",)]
        assert con.execute("select count(*) from detections").fetchone() == (1,)


def test_collector_without_training_still_publishes_the_configured_modes() -> None:
    modes = {"*": "shadow", "triage": "enforce"}
    weights = {"*": {"cost_weight": 50}}
    configured = ["--router-modes", json.dumps(modes), "--router-tradeoffs", json.dumps(weights)]
    ports = ["--port", "0", "--http-port", "0"]
    process = subprocess.Popen(
        [AGENTMESH, "collector", *ports, "--store", "memory", "--no-router-training", *configured],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, AGENTMESH_LOG_LEVEL="info"),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"OTLP/HTTP on (http://127\.0\.0\.1:\d+)/v1/traces", line)
        assert match, line
        with urllib.request.urlopen(f"{match.group(1)}/v1/route-table", timeout=10) as response:
            table = json.loads(response.read())
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert table["default_mode"] == "shadow"
    assert table["modes"] == {"triage": "enforce"}
    assert table["tradeoffs"] == {"*": {"cost_weight": 50.0, "latency_weight": 0.0}}
    assert table["predictor"] is None  # nothing learned: no trainer
    assert '"event": "router.configuration_published"' in err


def test_wrong_setting_names_the_variable(tmp_path: Path) -> None:
    done = subprocess.run(
        [AGENTMESH, "collector", "--db", str(tmp_path / "x.duckdb")],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, AGENTMESH_COLLECTOR_GRPC_PORT="lots"),
    )
    assert done.returncode == 2
    assert "AGENTMESH_COLLECTOR_GRPC_PORT='lots'" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_subcommand_lists_the_commands() -> None:
    done = subprocess.run([AGENTMESH], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "collector" in done.stderr
    assert "demo" in done.stderr
