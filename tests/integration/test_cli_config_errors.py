"""A wrong configuration is refused alike by `agentmesh check` and `agentmesh collector`.

Both say `invalid configuration: VARIABLE…` and exit 2, before anything is started: a Redis URL
redis-py cannot use (or would read as another database), a DSN asyncpg cannot use (not a lost
connection, not retried), a logging level, pool sizes that do not fit, webhook headers for no
webhook. `check` runs in this process (`main`), the collector as a user runs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agentmesh.collector.cli import main

AGENTMESH = str(Path(sys.executable).parent / "agentmesh")

_REDIS = "AGENTMESH_COLLECTOR_REDIS_URL"
_DSN = "AGENTMESH_COLLECTOR_POSTGRES_DSN"
_POSTGRES = {"AGENTMESH_COLLECTOR_STORE": "postgres"}
_HOOK_HEADERS = '{"https://hooks.example/x": {"a": "b"}}'

CASES: dict[str, tuple[dict[str, str], list[str]]] = {
    # name: (variables, what the message says)
    "redis url of another scheme": (
        {_REDIS: "http://127.0.0.1:6379/7"},
        [f"invalid configuration: {_REDIS}=", "redis://, rediss:// or unix://", "not http://"],
    ),
    "redis url that is no url": (
        {_REDIS: "notaurl"},
        [f"invalid configuration: {_REDIS}=", "redis://, rediss:// or unix://"],
    ),
    "redis database that is not a number": (
        {_REDIS: "redis://127.0.0.1:6379/abc"},
        [f"invalid configuration: {_REDIS}=", "the database must be a number"],
    ),
    "redis port that is not a number": (
        {_REDIS: "redis://:s3cret@127.0.0.1:port/0"},
        [f"invalid configuration: {_REDIS}=", "Port could not be cast to integer"],
    ),
    "postgres dsn of another scheme": (
        {**_POSTGRES, _DSN: "mysql://x:s3cret@127.0.0.1/qa"},
        [f"invalid configuration: {_DSN}=", "postgresql:// or postgres://", "not mysql://"],
    ),
    "postgres dsn that is no url": (
        {**_POSTGRES, _DSN: "notaurl"},
        [f"invalid configuration: {_DSN}=", "postgresql:// or postgres://"],
    ),
    "log level": (
        {"AGENTMESH_LOG_LEVEL": "verbose"},
        ["invalid configuration: AGENTMESH_LOG_LEVEL='verbose'"],
    ),
    "pool sizes": (
        {**_POSTGRES, "AGENTMESH_COLLECTOR_POSTGRES_POOL_MIN_SIZE": "20"},
        [
            "invalid configuration: AGENTMESH_COLLECTOR_POSTGRES_POOL_MIN_SIZE (20) must not be "
            "above AGENTMESH_COLLECTOR_POSTGRES_POOL_MAX_SIZE (10)"
        ],
    ),
    "webhook headers of no webhook": (
        {"AGENTMESH_COLLECTOR_DETECTION_WEBHOOK_HEADERS": _HOOK_HEADERS},
        [
            "invalid configuration: AGENTMESH_COLLECTOR_DETECTION_WEBHOOK_URLS, "
            "AGENTMESH_COLLECTOR_DETECTION_WEBHOOK_HEADERS: webhook headers are given for URLs "
            "that are not configured"
        ],
    ),
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("case", list(CASES))
def test_check_refuses_it_naming_the_variable(
    case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    variables, said = CASES[case]
    monkeypatch.setenv("AGENTMESH_COLLECTOR_STORE", "memory")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    ports = ["--grpc-port", str(_free_port()), "--http-port", str(_free_port())]
    code = main(["check", *ports])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert out == ""  # refused before any check runs
    for words in said:
        assert words in err
    assert "s3cret" not in err


_COLLECTOR_CASES = [
    "redis url of another scheme",
    "redis database that is not a number",
    "postgres dsn of another scheme",
    "log level",
    "pool sizes",
]


@pytest.mark.parametrize("case", _COLLECTOR_CASES)
def test_the_collector_refuses_it_alike_before_it_starts(case: str, tmp_path: Path) -> None:
    variables, said = CASES[case]
    env = {
        **os.environ,
        "AGENTMESH_COLLECTOR_STORE": "memory",
        "AGENTMESH_COLLECTOR_DECODE_WORKERS": "0",
        "AGENTMESH_COLLECTOR_DUCKDB_PATH": str(tmp_path / "never.duckdb"),
        **variables,
    }
    done = subprocess.run(
        [AGENTMESH, "collector", "--port", "0", "--http-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,  # a collector that accepts it serves until killed
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # never listened
    for words in said:
        assert words in done.stderr
    assert "Traceback" not in done.stderr
    assert "lost the connection" not in done.stderr
