"""The collector's tests pass with every dependency at the oldest release its packages declare.

A floor nobody installs is a guess: four of the collector's were wrong (``pydantic-settings``
2.6 lacks ``NoDecode``, ``prometheus-client`` 0.21 its aiohttp exporter, ``grpcio-health-checking``
before 1.85 the health ``List`` messages, and ``asyncpg`` 0.30 hangs replacing a lost
connection). This test makes a throwaway venv with ``uv pip install --resolution lowest-direct``
of the workspace packages (so each direct dependency sits on its declared floor), checks that
the collector's dependencies did land on their floors, and reruns the collector's unit tests and
its integration tests there. The venv is cached by ``bench/_overhead/venvs.py`` under a key of
the packages' ``pyproject.toml`` files, so a changed floor rebuilds it. Making it needs ``uv``
and PyPI; when either is missing the test fails with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from _venv_pytest import run_suite
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _overhead import peers, venvs  # noqa: E402 - bench/ is not a package of the workspace

OTEL_PROTO_FLOOR = "1.43.0"
"""The collector's ``opentelemetry-proto`` floor; the HTTP exporter the tests drive pins its own
``opentelemetry-proto``, so it is installed at the same release."""
ABOVE_FLOOR = {"redis": "agentmesh-checkpoint's redis extra asks for 5.3"}
"""Collector dependencies another workspace package lifts above the collector's own floor."""
SUITE = (
    "tests/unit/collector",
    *(
        f"tests/integration/test_{name}.py"
        for name in (
            "cli_check", "cli_checkpoints", "cli_collector", "cli_queries", "cli_resume",
            "cli_router_train", "collector_backpressure", "collector_grpc", "collector_hot_state",
            "collector_http", "collector_overload", "collector_retention",
            "collector_store_outage", "collector_tls", "control_endpoint", "dashboard_prometheus",
            "decisions_api", "detection_events", "detector_state_redis", "duckdb_disk_full",
            "export_decisions", "feedback_api", "forwarding", "grpc_health", "postgres_store",
            "query_api", "redis_state", "route_table_redis", "route_table_sync", "router_loop",
            "scale_out", "short_lived_app", "web_ui_routes",
        )
    ),
    # The OpenTelemetry HTTP exporter before 1.45 retries on its own backoff, not after the
    # collector's Retry-After: the exporter's behaviour, not ours (1.45 is the dev floor).
    *(
        "--deselect",
        "tests/integration/test_collector_backpressure.py"
        "::test_sdk_exporters_honour_the_retry_delay",
    ),
)  # fmt: skip
LEAST_PASSED = 880
"""About how many tests the suite holds (a guard against running a stray file only)."""


def _floors() -> dict[str, str]:
    """The collector's direct dependencies (and agentmesh-core's) with their declared floors."""
    floors: dict[str, str] = {}
    for package in ("core", "collector"):
        project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]
        for text in project["dependencies"]:
            requirement = Requirement(text)
            if requirement.name.startswith("agentmesh-"):
                continue
            (lowest,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
            floors[requirement.name] = lowest
    return floors


def _venv() -> peers.Peer:
    packages = ("core", "router", "checkpoint", "collector", "instrumentation")
    return peers.Peer(
        name="floors-collector",
        label="the collector's dependency floors",
        dist="agentmesh-collector",
        requirements=(
            *("--resolution", "lowest-direct"),
            *("-e", str(ROOT / "core"), "-e", f"{ROOT / 'router'}[learned]"),
            *("-e", f"{ROOT / 'checkpoint'}[redis,postgres,duckdb]", "-e", str(ROOT / "collector")),
            *("-e", f"{ROOT / 'instrumentation'}[testing]"),
            # the test tools at the workspace's releases (pinned: lowest-direct would take
            # their oldest too)
            *(f"{tool}=={version(tool)}" for tool in ("pytest", "pytest-asyncio", "trustme")),
            f"pyyaml=={version('pyyaml')}",
            f"opentelemetry-exporter-otlp-proto-http=={OTEL_PROTO_FLOOR}",
        ),
        key_files=tuple(ROOT / package / "pyproject.toml" for package in packages),
        common=(),
    )


def test_the_collector_tests_pass_on_its_dependency_floors() -> None:
    try:
        python = venvs.ensure(_venv(), venvs.default_cache_dir()).python
    except RuntimeError as exc:
        pytest.fail(f"cannot make the dependency-floor venv (uv and PyPI are needed): {exc}")
    floors = _floors()
    assert Version(floors["opentelemetry-proto"]) == Version(OTEL_PROTO_FLOOR)
    shown = subprocess.run(
        [
            str(python),
            "-c",
            "import json, sys; from importlib.metadata import version; "
            "print(json.dumps({name: version(name) for name in sys.argv[1:]}))",
            *floors,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    installed: dict[str, str] = json.loads(shown.stdout)
    off_floor = {
        name: got
        for name, got in installed.items()
        if name not in ABOVE_FLOOR and Version(got) != Version(floors[name])
    }
    assert off_floor == {}  # the floors are what runs
    run_suite(python, SUITE, least=LEAST_PASSED, timeout_s=1200)
