"""Instrumentation settings: environment, OpenTelemetry fallbacks, clear errors."""

from __future__ import annotations

import pytest

from agentmesh.core import ConfigError
from agentmesh.instrumentation import InstrumentationSettings
from agentmesh.instrumentation.settings import DEFAULT_ENDPOINT

_OTEL = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        *_OTEL,
        *(InstrumentationSettings.env_var(f) for f in InstrumentationSettings.model_fields),
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["/srv/bots/research_bot.py", "--x"])
    settings = InstrumentationSettings.load()

    assert settings.endpoint == DEFAULT_ENDPOINT == "http://127.0.0.1:4317"
    assert settings.service_name == "research_bot"
    assert settings.export_timeout_s == 1.0
    assert settings.shutdown_timeout_s == 1.0
    assert settings.capture_content is False
    assert settings.disabled is False


def test_every_field_is_documented() -> None:
    for name, field in InstrumentationSettings.model_fields.items():
        assert field.description, name


def test_opentelemetry_variables_are_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317")
    assert InstrumentationSettings.load().endpoint == "http://generic:4317"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc")
    settings = InstrumentationSettings.load()
    assert settings.endpoint == "http://traces:4317"
    assert settings.service_name == "svc"


def test_agentmesh_variables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317")
    monkeypatch.setenv("AGENTMESH_ENDPOINT", "http://mesh:4317")
    monkeypatch.setenv("AGENTMESH_SHUTDOWN_TIMEOUT_S", "0.5")
    monkeypatch.setenv("AGENTMESH_DISABLED", "true")
    settings = InstrumentationSettings.load()

    assert settings.endpoint == "http://mesh:4317"
    assert settings.shutdown_timeout_s == 0.5
    assert settings.disabled is True


def test_wrong_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_EXPORT_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError, match="AGENTMESH_EXPORT_TIMEOUT_S='soon'"):
        InstrumentationSettings.load()
