"""Variables under an AgentMesh prefix that set nothing are named, once, with a likely fix."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from structlog.testing import capture_logs

from agentmesh.core import AgentMeshSettings
from agentmesh.core import settings as core_settings
from agentmesh.core.settings_check import unknown_variables

COLLECTOR = {"AGENTMESH_COLLECTOR_GRPC_PORT", "AGENTMESH_COLLECTOR_DUCKDB_PATH"}
INSTRUMENTATION = {"AGENTMESH_ENDPOINT", "AGENTMESH_CAPTURE_CONTENT"}


def _found(prefix: str, declared: set[str], *names: str) -> list[tuple[str, str | None]]:
    return [(u.name, u.suggestion) for u in unknown_variables(prefix, declared, names)]


def test_under_a_component_prefix_every_undeclared_variable_is_reported() -> None:
    assert _found(
        "AGENTMESH_COLLECTOR_",
        COLLECTOR,
        "AGENTMESH_COLLECTOR_GRPC_PORT",
        "AGENTMESH_COLLECTOR_GRPC_PROT",
        "AGENTMESH_COLLECTOR_SOMETHING_ELSE",
        "PATH",
    ) == [
        ("AGENTMESH_COLLECTOR_GRPC_PROT", "AGENTMESH_COLLECTOR_GRPC_PORT"),
        ("AGENTMESH_COLLECTOR_SOMETHING_ELSE", None),
    ]


def test_names_are_matched_without_regard_to_case() -> None:
    assert _found("agentmesh_collector_", COLLECTOR, "agentmesh_collector_grpc_port") == []
    assert _found("AGENTMESH_COLLECTOR_", COLLECTOR, "agentmesh_collector_duckdb_pth") == [
        ("agentmesh_collector_duckdb_pth", "AGENTMESH_COLLECTOR_DUCKDB_PATH")
    ]


def test_a_component_setting_without_its_part_is_reported() -> None:
    assert _found(
        "AGENTMESH_COLLECTOR_", COLLECTOR, "AGENTMESH_GRPC_PORT", "AGENTMESH_ENDPOINT"
    ) == [("AGENTMESH_GRPC_PORT", "AGENTMESH_COLLECTOR_GRPC_PORT")]


def test_under_the_bare_prefix_only_likely_typos_are_reported() -> None:
    # the other components' variables and the ones read outside settings share the prefix
    assert _found(
        "AGENTMESH_",
        INSTRUMENTATION,
        "AGENTMESH_ENDPOINT",
        "AGENTMESH_ENDPONT",
        "AGENTMESH_COLLECTOR_ENDPONT",
        "AGENTMESH_LOG_LEVEL",
        "AGENTMESH_ROUTER_CATALOG_PATH",
        "AGENTMESH_API_TOKEN",
        "AGENTMESH_RESUME",
        "AGENTMESH_TEST_POSTGRES_DSN",
    ) == [("AGENTMESH_ENDPONT", "AGENTMESH_ENDPOINT")]


class _Demo(AgentMeshSettings):
    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_CHECKDEMO_", extra="ignore", validate_default=True
    )

    grpc_port: int = Field(default=4317, description="A port.")


def test_load_logs_each_unknown_variable_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_settings, "_WARNED", set())
    monkeypatch.setenv("AGENTMESH_CHECKDEMO_GRPC_PROT", "5000")
    with capture_logs() as logs:
        assert _Demo.load().grpc_port == 4317  # ignored, as pydantic-settings does
        _Demo.load()
    (entry,) = [e for e in logs if e["event"] == "unknown_setting"]
    assert entry["log_level"] == "warning"
    assert entry["variable"] == "AGENTMESH_CHECKDEMO_GRPC_PROT"
    assert entry["did_you_mean"] == "AGENTMESH_CHECKDEMO_GRPC_PORT"
    assert entry["detail"] == (
        "AGENTMESH_CHECKDEMO_GRPC_PROT is not an AgentMesh setting and is ignored; "
        "did you mean AGENTMESH_CHECKDEMO_GRPC_PORT?"
    )


def test_declared_variables_are_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_settings, "_WARNED", set())
    monkeypatch.setenv("AGENTMESH_CHECKDEMO_GRPC_PORT", "5000")
    with capture_logs() as logs:
        assert _Demo.load().grpc_port == 5000
    assert [e for e in logs if e["event"] == "unknown_setting"] == []
