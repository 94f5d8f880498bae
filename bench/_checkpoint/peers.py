"""The official LangGraph savers, installed by the benchmark next to (not into) the venv.

``langgraph-checkpoint-postgres`` and ``langgraph-checkpoint-sqlite`` are not project
dependencies. They are installed with ``uv pip install --target`` into a cache directory
(``$AGENTMESH_BENCH_CACHE/checkpoint-peers-<key>``, default ``~/.cache/agentmesh-bench``),
``--no-deps``, together with those of their requirements the workspace venv lacks (psycopg,
psycopg-pool, sqlite-vec); the rest (langgraph-checkpoint 4.3, orjson, aiosqlite) is the venv's.
The directory is appended to ``sys.path``, so our savers and theirs share one process and one
``langgraph.checkpoint`` (a namespace package). A directory is used once its marker is written.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Pinned to versions that declare langgraph-checkpoint>=4.3,<5 (the workspace has 4.3.x).
REQUIREMENTS = (
    "langgraph-checkpoint-postgres==3.2.0",
    "langgraph-checkpoint-sqlite==3.1.2",
    "psycopg==3.3.9",
    "psycopg-binary==3.3.9",
    "psycopg-pool==3.3.3",
    "sqlite-vec==0.1.9",
)
DISTRIBUTIONS = (
    "langgraph-checkpoint",
    "langgraph-checkpoint-postgres",
    "langgraph-checkpoint-sqlite",
    "psycopg",
    "langgraph",
    "agentmesh-checkpoint",
)
MARKER = ".bench-ready"


def default_cache_dir() -> Path:
    """Return ``$AGENTMESH_BENCH_CACHE`` or ``~/.cache/agentmesh-bench``."""
    configured = os.environ.get("AGENTMESH_BENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "agentmesh-bench"


def cache_key(requirements: tuple[str, ...] = REQUIREMENTS) -> str:
    """Return the short hash naming the peers' directory (Python version and requirements)."""
    digest = hashlib.sha256(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    for item in requirements:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class PeerDir:
    """The ready peers' directory.

    Attributes:
        path: The directory appended to ``sys.path``.
        install_s: Seconds spent installing now (0.0 when reused).
    """

    path: Path
    install_s: float


def ensure(cache_dir: Path) -> PeerDir:
    """Install the peers when absent, append their directory to ``sys.path`` and return it.

    Raises:
        RuntimeError: When ``uv`` is missing or fails (its output is included).
    """
    path = cache_dir / f"checkpoint-peers-{cache_key()}"
    started = time.perf_counter()
    installed = False
    if not (path / MARKER).exists():
        uv = shutil.which("uv")
        if uv is None:
            raise RuntimeError("uv is needed to install the official savers (docs.astral.sh/uv)")
        for stale in cache_dir.glob("checkpoint-peers-*"):
            shutil.rmtree(stale, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("UV_PROJECT_ENVIRONMENT",)}
        command = [
            uv, "pip", "install", "--quiet", "--no-deps", "--python", sys.executable,
            "--target", str(path), *REQUIREMENTS,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        (path / MARKER).write_text("\n".join(REQUIREMENTS) + "\n")
        installed = True
    if str(path) not in sys.path:
        sys.path.append(str(path))
    importlib.invalidate_caches()
    return PeerDir(path, time.perf_counter() - started if installed else 0.0)


def versions() -> dict[str, str]:
    """Return the installed versions of the distributions that matter here."""
    found: dict[str, str] = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
