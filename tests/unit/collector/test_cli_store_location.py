"""What ``agentmesh collector`` says, once listening, about where it stores."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from agentmesh.collector.cli.collector_cmd import store_location
from agentmesh.collector.settings import CollectorSettings


def test_a_duckdb_store_is_named_by_its_file(tmp_path: Path) -> None:
    settings = CollectorSettings(store="duckdb", duckdb_path=tmp_path / "a.duckdb")
    assert store_location(settings) == f"the DuckDB file {tmp_path / 'a.duckdb'}"


def test_a_postgres_store_is_named_without_its_credentials() -> None:
    settings = CollectorSettings(
        store="postgres",
        postgres_dsn=SecretStr("postgresql://ops:s3cret@db.internal:6543/agentmesh"),
        postgres_schema="mesh",
    )
    assert store_location(settings) == "PostgreSQL at db.internal:6543 (schema mesh)"


def test_a_memory_store_says_it_keeps_nothing() -> None:
    assert store_location(CollectorSettings(store="memory")) == "memory (lost on exit)"
