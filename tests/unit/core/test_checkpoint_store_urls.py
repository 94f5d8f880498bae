"""How spans and resume plans name a checkpoint store: one spelling per store, no password."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.core.urls import checkpoint_store_url


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("memory://", "memory://"),
        ("memory:", "memory://"),
        ("MEMORY://", "memory://"),
        ("duckdb:///var/lib/app/threads.duckdb", "duckdb:///var/lib/app/threads.duckdb"),
        ("duckdb://:memory:", "duckdb://:memory:"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:s3cret@cache:6380/1", "rediss://app:***@cache:6380/1"),
        ("redis://cache:6379/0?password=s3cret", "redis://cache:6379/0?password=***"),
        ("postgres://app:s3cret@db/agentmesh", "postgresql://app:***@db/agentmesh"),
        (
            "postgresql://app@db/agentmesh?sslmode=require&sslpassword=k3y",
            "postgresql://app@db/agentmesh?sslmode=require&sslpassword=***",
        ),
    ],
)
def test_a_store_url_is_recorded_masked_and_in_one_spelling(url: str, named: str) -> None:
    assert checkpoint_store_url(url) == named
    assert "s3cret" not in checkpoint_store_url(url)


def test_a_relative_duckdb_file_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = f"duckdb://{tmp_path / 'threads.duckdb'}"  # duckdb:///tmp/…/threads.duckdb
    assert absolute.startswith("duckdb:///")
    assert checkpoint_store_url("duckdb://threads.duckdb") == absolute
    assert checkpoint_store_url(absolute) == absolute
