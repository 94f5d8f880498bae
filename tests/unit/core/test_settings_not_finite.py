"""A number setting never takes ``nan`` or an infinity, and says so in those words.

pydantic takes ``nan`` for a float and then fails its range check, so ``nan`` for a setting
bounded above was refused as "should be less than or equal to 3600", which does not say what is
wrong; one unbounded above was taken.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from agentmesh.core import AgentMeshSettings, ConfigError


class _Timing(AgentMeshSettings):
    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_TIMING_", extra="ignore", validate_default=True
    )

    cooldown_s: float = Field(default=30.0, ge=0, le=3600, description="Bounded.")
    weight: float = Field(default=0.0, ge=0, description="Unbounded above.")
    url: str = Field(default="http://x", description="Checked by a validator.")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith("http://"):
            raise ValueError("expected an http:// URL")
        return value


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_a_number_setting_refuses_what_is_not_finite(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AGENTMESH_TIMING_COOLDOWN_S", value)
    with pytest.raises(ConfigError) as info:
        _Timing.load()
    assert str(info.value) == (
        f"invalid configuration: AGENTMESH_TIMING_COOLDOWN_S={value!r}: "
        "Input should be a finite number"
    )


def test_an_unbounded_number_setting_refuses_infinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_TIMING_WEIGHT", "inf")
    with pytest.raises(ConfigError, match="AGENTMESH_TIMING_WEIGHT='inf': Input should"):
        _Timing.load()


def test_a_validators_message_is_given_in_its_own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_TIMING_URL", "ftp://x")
    with pytest.raises(ConfigError) as info:
        _Timing.load()
    assert str(info.value) == (
        "invalid configuration: AGENTMESH_TIMING_URL='ftp://x': expected an http:// URL"
    )
