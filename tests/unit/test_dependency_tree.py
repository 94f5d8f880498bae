"""An application that installs agentmesh-instrumentation gets no collector-side weight."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "duckdb",
    "river",
    "asyncpg",
    "redis",
    "langgraph",
    "langchain-core",
    "crewai",
    "aiohttp",
    "rich",
    "openai",
    "anthropic",
    "grpcio-tools",
    "grpcio-reflection",
    "grpcio-health-checking",
    "grpcio-status",
}


def _resolved(package: str, *extras: str) -> set[str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: install it with `pip install uv`")
    args = [uv, "export", "--package", package, "--frozen", "--no-dev", "--no-hashes"]
    for extra in extras:
        args += ["--extra", extra]
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    names: set[str] = set()
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-e "):
            names.add("agentmesh-" + Path(line[3:]).name)
            continue
        match = re.match(r"([A-Za-z0-9_.\-]+)", line)
        assert match is not None, line
        names.add(match.group(1).lower().replace("_", "-"))
    return names


def test_instrumentation_alone_pulls_no_heavy_dependency() -> None:
    names = _resolved("agentmesh-instrumentation")
    assert "opentelemetry-sdk" in names
    assert "agentmesh-router" in names
    assert "agentmesh-collector" not in names
    assert not names & FORBIDDEN, f"instrumentation pulls {sorted(names & FORBIDDEN)}"


def test_extras_bring_only_what_they_name() -> None:
    with_openai = _resolved("agentmesh-instrumentation", "openai")
    assert "openai" in with_openai
    assert "langgraph" not in with_openai
    assert "duckdb" not in with_openai


def test_collector_carries_the_heavy_parts() -> None:
    names = _resolved("agentmesh-collector")
    assert {"duckdb", "grpcio", "opentelemetry-proto"} <= names
