"""Shared fixtures: real Redis and Postgres when reachable.

In CI (``CI=true``) a test that needs a service it cannot reach fails; elsewhere it skips with
a message saying how to start the service.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

_START = {
    "redis": (
        "127.0.0.1",
        6379,
        "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    ),
    "postgres": (
        "127.0.0.1",
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
}


def require_service(name: str) -> tuple[str, int]:
    """Return (host, port) of a local service, or skip (fail in CI) when it is down."""
    host, port, start = _START[name]
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return host, port
    except OSError:
        message = f"{name} is not reachable on {host}:{port}; start it with: {start}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def require_binary(name: str, install: str) -> str:
    """Return the path of an installed program, or skip (fail in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; install it with: {install}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def redis_address() -> tuple[str, int]:
    return require_service("redis")


@pytest.fixture
def postgres_address() -> tuple[str, int]:
    return require_service("postgres")


@pytest.fixture
def chromium_binary() -> str:
    return require_binary(
        "chromium", "apt-get update && apt-get install -y --no-install-recommends chromium"
    )


@pytest.fixture
def prometheus_binary() -> str:
    return require_binary(
        "prometheus", "apt-get update && apt-get install -y --no-install-recommends prometheus"
    )
