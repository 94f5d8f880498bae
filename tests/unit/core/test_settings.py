from typing import ClassVar

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from agentmesh.core import AgentMeshSettings, ConfigError, LoggingSettings


class _Demo(AgentMeshSettings):
    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_DEMO_", extra="ignore", validate_default=True
    )

    port: int = Field(default=4317, ge=1, le=65535, description="A port.")
    name: str = Field(default="x", description="A name.")


def test_reads_the_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_DEMO_PORT", "9000")
    assert _Demo.load().port == 9000


def test_wrong_value_names_the_variable_and_what_it_wants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_DEMO_PORT", "abc")
    with pytest.raises(ConfigError) as info:
        _Demo.load()
    message = str(info.value)
    assert "AGENTMESH_DEMO_PORT='abc'" in message
    assert "integer" in message


def test_out_of_range_value_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_DEMO_PORT", "70000")
    with pytest.raises(ConfigError, match=r"AGENTMESH_DEMO_PORT='70000': .*less than or equal"):
        _Demo.load()


def test_keyword_overrides_win_and_are_named_when_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_DEMO_PORT", "9000")
    assert _Demo.load(port=9100).port == 9100
    with pytest.raises(ConfigError, match=r"^invalid configuration: port=0"):
        _Demo.load(port=0)


def test_env_var_name() -> None:
    assert _Demo.env_var("port") == "AGENTMESH_DEMO_PORT"


def test_log_level_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="AGENTMESH_LOG_LEVEL='loud'"):
        LoggingSettings.load()


class _Secretive(AgentMeshSettings):
    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_SECRETIVE_", extra="ignore", validate_default=True
    )

    tokens: list[SecretStr] = Field(default_factory=list, description="Secrets.")


def test_secret_values_never_appear_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_SECRETIVE_TOKENS", '["hunter2", ')
    with pytest.raises(ConfigError) as info:
        _Secretive.load()
    assert "AGENTMESH_SECRETIVE_TOKENS" in str(info.value)
    assert "hunter2" not in str(info.value)
