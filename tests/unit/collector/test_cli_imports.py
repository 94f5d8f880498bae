"""What the ``agentmesh`` command and the core package import before they need it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

DRIVERS = (
    "aiohttp",
    "asyncpg",
    "duckdb",
    "grpc",
    "langgraph",
    "numpy",
    "pyarrow",
    "redis",
    "rich",
    "structlog",
)


def _imported_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """Run ``code`` in a fresh interpreter; return which of ``watched`` it imported."""
    script = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_building_the_command_line_imports_no_driver() -> None:
    # every `agentmesh` command (and --help) builds the whole parser first
    loaded = _imported_after(
        """
        from agentmesh.collector.cli.main import build_parser
        build_parser().parse_args(["runs", "--limit", "3"])
        """,
        DRIVERS,
    )
    assert loaded == []


def test_the_handlers_import_what_they_use() -> None:
    # the imports moved into the handlers still resolve: the collector and the readers
    loaded = _imported_after(
        """
        from agentmesh.collector.cli import collector_cmd, query_cmds, resume_cmd, router_cmd
        from agentmesh.collector.service import Collector
        from agentmesh.collector.store.factory import make_store
        from agentmesh.collector.settings import CollectorSettings
        store = make_store(CollectorSettings.load(store="duckdb", duckdb_path="unused.duckdb"))
        assert type(store).__name__ == "DuckDBStore"
        """,
        ("asyncpg", "duckdb", "grpc"),
    )
    # the collector serves gRPC; a DuckDB store loads no asyncpg
    assert loaded == ["duckdb", "grpc"]


def test_core_imports_logging_and_settings_on_first_use() -> None:
    loaded = _imported_after(
        """
        import agentmesh.core
        from agentmesh.core import ConfigError, new_run_id
        assert issubclass(ConfigError, agentmesh.core.AgentMeshError) and new_run_id()
        """,
        ("pydantic_settings", "structlog"),
    )
    assert loaded == []
    loaded = _imported_after(
        """
        from agentmesh.core import get_logger
        log = get_logger("agentmesh.test")
        import sys
        assert "structlog" not in sys.modules  # asking for a logger does not load structlog
        log.warning("first event", n=1)
        """,
        ("structlog",),
    )
    assert loaded == ["structlog"]
