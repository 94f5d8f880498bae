"""The CrewAI examples (`crewai_crew.py`, `crewai_flow.py`) run offline and show their spans."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def test_example_runs_offline_and_prints_the_span_tree(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    env["CREWAI_STORAGE_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "crewai_crew.py"), "--show-spans"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("article: Sea otters")
    names = [line.split(" {")[0].rstrip() for line in lines[1:]]
    assert names == [
        "invoke_workflow newsroom",
        "  invoke_agent Editor",
        "    chat editor-model",
        "    execute_tool Delegate work to coworker",
        "      invoke_agent Researcher",
        "        chat researcher-model",
        "        execute_tool Encyclopedia",
        "        chat researcher-model",
        "    chat editor-model",
        "  invoke_agent Writer",
        "    chat writer-model",
    ]
    assert "'handoff': 'delegation'" in lines[5]
    assert "'handoff': 'task_context'" in lines[10]


def test_flow_example_runs_offline_and_prints_the_span_tree(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    env["CREWAI_STORAGE_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "crewai_flow.py"), "--show-spans"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.startswith("reply: "))
    assert lines[start] == "reply: Dear customer: Refund of order #1042 issued."
    tree = lines[start + 1 :]
    assert [line.split(" {")[0].rstrip() for line in tree] == [
        "invoke_workflow SupportFlow",
        "  invoke_node receive",
        "  invoke_node triage",
        "    invoke_agent Triage",
        "      chat triage-model",
        "  invoke_node issue_refund",
        "    invoke_workflow refunds",
        "      invoke_agent Refund Clerk",
        "        chat refunds-model",
        "  invoke_node reply",
    ]
    assert "'from': 'triage', 'handoff': 'conditional'" in tree[5]
    assert "'from': 'issue_refund', 'handoff': 'edge'" in tree[9]
