"""``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` is honoured by ``init()`` and by the distro.

Names are the entry point names (``agentmesh_openai``, ``agentmesh_langgraph``), the libraries'
short names (``openai``, ``langgraph``), or ``*``. Each case runs in a fresh interpreter, the
way an application starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentmesh.instrumentation._setup import instrumentation_disabled

ROOT = Path(__file__).resolve().parents[3]

# Prints which libraries are patched: [openai, langgraph].
PROBE = textwrap.dedent(
    """
    import wrapt
    from openai.resources.chat.completions import Completions
    from langgraph.pregel import Pregel
    print([
        isinstance(vars(Completions)["create"], wrapt.FunctionWrapper),
        isinstance(vars(Pregel)["stream"], wrapt.FunctionWrapper),
    ])
    """
)


@pytest.mark.parametrize(
    ("names", "entry_point", "disabled"),
    [
        ("", "agentmesh_openai", False),
        ("openai", "agentmesh_openai", True),
        ("agentmesh_openai", "agentmesh_openai", True),
        (" Requests , LangGraph ", "agentmesh_langgraph", True),
        ("langgraph", "agentmesh_openai", False),
        ("*", "agentmesh_langgraph", True),
    ],
)
def test_names_that_disable_an_instrumentor(
    names: str, entry_point: str, disabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", names)
    assert instrumentation_disabled(entry_point) is disabled


def _env(disabled: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    env["AGENTMESH_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens: export is dropped
    env["AGENTMESH_SHUTDOWN_TIMEOUT_S"] = "0.2"
    if disabled is not None:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = disabled
    return env


@pytest.mark.parametrize(
    ("disabled", "expected"),
    [
        ("langgraph", "[True, False]"),
        ("agentmesh_openai", "[False, True]"),
        ("*", "[False, False]"),
    ],
)
def test_init_skips_disabled_instrumentors(disabled: str | None, expected: str) -> None:
    code = "import agentmesh.instrumentation as am\nam.init()\n" + PROBE
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(disabled),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def _launcher() -> list[str]:
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "run", "--no-sync", "--project", str(ROOT), "agentmesh-instrument"]
    return [str(Path(sys.executable).parent / "agentmesh-instrument")]


@pytest.mark.parametrize(
    ("disabled", "expected"),
    [
        (None, "[True, True]"),
        ("openai", "[False, True]"),  # a short name: OpenTelemetry's loader does not know it
        ("agentmesh_langgraph", "[True, False]"),
    ],
)
def test_the_distro_skips_disabled_instrumentors(
    disabled: str | None, expected: str, tmp_path: Path
) -> None:
    app = tmp_path / "probe.py"
    app.write_text(PROBE)
    result = subprocess.run(
        [*_launcher(), "python", str(app)],
        env=_env(disabled),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
