"""One throwaway venv per contender, made with ``uv`` and reused while its cache key holds.

The key hashes the Python version, the peer's common requirements (:data:`peers.COMMON`) and
its own, and the content of its key files; a venv is used only once its ``.bench-ready``
marker is written, so an install that failed half-way is redone. A venv made for a new key
replaces the contender's venvs of older keys made from the same checkout (the marker records
the key files) or from a checkout that is gone: two clones side by side (a test run in one, CI
in a fresh clone of it) keep their own venvs instead of deleting each other's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _overhead.peers import Peer

MARKER = ".bench-ready"


def default_cache_dir() -> Path:
    """Return ``$AGENTMESH_BENCH_CACHE`` or ``~/.cache/agentmesh-bench``."""
    configured = os.environ.get("AGENTMESH_BENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "agentmesh-bench"


def cache_key(peer: Peer) -> str:
    """Return the short hash naming the peer's venv."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    for item in (*peer.common, *peer.requirements):
        digest.update(item.encode() + b"\0")
    for path in peer.key_files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Venv:
    """A ready venv.

    Attributes:
        peer: Whose venv.
        path: Its directory.
        python: Its interpreter.
        install_s: Seconds spent creating it now (0.0 when reused).
    """

    peer: Peer
    path: Path
    python: Path
    install_s: float


def _uv() -> str:
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is needed to create the peers' venvs (https://docs.astral.sh/uv/)")
    return found


def ensure(peer: Peer, cache_dir: Path) -> Venv:
    """Return the peer's venv, creating it when absent or stale.

    Args:
        peer: The contender.
        cache_dir: Where venvs live.

    Returns:
        The ready venv.

    Raises:
        RuntimeError: When ``uv`` fails (its output is included).
    """
    path = cache_dir / f"{peer.name}-{cache_key(peer)}"
    python = path / "bin" / "python"
    if (path / MARKER).exists() and python.exists():
        return Venv(peer, path, python, 0.0)
    started = time.perf_counter()
    key_files = [str(file) for file in peer.key_files]
    for stale in cache_dir.glob(f"{peer.name}-*"):  # older keys of the same contender
        if stale == path or _replaced(stale / MARKER, key_files):
            shutil.rmtree(stale, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    requirements = (*peer.common, *peer.requirements)
    commands = (
        [_uv(), "venv", "--quiet", "--python", sys.executable, str(path)],
        [_uv(), "pip", "install", "--quiet", "--python", str(python), *requirements],
    )
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    marker = {"requirements": list(requirements), "key_files": key_files}
    (path / MARKER).write_text(json.dumps(marker))
    return Venv(peer, path, python, time.perf_counter() - started)


def _replaced(marker: Path, key_files: list[str]) -> bool:
    """Whether a ready venv of an older key is ours to delete (see the module's docstring)."""
    try:
        made_from: list[str] = json.loads(marker.read_text()).get("key_files", key_files)
    except (OSError, ValueError):
        return False  # not ready (being made by another process) or unreadable: leave it
    return made_from == key_files or not any(Path(file).exists() for file in made_from)
