"""Receiver settings: defaults, environment, and the `agentmesh collector` flags that set them."""

import argparse
import os

import pytest

from agentmesh.collector import CollectorSettings
from agentmesh.collector.cli.collector_cmd import add_collector_command
from agentmesh.core import ConfigError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AGENTMESH_COLLECTOR_"):
            monkeypatch.delenv(name)


def test_receiver_defaults() -> None:
    settings = CollectorSettings.load()
    assert (settings.http_enabled, settings.http_host, settings.http_port) == (
        True,
        "127.0.0.1",
        4318,
    )
    assert settings.retry_after_seconds == 1
    assert settings.max_attributes_per_span == 256
    assert settings.max_events_per_span == 128
    assert settings.max_attribute_value_bytes == 64 * 1024
    assert settings.max_attribute_depth == 8
    assert settings.auth_bearer_tokens == []
    assert settings.auth_api_keys == []


def test_receiver_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_HTTP_ENABLED", "false")
    monkeypatch.setenv("AGENTMESH_COLLECTOR_HTTP_PORT", "0")
    monkeypatch.setenv("AGENTMESH_COLLECTOR_MAX_ATTRIBUTE_DEPTH", "3")
    settings = CollectorSettings.load()
    assert not settings.http_enabled
    assert settings.http_port == 0
    assert settings.max_attribute_depth == 3


def test_out_of_range_limit_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_MAX_ATTRIBUTES_PER_SPAN", "0")
    with pytest.raises(ConfigError, match="AGENTMESH_COLLECTOR_MAX_ATTRIBUTES_PER_SPAN"):
        CollectorSettings.load()


def test_cli_flags_reach_the_settings_fields() -> None:
    parser = argparse.ArgumentParser()
    add_collector_command(parser)
    args = parser.parse_args(
        ["--http-port", "0", "--no-http", "--retry-after", "5", "--max-attribute-depth", "4"]
    )
    assert args.http_port == 0
    assert args.http_enabled is False
    assert args.retry_after_seconds == 5
    assert args.max_attribute_depth == 4
    assert args.max_events_per_span is None
    assert "AUTH_BEARER_TOKENS" in (parser.epilog or "")


def test_every_non_secret_setting_has_a_flag() -> None:
    from agentmesh.collector.cli.settings_flags import secret_fields, settings_overrides

    parser = argparse.ArgumentParser()
    add_collector_command(parser)
    flags = {a.dest for a in parser._actions}
    secrets = set(secret_fields(CollectorSettings))
    assert "postgres_dsn" in secrets
    assert "auth_bearer_tokens" in secrets
    for name in CollectorSettings.model_fields:
        assert (name in flags) != (name in secrets), name
    args = parser.parse_args(
        [
            "--store",
            "memory",
            "--loop-max-repeats",
            "5",
            "--forward-otlp-endpoints",
            '["http://127.0.0.1:9/v1/traces"]',
            "--no-http-enabled",
        ]
    )
    settings = CollectorSettings.load(**settings_overrides(args, CollectorSettings))
    assert settings.store == "memory"
    assert settings.loop_max_repeats == 5
    assert not settings.http_enabled
    assert [str(u) for u in settings.forward_otlp_endpoints] == ["http://127.0.0.1:9/v1/traces"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--postgres-dsn", "postgresql://secret@host/db"])
