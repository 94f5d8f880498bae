"""The tests pass with every dependency at the oldest release its package declares.

A floor nobody installs is a guess, and several were wrong: the collector's ``pydantic-settings``
2.6 lacks ``NoDecode``, ``prometheus-client`` 0.21 its aiohttp exporter, ``grpcio-health-checking``
before 1.85 the health ``List`` messages, ``asyncpg`` 0.30 hangs replacing a lost connection, and
``langgraph-checkpoint`` before 2.1.2 lacks the metadata helper the savers import. Each test
makes a throwaway venv with ``uv pip install --resolution lowest-direct`` of workspace packages
(so each direct dependency sits on its declared floor), checks that the dependencies did land on
their floors (or on what another installed package requires), and reruns a part of the suite
there:

- the collector's side: core, router, checkpoint, collector, instrumentation; the collector's
  unit tests and its integration tests. The collector's ``opentelemetry-proto`` lifts the
  instrumentation's OpenTelemetry packages above their floors here, so
- the app's side is a venv of its own without the collector: core, router, instrumentation with
  its provider and LangGraph extras, checkpoint with every store; the instrumentation's unit tests
  (OpenTelemetry SDK 1.30, openai 1.40, anthropic 0.40, langgraph 0.5.0, wrapt 1.16) and the
  checkpoint tests (langgraph-checkpoint 2.1.2, redis 5.3, asyncpg 0.32, duckdb 1.2).

The venvs are cached by ``bench/_overhead/venvs.py`` under a key of the packages' ``pyproject.toml``
files, so a changed floor rebuilds them. Making one needs ``uv`` and PyPI; when either is missing
the test fails with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from _release_gaps import ANTHROPIC_0_40, LANGGRAPH_0_5, OPENAI_1_40, deselected
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
TEST_TOOLS = tuple(
    f"{tool}=={version(tool)}" for tool in ("pytest", "pytest-asyncio", "trustme", "pyyaml")
)
"""The test tools at the workspace's releases (pinned: lowest-direct would take their oldest)."""


@dataclass(frozen=True)
class _Side:
    """One floor venv: what it installs and which tests it reruns."""

    name: str
    packages: dict[str, tuple[str, ...]]
    """Workspace package directory -> the extras installed."""
    checked: tuple[str, ...]
    """The packages whose direct dependencies (with the extras installed) must sit on their
    floors."""
    pins: tuple[str, ...]
    """Other packages, pinned beside ours."""
    suite: tuple[str, ...]
    least: int
    """About how many tests the suite holds (a guard against running a stray file only)."""


COLLECTOR = _Side(
    name="collector",
    packages={
        "core": (),
        "router": ("learned",),
        "checkpoint": ("redis", "postgres", "duckdb"),
        "collector": (),
        "instrumentation": ("testing",),
    },
    checked=("core", "collector"),
    pins=(*TEST_TOOLS, f"opentelemetry-exporter-otlp-proto-http=={OTEL_PROTO_FLOOR}"),
    suite=(
        "tests/unit/collector",
        *(
            f"tests/integration/test_{name}.py"
            for name in (
                "cli_check", "cli_checkpoints", "cli_collector", "cli_queries", "cli_resume",
                "cli_router_train", "collector_backpressure", "collector_grpc",
                "collector_hot_state", "collector_http", "collector_overload",
                "collector_retention", "collector_store_outage", "collector_tls",
                "control_endpoint", "dashboard_prometheus", "decisions_api", "detection_events",
                "detector_state_redis", "duckdb_disk_full", "export_decisions", "feedback_api",
                "forwarding", "grpc_health", "postgres_store", "query_api", "redis_state",
                "route_table_redis", "route_table_sync", "router_loop", "scale_out",
                "short_lived_app", "web_ui_routes",
            )
        ),
        # The OpenTelemetry HTTP exporter before 1.45 retries on its own backoff, not after the
        # collector's Retry-After: the exporter's behaviour, not ours (1.45 is the dev floor).
        *(
            "--deselect",
            "tests/integration/test_collector_backpressure.py"
            "::test_sdk_exporters_honour_the_retry_delay",
        ),
        # an app routing with the real openai SDK: that SDK is the app's side, not installed here
        *(
            "--deselect",
            "tests/integration/test_route_table_sync.py"
            "::test_an_app_keeps_routing_by_its_last_table_when_a_predictor_does_not_parse",
        ),
    ),
    least=880,
)  # fmt: skip
"""The collector's floors (and agentmesh-core's): the other packages are installed for the tests
that use them (the CLI's checkpoint commands, the short-lived app)."""

_INSTRUMENTATION = "tests/unit/instrumentation"
_CHECKPOINT = "tests/checkpoint"
APP = _Side(
    name="app",
    packages={
        "core": (),
        "router": ("learned",),
        "instrumentation": ("openai", "anthropic", "langgraph", "testing"),
        "checkpoint": ("redis", "postgres", "duckdb", "langgraph"),
    },
    checked=("core", "router", "instrumentation", "checkpoint"),
    pins=(
        *TEST_TOOLS,
        # openai before 1.55.3 passes `proxies` to httpx, which 0.28 no longer takes (its bug)
        "httpx<0.28",
        # langgraph 0.5.0 asks for any langchain-core, and the releases after mid-2025 break
        # its import (an MRO error in PregelProtocol): the one of its day
        "langchain-core==0.3.66",
    ),
    suite=(
        _INSTRUMENTATION,
        # CrewAI is left to test_sdk_releases (1.14 pins its own OpenTelemetry SDK), the
        # collector to the other venv
        *("--ignore", f"{_INSTRUMENTATION}/crews"),
        *("--ignore", f"{_INSTRUMENTATION}/test_step_markers.py"),
        # APIs openai 1.40 does not have yet: Responses, the stream and parse helpers ...
        *("--ignore", f"{_INSTRUMENTATION}/openai_api/test_openai_responses.py"),
        *("--ignore", f"{_INSTRUMENTATION}/test_openai_helpers.py"),
        # ... and single tests of what openai 1.40, anthropic 0.40 and langgraph 0.5 lack
        *deselected((*OPENAI_1_40, *ANTHROPIC_0_40, *LANGGRAPH_0_5), _INSTRUMENTATION),
        _CHECKPOINT,
        # the conformance suite needs a newer langgraph-checkpoint; CrewAI as above
        *(
            item
            for name in (
                "conformance", "crewai_persistence", "crewai_resume", "crewai_tasks",
                "handoff_capture",
            )
            for item in ("--ignore", f"{_CHECKPOINT}/test_ckpt_{name}.py")
        ),
        # langgraph 0.5 has no `durability` argument and no Interrupt ids (0.6 added both)
        *(
            item
            for test in (
                "test_ckpt_langgraph_saver.py"
                "::test_subgraph_interrupts_and_updates_are_not_mistaken_for_forks",
                "test_ckpt_serde.py::test_roundtrip_langgraph_types",
                # CrewAI's flow persistence, left to test_sdk_releases as above
                "test_ckpt_writer_order.py"
                "::test_crewai_flow_states_list_before_older_langgraph_checkpoints",
            )
            for item in ("--deselect", f"{_CHECKPOINT}/{test}")
        ),
    ),
    least=700,
)  # fmt: skip
"""The app's side: what a team installs into its agents."""

INSTALLED = """
import json, sys
from importlib.metadata import distributions, version
from packaging.requirements import Requirement

names = sys.argv[1:]
lifts = {name: [] for name in names}
for dist in distributions():
    extras = ["", *(dist.metadata.get_all("Provides-Extra") or [])]
    for text in dist.requires or ():
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": e}) for e in extras):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in lifts:
            lows = [s.version for s in requirement.specifier if s.operator in (">=", "==", "~=")]
            lifts[name] += [[dist.metadata["Name"], low] for low in lows]
print(json.dumps({name: [version(name), lifts[name]] for name in names}))
"""
"""Run in the venv: each name's installed version, and the lower bounds other packages set
(under any of their extras: which ones are installed is not recorded)."""


def _floors(side: _Side) -> dict[str, str]:
    """The direct dependencies of the checked packages (with their extras) and their floors."""
    floors: dict[str, str] = {}
    for package in side.checked:
        extras = side.packages[package]
        project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]
        texts = list(project["dependencies"])
        for extra in extras:
            texts += project["optional-dependencies"][extra]
        for text in texts:
            requirement = Requirement(text)
            if requirement.name.startswith("agentmesh-"):
                continue
            (lowest,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
            name = requirement.name.lower()
            floors[name] = max(floors.get(name, lowest), lowest, key=Version)
    return floors


def _venv(side: _Side) -> peers.Peer:
    installs: list[str] = []
    for package, extras in side.packages.items():
        suffix = f"[{','.join(extras)}]" if extras else ""
        installs += ["-e", f"{ROOT / package}{suffix}"]
    return peers.Peer(
        name=f"floors-{side.name}",
        label=f"the {side.name}'s dependency floors",
        dist="agentmesh-core",
        requirements=("--resolution", "lowest-direct", *installs, *side.pins),
        key_files=tuple(ROOT / package / "pyproject.toml" for package in side.packages),
        common=(),
    )


def _off_floor(python: Path, floors: dict[str, str]) -> dict[str, str]:
    """Dependencies above their floor that no other installed package lifts there."""
    shown = subprocess.run(
        [str(python), "-c", INSTALLED, *floors],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    installed: dict[str, tuple[str, list[tuple[str, str]]]] = json.loads(shown.stdout)
    off: dict[str, str] = {}
    for name, (got, lifts) in installed.items():
        lifted = max((Version(low) for _, low in lifts), default=Version("0"))
        if Version(got) != Version(floors[name]) and Version(got) > lifted:
            off[name] = f"{got} (floor {floors[name]}; lifted to {lifted} by {lifts})"
    return off


@pytest.mark.parametrize("side", [COLLECTOR, APP], ids=lambda side: side.name)
def test_the_tests_pass_on_the_dependency_floors(side: _Side) -> None:
    try:
        python = venvs.ensure(_venv(side), venvs.default_cache_dir()).python
    except RuntimeError as exc:
        pytest.fail(f"cannot make the dependency-floor venv (uv and PyPI are needed): {exc}")
    floors = _floors(side)
    if side is COLLECTOR:
        assert Version(floors["opentelemetry-proto"]) == Version(OTEL_PROTO_FLOOR)
    assert _off_floor(python, floors) == {}  # the floors (or what others require) are what runs
    run_suite(python, side.suite, least=side.least, timeout_s=1200)
