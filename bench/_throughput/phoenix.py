"""Arize Phoenix as the peer: a throwaway venv, a subprocess, spans counted in its db."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

PHOENIX_VERSION = "20.26.1"
_COUNT_QUERY = "{ projects { edges { node { name recordCount } } } }"


def cache_dir() -> Path:
    """Where the benchmark keeps its venvs and stream files (``$AGENTMESH_BENCH_CACHE``)."""
    root = os.environ.get("AGENTMESH_BENCH_CACHE", str(Path.home() / ".cache" / "agentmesh-bench"))
    return Path(root)


def ensure_venv() -> Path:
    """Create the Phoenix venv unless it exists; return its python.

    Returns:
        The venv's ``python``.
    """
    venv = cache_dir() / f"phoenix-{PHOENIX_VERSION}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if not marker.exists():
        subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(venv)], check=True)
        subprocess.run(
            [
                "uv",
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                f"arize-phoenix=={PHOENIX_VERSION}",
            ],
            check=True,
        )
        marker.write_text(PHOENIX_VERSION)
    return python


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Phoenix:
    """A running Phoenix server (``phoenix serve``) with its own working dir and ports."""

    def __init__(self, python: Path) -> None:
        self.workdir = tempfile.mkdtemp(prefix="agentmesh-bench-phoenix-")
        self.http_port = free_port()
        self.grpc_port = free_port()
        env = os.environ | {
            "PHOENIX_WORKING_DIR": self.workdir,
            "PHOENIX_PORT": str(self.http_port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_HOST": "127.0.0.1",
        }
        env.pop("VIRTUAL_ENV", None)
        self._log = open(Path(self.workdir) / "phoenix.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(python), "-m", "phoenix.server.main", "serve"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Wait until GraphQL answers.

        Raises:
            RuntimeError: Phoenix exited or did not answer in time.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"phoenix exited; see {self._log.name}")
            if self.graphql_ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"phoenix did not start in {timeout_s}s; see {self._log.name}")

    def count(self) -> int | None:
        """Spans stored: rows of ``spans`` in Phoenix's SQLite file (``None`` before it exists).

        Counted in the database rather than through GraphQL ``recordCount``, which Phoenix
        serves from a cache that lags behind inserts.
        """
        db = Path(self.workdir) / "phoenix.db"
        if not db.exists():
            return None
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
                return int(con.execute("SELECT count(*) FROM spans").fetchone()[0])
        except sqlite3.Error:
            return None

    def graphql_ready(self) -> bool:
        """Whether the server answers GraphQL."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/graphql",
            data=json.dumps({"query": _COUNT_QUERY}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def rss_mb(self) -> float:
        """Resident memory of the server process, in MB."""
        from _throughput.server import memory_kb

        return memory_kb("VmRSS", str(self.process.pid)) / 1024

    def stop(self) -> None:
        """Stop the server."""
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
