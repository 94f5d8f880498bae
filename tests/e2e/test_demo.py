"""`agentmesh demo --serve` end to end: a real subprocess, its dashboard, API and DuckDB file."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from agentmesh.core import semconv


@dataclass
class DemoOutcome:
    exit_code: int
    output: str
    db: Path
    served: dict[str, Any]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoOutcome:
    """Run ``agentmesh demo --serve`` (free ports), read what it serves, stop it with Ctrl-C."""
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    agentmesh = Path(sys.executable).parent / "agentmesh"
    env = dict(os.environ, COLUMNS="200")
    process = subprocess.Popen(
        [
            str(agentmesh),
            "demo",
            "--db",
            str(db),
            "--serve",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    served: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    try:
        for line in process.stdout:  # the report, then the serving collector's line
            lines.append(line)
            found = re.search(r"web dashboard on (http://\S+)/ui/", line)
            if found:
                base = found.group(1)
                with urllib.request.urlopen(base + "/ui/", timeout=10) as page:
                    served["page"] = page.read().decode()
                served["runs"] = _get_json(base + "/v1/runs")["runs"]
                served["decisions"] = _get_json(base + "/v1/decisions?limit=1000")["decisions"]
                break
            if time.monotonic() > deadline:
                break
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    return DemoOutcome(process.returncode, "".join(lines) + rest, db, served)


def test_demo_serve_keeps_the_runs_on_the_web_dashboard(demo: DemoOutcome) -> None:
    assert "<title>AgentMesh</title>" in demo.served["page"], demo.output
    runs = demo.served["runs"]
    assert len(runs) == 2
    assert sorted(r["detections"] for r in runs) == [0, 1]
    assert {r["workflow_name"] for r in runs} == {"supervisor_graph"}


def test_the_demo_routes_in_shadow_mode_and_the_decision_log_shows_it(
    demo: DemoOutcome,
) -> None:
    decisions = demo.served["decisions"]
    assert len(decisions) == 5 + 16  # one per chat call of the two runs
    assert {d["mode"] for d in decisions} == {"shadow"}
    assert {d["run_id"] for d in decisions} == {r["run_id"] for r in demo.served["runs"]}
    for d in decisions:
        assert d["candidates"], d
        assert d["chosen"] in d["candidates"]
        assert d["model"] == d["requested_model"]  # shadow: the model asked for answered
        assert not d["error"]


def _spans(db: Path) -> list[dict[str, object]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "select trace_id, span_id, parent_span_id, name, kind, attributes from spans "
            "order by start_ns"
        ).fetchall()
    return [
        {
            "trace_id": r[0],
            "span_id": r[1],
            "parent": r[2],
            "name": r[3],
            "kind": r[4],
            "attributes": json.loads(r[5]),
        }
        for r in rows
    ]


def test_demo_exits_zero_and_shows_both_graphs_and_one_detection(demo: DemoOutcome) -> None:
    assert demo.exit_code == 0, demo.output
    assert "Run 1: clean run" in demo.output
    assert "Run 2: faulty run" in demo.output
    assert demo.output.count("DETECTION ping_pong") == 1
    clean, faulty = demo.output.split("Run 2: faulty run", 1)
    assert "no detection" in clean
    assert "DETECTION" not in clean
    assert "DETECTION ping_pong" in faulty
    assert "supervisor → researcher" in clean
    assert "supervisor → writer" in clean
    assert str(demo.db) in demo.output.replace("\n", "")


def test_stored_spans_carry_the_contract(demo: DemoOutcome) -> None:
    spans = _spans(demo.db)
    traces = {s["trace_id"] for s in spans}
    assert len(traces) == 2
    by_op: dict[str, list[dict[str, object]]] = {}
    for span in spans:
        attrs = span["attributes"]
        assert isinstance(attrs, dict)
        by_op.setdefault(str(attrs.get(semconv.GEN_AI_OPERATION_NAME)), []).append(span)

    workflows = by_op["invoke_workflow"]
    assert len(workflows) == 2
    for wf in workflows:
        attrs = wf["attributes"]
        assert isinstance(attrs, dict)
        assert wf["name"] == "invoke_workflow supervisor_graph"
        assert attrs[semconv.GEN_AI_WORKFLOW_NAME] == "supervisor_graph"
        assert attrs[semconv.AGENTMESH_FRAMEWORK] == "langgraph"
        assert attrs[semconv.GEN_AI_CONVERSATION_ID] == "demo"
        assert len(str(attrs[semconv.AGENTMESH_RUN_ID])) == 32

    run_ids = {wf["trace_id"]: wf["attributes"][semconv.AGENTMESH_RUN_ID] for wf in workflows}  # type: ignore[index]
    for span in spans:
        attrs = span["attributes"]
        assert isinstance(attrs, dict)
        assert attrs[semconv.AGENTMESH_RUN_ID] == run_ids[span["trace_id"]], span["name"]

    agents = by_op["invoke_agent"]
    assert {s["attributes"][semconv.GEN_AI_AGENT_NAME] for s in agents} == {  # type: ignore[index]
        "supervisor",
        "researcher",
        "writer",
    }
    handoffs = [s for s in agents if semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME in s["attributes"]]  # type: ignore[operator]
    assert handoffs
    for span in handoffs:
        attrs = span["attributes"]
        assert isinstance(attrs, dict)
        assert attrs[semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME] == attrs[semconv.GEN_AI_AGENT_NAME]
        assert attrs[semconv.AGENTMESH_HANDOFF_KIND] in {"edge", "command"}
        assert str(attrs[semconv.AGENTMESH_HANDOFF_CONTEXT_DIGEST]).startswith("sha256:")
        assert int(attrs[semconv.AGENTMESH_HANDOFF_CONTEXT_SIZE]) > 0
    kinds = {
        (
            s["attributes"][semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME],
            s["attributes"][semconv.AGENTMESH_HANDOFF_KIND],
        )  # type: ignore[index]
        for s in handoffs
    }
    assert ("supervisor", "command") in kinds
    assert ("researcher", "edge") in kinds

    chats = by_op["chat"]
    assert len(chats) == 5 + 16
    agent_span_ids = {s["span_id"] for s in agents}
    for chat in chats:
        attrs = chat["attributes"]
        assert isinstance(attrs, dict)
        assert chat["kind"] == "client"
        assert chat["parent"] in agent_span_ids
        assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "openai"
        assert attrs[semconv.GEN_AI_REQUEST_MODEL] in {"gpt-4o-mini", "gpt-4.1-mini"}
        assert chat["name"] == f"chat {attrs[semconv.GEN_AI_REQUEST_MODEL]}"
        assert int(attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS]) > 0
        assert int(attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) > 0
        assert float(attrs[semconv.AGENTMESH_COST_USD]) > 0
        assert attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
        assert attrs[semconv.SERVER_ADDRESS] == "127.0.0.1"


def test_detection_and_graph_rows_are_stored(demo: DemoOutcome) -> None:
    with duckdb.connect(str(demo.db), read_only=True) as con:
        detections = con.execute("select type, trace_id, severity from detections").fetchall()
        assert len(detections) == 1
        assert detections[0][0] == "ping_pong"
        faulty_trace = detections[0][1]
        loops = con.execute(
            "select count(*) from handoffs where trace_id = ? and source = 'supervisor' "
            "and target = 'researcher'",
            [faulty_trace],
        ).fetchone()
        assert loops is not None
        assert loops[0] >= 4
        agents = con.execute("select count(distinct trace_id) from agents").fetchone()
        assert agents == (2,)


def test_a_busy_port_is_refused_before_the_demo_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # it ran the whole demo (about ten seconds) and only then said the port was taken
    from agentmesh.collector.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        argv = ["demo", "--serve", "--grpc-port", "0", "--http-port", str(port)]
        argv += ["--db", str(tmp_path / "d.duckdb")]
        assert main(argv) == 2
    said = capsys.readouterr().err
    assert f"--http-port: cannot listen on 127.0.0.1:{port}" in said
    assert not (tmp_path / "d.duckdb").exists()  # nothing ran
