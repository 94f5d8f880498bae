from pathlib import Path

import pytest

from agentmesh.collector import CollectorSettings
from agentmesh.core import ConfigError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AGENTMESH_COLLECTOR_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = CollectorSettings.load()
    assert settings.grpc_host == "127.0.0.1"
    assert settings.grpc_port == 4317
    assert settings.duckdb_path == Path("agentmesh.duckdb")
    assert settings.max_receive_message_bytes == 16 * 1024 * 1024
    assert settings.queue_max_batches == 1024
    assert settings.loop_max_repeats == 3
    assert settings.loop_max_cycle_length == 4


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_GRPC_PORT", "0")
    monkeypatch.setenv("AGENTMESH_COLLECTOR_DUCKDB_PATH", str(tmp_path / "x.duckdb"))
    monkeypatch.setenv("AGENTMESH_COLLECTOR_LOOP_MAX_REPEATS", "5")
    settings = CollectorSettings.load()
    assert settings.grpc_port == 0
    assert settings.duckdb_path == tmp_path / "x.duckdb"
    assert settings.loop_max_repeats == 5


def test_non_integer_port_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_GRPC_PORT", "abc")
    with pytest.raises(ConfigError, match=r"AGENTMESH_COLLECTOR_GRPC_PORT='abc'.*integer"):
        CollectorSettings.load()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENTMESH_COLLECTOR_GRPC_PORT", "70000"),
        ("AGENTMESH_COLLECTOR_GRPC_PORT", "-1"),
        ("AGENTMESH_COLLECTOR_QUEUE_MAX_BATCHES", "0"),
        ("AGENTMESH_COLLECTOR_LOOP_MAX_REPEATS", "0"),
        ("AGENTMESH_COLLECTOR_LOOP_MAX_CYCLE_LENGTH", "1"),
        ("AGENTMESH_COLLECTOR_MAX_RECEIVE_MESSAGE_BYTES", "10"),
        ("AGENTMESH_COLLECTOR_GRPC_HOST", ""),
    ],
)
def test_out_of_bounds_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        CollectorSettings.load()
    assert variable in str(info.value)


def test_the_two_receivers_cannot_share_a_port() -> None:
    with pytest.raises(ConfigError, match=r"are both 4400: the OTLP/gRPC and OTLP/HTTP"):
        CollectorSettings.load(grpc_port=4400, http_port=4400)
    with pytest.raises(ConfigError, match=r"are both 4400"):  # every interface includes it
        CollectorSettings.load(grpc_port=4400, http_port=4400, grpc_host="0.0.0.0")
    # fine: any free port each, different interfaces, or no HTTP receiver at all
    assert CollectorSettings.load(grpc_port=0, http_port=0).http_port == 0
    assert CollectorSettings.load(grpc_port=4400, http_port=4400, grpc_host="127.0.0.2")
    assert CollectorSettings.load(grpc_port=4400, http_port=4400, http_enabled=False)


def test_keyword_override_is_named_when_wrong() -> None:
    with pytest.raises(ConfigError, match=r"loop_max_cycle_length=1"):
        CollectorSettings.load(loop_max_cycle_length=1)


def test_every_field_is_documented_and_bounded() -> None:
    for name, field in CollectorSettings.model_fields.items():
        assert field.description, f"{name} has no description"
        if field.annotation in (int, float):
            bounds = [m for m in field.metadata if hasattr(m, "ge") or hasattr(m, "le")]
            assert len(bounds) >= 2, f"{name} is not bounded on both sides"
