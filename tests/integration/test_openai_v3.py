"""The OpenAI instrumentation on the openai 3.x SDK, whose HTTP client is ``httpx2``.

The workspace resolves openai 2.x (CrewAI pins ``openai<3``), and apps run both majors. This
test reruns the OpenAI instrumentation's own tests (chat, streams, stream usage, Responses,
embeddings, helpers, fail-open, the hot path) in a throwaway venv holding openai 3 and
AgentMesh's packages from this checkout, made with ``uv`` and cached by the overhead
benchmark's ``bench/_overhead/venvs.py``. Those tests talk to the fake provider over real HTTP,
so they exercise openai 3's own transport. Making the venv needs ``uv`` and PyPI; when either
is missing the test fails with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _overhead import peers, venvs  # noqa: E402 - bench/ is not a package of the workspace

OPENAI_3 = "openai==3.63.0"
TESTS = ROOT / "tests" / "unit" / "instrumentation"
SUITE = (
    "test_openai_chat.py",
    "test_openai_failopen.py",
    "test_openai_helpers.py",
    "test_openai_hot_path.py",
    "test_openai_stream_usage.py",
    "test_openai_streaming.py",
    "openai_api",
)
"""The OpenAI tests that need no ``httpx`` of their own (openai 3 does not install it)."""

OPENAI_V3 = peers.Peer(
    name="compat-openai3",
    label="openai 3",
    dist="openai",
    requirements=(
        OPENAI_3,
        f"anthropic=={version('anthropic')}",
        f"pytest=={version('pytest')}",
        f"pytest-asyncio=={version('pytest-asyncio')}",
        *("-e", str(ROOT / "core"), "-e", str(ROOT / "router")),
        *("-e", f"{ROOT / 'instrumentation'}[testing]"),
    ),
    key_files=tuple(ROOT / pkg / "pyproject.toml" for pkg in ("core", "router", "instrumentation")),
    common=(f"opentelemetry-sdk=={version('opentelemetry-sdk')}",),
)


@pytest.fixture(scope="module")
def python() -> Path:
    try:
        return venvs.ensure(OPENAI_V3, venvs.default_cache_dir()).python
    except RuntimeError as exc:
        pytest.fail(f"cannot make the openai 3 venv (uv and PyPI are needed): {exc}")


def test_the_openai_instrumentation_tests_pass_on_openai_3(python: Path) -> None:
    installed = subprocess.run(
        [str(python), "-c", "import openai, httpx2; print(openai.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.stdout.strip() == OPENAI_3.split("==")[1], installed.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "PYTEST_"))}
    done = subprocess.run(
        [
            str(python),
            *("-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--rootdir", str(ROOT), "-o", "addopts="),
            *(str(TESTS / name) for name in SUITE),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert int(passed.group(1)) >= 50, summary  # the whole suite ran, not a stray file
    assert "skipped" not in summary, summary
