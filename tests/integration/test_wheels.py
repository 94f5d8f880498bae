"""The five distributions as a user gets them: built wheels in a clean venv, not the workspace.

The rest of the suite runs on editable installs, which read every file from the source tree
and resolve the packages to each other through the workspace. Neither holds for a team that
installs the wheels:

- a file left out of a wheel (the web dashboard's assets, a migration, the model catalog, a
  ``py.typed``) only fails there;
- a dependency on a sibling distribution is resolved against the package index too. PyPI has
  an unrelated project named ``agentmesh-core`` (0.9.0) whose regular ``agentmesh`` package
  replaces our namespace: with an unpinned ``agentmesh-core`` requirement, installing our
  wheels beside the index took it, and ``import agentmesh.collector`` failed. Every sibling
  requirement is therefore pinned to the sibling's exact version.

The test builds every wheel from its source distribution (``uv build --all-packages``, as a
release would), compares each wheel's files with the files git tracks under its ``src/``,
checks the sibling pins, installs the wheels in a new venv (third-party packages at the
versions of ``uv.lock``; the index is reachable only for them), and runs ``agentmesh demo``
and a checkpoint round trip there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "router", "checkpoint", "instrumentation", "collector")
INSTALL = (
    "agentmesh-collector[demo]",
    "agentmesh-instrumentation[openai,anthropic,langgraph,checkpoints]",
    "agentmesh-checkpoint[duckdb,redis,postgres,langgraph]",
)
"""What the venv gets: every distribution, with the extras a team running the demo and the
savers would ask for."""


@dataclass(frozen=True)
class Wheel:
    """One built wheel and the package it came from."""

    package: str
    name: str
    version: str
    path: Path

    def files(self) -> set[str]:
        """The wheel's files, its ``.dist-info`` left out."""
        with zipfile.ZipFile(self.path) as archive:
            return {
                name
                for name in archive.namelist()
                if not name.split("/", 1)[0].endswith(".dist-info")
            }

    def requirements(self) -> list[Requirement]:
        """The wheel's ``Requires-Dist`` lines."""
        with zipfile.ZipFile(self.path) as archive:
            (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            text = archive.read(metadata).decode()
        return [Requirement(line) for line in Parser().parsestr(text).get_all("Requires-Dist", [])]


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: install it with `pip install uv`")
    return uv


def _run(args: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _project(package: str) -> dict[str, str]:
    return tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wheel]:
    out = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--all-packages", "--out-dir", str(out)], cwd=ROOT, timeout=300)
    found: dict[str, Wheel] = {}
    for package in PACKAGES:
        project = _project(package)
        name, version = project["name"], project["version"]
        (path,) = out.glob(f"{name.replace('-', '_')}-{version}-*.whl")
        found[package] = Wheel(package, name, version, path)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_wheel_holds_every_file_of_its_package(wheels: dict[str, Wheel], package: str) -> None:
    tracked = _run(["git", "ls-files", f"{package}/src"], cwd=ROOT, timeout=30).split()
    expected = {
        str(Path(path).relative_to(f"{package}/src"))
        for path in tracked
        if "__pycache__" not in path
    }
    files = wheels[package].files()
    assert expected - files == set(), f"left out of the {package} wheel"
    assert files - expected == set(), f"in the {package} wheel, not tracked by git"
    assert f"agentmesh/{package}/py.typed" in files, "type checkers would ignore our hints"
    assert "agentmesh/__init__.py" not in files, "agentmesh is a namespace shared by five"


@pytest.mark.parametrize("package", PACKAGES)
def test_sibling_distributions_are_pinned_to_their_version(
    wheels: dict[str, Wheel], package: str
) -> None:
    versions = {wheel.name: wheel.version for wheel in wheels.values()}
    siblings = [r for r in wheels[package].requirements() if r.name.startswith("agentmesh")]
    for requirement in siblings:
        assert requirement.name in versions, f"{requirement} names no distribution of ours"
        assert str(requirement.specifier) == f"=={versions[requirement.name]}", (
            f"{package} requires {requirement}: anything but the exact version lets a resolver "
            "take a foreign project of that name from the index"
        )
    assert package == "core" or siblings, f"{package} requires none of its siblings?"


@pytest.fixture(scope="module")
def venv(wheels: dict[str, Wheel], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheels-venv")
    locked = root / "constraints.txt"
    export = [_uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-workspace"]
    locked.write_text(_run([*export, "--all-extras"], cwd=ROOT, timeout=120))
    venv = root / "venv"
    _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=root, timeout=120)
    python = venv / "bin" / "python"
    dist = next(iter(wheels.values())).path.parent
    install = [_uv(), "pip", "install", "--quiet", "--python", str(python)]
    _run(
        [*install, "--find-links", str(dist), "--constraint", str(locked), *INSTALL],
        cwd=root,
        timeout=600,
    )
    return venv


@pytest.fixture
def clean_env(venv: Path) -> dict[str, str]:
    # Nothing of the workspace's venv or of this test run leaks into the installed one: its
    # `bin` comes first on PATH, as in an activated venv.
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CI"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["AGENTMESH_SHUTDOWN_TIMEOUT_S"] = "10"
    return env


def test_the_installed_wheels_are_the_ones_built(
    venv: Path, wheels: dict[str, Wheel], clean_env: dict[str, str], tmp_path: Path
) -> None:
    script = (
        "import importlib, importlib.metadata as m\n"
        "for package in ('core', 'router', 'checkpoint', 'instrumentation', 'collector'):\n"
        "    module = importlib.import_module(f'agentmesh.{package}')\n"
        "    dist = m.distribution(f'agentmesh-{package}')\n"
        "    print(package, dist.version, module.__file__)\n"
    )
    out = _run(
        [str(venv / "bin" / "python"), "-c", script], cwd=tmp_path, timeout=120, env=clean_env
    )
    seen = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    for package, wheel in wheels.items():
        version, location = seen[package]
        assert version == wheel.version
        assert Path(location).is_relative_to(venv), f"{package} imported from {location}"


def test_the_demo_runs_from_the_installed_wheels(
    venv: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    out = _run([str(venv / "bin" / "agentmesh"), "demo"], cwd=tmp_path, timeout=300, env=clean_env)
    assert "DETECTION ping_pong" in out, out[-3000:]
    assert "runs 2; detections 1" in out, out[-3000:]


def test_a_checkpoint_round_trip_runs_from_the_installed_wheels(
    venv: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    script = """
from typing import TypedDict
from langgraph.graph import END, START, StateGraph
from agentmesh.checkpoint.langgraph import DuckDBSaver

class State(TypedDict):
    steps: int

graph = StateGraph(State)
graph.add_node("step", lambda state: {"steps": state["steps"] + 1})
graph.add_edge(START, "step")
graph.add_edge("step", END)
config = {"configurable": {"thread_id": "t"}}
with DuckDBSaver.from_conn_string("checkpoints.duckdb") as saver:
    graph.compile(checkpointer=saver).invoke({"steps": 0}, config)
with DuckDBSaver.from_conn_string("checkpoints.duckdb") as saver:
    print(graph.compile(checkpointer=saver).get_state(config).values["steps"])
"""
    out = _run(
        [str(venv / "bin" / "python"), "-c", script], cwd=tmp_path, timeout=120, env=clean_env
    )
    assert out.split() == ["1"]
