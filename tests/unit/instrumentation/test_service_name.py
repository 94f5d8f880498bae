"""The default ``service.name``: what the process runs, however it was started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_PRINT_NAME = (
    "from opentelemetry import trace\n"
    "print(trace.get_tracer_provider().resource.attributes['service.name'])\n"
)
_LAUNCHER = Path(sys.executable).with_name("agentmesh-instrument")


def _service_name(args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OTEL_SERVICE_NAME"}
    env["AGENTMESH_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens: spans are dropped
    done = subprocess.run(
        [str(_LAUNCHER), sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def app(tmp_path: Path) -> Path:
    package = tmp_path / "team"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "support_bot.py").write_text(_PRINT_NAME)
    (tmp_path / "triage.py").write_text(_PRINT_NAME)
    return tmp_path


def test_a_script_is_named_after_its_file(app: Path) -> None:
    assert _service_name(["triage.py"], app) == "triage"


def test_a_module_run_with_dash_m_is_named_after_the_module(app: Path) -> None:
    # the instrumentation starts while Python is still finding the module: argv[0] is "-m"
    assert _service_name(["-m", "team.support_bot"], app) == "support_bot"


def test_code_given_on_the_command_line_has_no_name_of_its_own(app: Path) -> None:
    assert _service_name(["-c", _PRINT_NAME], app) == "unknown_service"
