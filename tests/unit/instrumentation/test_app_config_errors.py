"""Wrong app settings: each said once, in words that match the problem; the app never stops.

The distro, the configurator, ``init()``, the control and route-table clients and the router all
read the settings; a wrong value used to be logged once as ``agentmesh.invalid_configuration``
and again by each background reader. A ``nan`` cooldown was "less than or equal to 3600"; an
endpoint with another scheme or no host was taken, and only gRPC's DNS errors followed; a wrong
``AGENTMESH_LOG_LEVEL`` was not said at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs
from structlog.typing import EventDict

from agentmesh.core import ConfigError
from agentmesh.instrumentation import _setup, control, route_table, routing
from agentmesh.instrumentation import settings as settings_module
from agentmesh.instrumentation.settings import (
    InstrumentationSettings,
    endpoint_port_hint,
    endpoint_problem,
)

_OTEL = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_DEAD = "http://127.0.0.1:9"  # nothing listens


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        *_OTEL,
        "AGENTMESH_LOG_LEVEL",
        "AGENTMESH_LOG_FORMAT",
        *(InstrumentationSettings.env_var(f) for f in InstrumentationSettings.model_fields),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(
        settings_module, "_reported", set[str]()
    )  # nothing said yet in this process
    yield
    control.shutdown_control()
    route_table.shutdown_route_table()
    routing.reset_routing()


def _said(logs: list[EventDict]) -> list[EventDict]:
    return [e for e in logs if e["log_level"] in ("warning", "error", "critical")]


def test_a_nan_cooldown_is_refused_as_not_finite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_ROUTING_COOLDOWN_S", "nan")
    with pytest.raises(ConfigError) as info:
        InstrumentationSettings.load()
    assert str(info.value) == (
        "invalid configuration: AGENTMESH_ROUTING_COOLDOWN_S='nan': Input should be a finite number"
    )


def test_an_infinite_weight_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_ROUTING_COST_WEIGHT", "inf")  # no upper bound: it was taken
    with pytest.raises(ConfigError, match=r"AGENTMESH_ROUTING_COST_WEIGHT='inf': .* finite"):
        InstrumentationSettings.load()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://collector:4317",
        "https://otel.example.com",
        "collector:4317",
        "[::1]:4317",
        "unix:///run/collector.sock",
        "http://otel:4317/v1/traces",
    ],
)
def test_an_endpoint_the_exporter_can_use_is_taken(
    monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    monkeypatch.setenv("AGENTMESH_ENDPOINT", endpoint)
    assert InstrumentationSettings.load().endpoint == endpoint


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        ("ftp://x:99", "expected an http:// or https:// URL, like http://host:4317 (not ftp://)"),
        ("grpc://x:4317", "(not grpc://)"),
        ("::::", "expected http://host:4317, https://host or host:4317"),
        ("http://", "no host in the URL"),
        ("http://x:port", "the port must be a number from 1 to 65535"),
        ("collector", "no port (gRPC would use 443)"),
        ("unix:", "needs the socket's path"),
    ],
)
def test_an_endpoint_without_a_usable_scheme_host_or_port_is_refused(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, said: str
) -> None:
    monkeypatch.setenv("AGENTMESH_ENDPOINT", endpoint)
    with pytest.raises(ConfigError) as info:
        InstrumentationSettings.load()
    message = str(info.value)
    assert message.startswith(f"invalid configuration: AGENTMESH_ENDPOINT={endpoint!r}: ")
    assert said in message
    assert endpoint_problem(endpoint) is not None


def test_an_endpoint_read_from_opentelemetrys_variable_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://otel:4317")
    with pytest.raises(ConfigError, match=r"\(read from OTEL_EXPORTER_OTLP_ENDPOINT: AGENTMESH_"):
        InstrumentationSettings.load()


def test_the_control_url_is_checked_and_blank_still_derives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTMESH_CONTROL_URL", "collector:4318")
    with pytest.raises(ConfigError) as info:
        InstrumentationSettings.load()
    assert str(info.value) == (
        "invalid configuration: AGENTMESH_CONTROL_URL='collector:4318': expected an http:// or "
        "https:// URL, like http://host:4318"
    )
    monkeypatch.setenv("AGENTMESH_CONTROL_URL", "")
    assert control.control_target(InstrumentationSettings.load(endpoint="http://c:4317")) == (
        "http://c:4318"
    )


def test_a_wrong_value_is_said_once_by_all_that_read_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTMESH_ENDPOINT", _DEAD)
    monkeypatch.setenv("AGENTMESH_EXPORT_TIMEOUT_S", "abc")
    control.shutdown_control()
    route_table.shutdown_route_table()
    routing.reset_routing()
    with capture_logs() as logs:
        assert _setup.load_settings() is None  # the distro, per instrumentor
        assert _setup.load_settings() is None  # the configurator
        assert _setup.init() is None
        assert control.control_client() is None  # a step's stop check
        assert route_table.current_route_table().version == 0  # the router
        assert routing.routing_config().mode == "off"
    said = _said(logs)
    assert [e["event"] for e in said] == ["agentmesh.invalid_configuration"], said
    assert said[0]["error"] == (
        "invalid configuration: AGENTMESH_EXPORT_TIMEOUT_S='abc': Input should be a valid "
        "number, unable to parse string as a number"
    )
    assert said[0]["action"] == "not instrumenting"


def test_a_background_reader_alone_says_it_once_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # without init(): the first stop check reads the settings
    monkeypatch.setenv("AGENTMESH_ENDPOINT", "ftp://x:99")
    control.shutdown_control()
    with capture_logs() as logs:
        assert control.control_client() is None
        assert route_table.route_table_client() is None
    said = _said(logs)
    assert [e["event"] for e in said] == ["agentmesh.invalid_configuration"], said
    assert "AGENTMESH_ENDPOINT='ftp://x:99'" in str(said[0]["error"])


def test_a_wrong_log_level_is_said_and_the_app_stays_instrumented(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTMESH_ENDPOINT", _DEAD)
    monkeypatch.setenv("AGENTMESH_LOG_LEVEL", "loud")
    with capture_logs() as logs:
        first = _setup.load_settings()
        again = _setup.load_settings()
    assert first is not None
    assert again is not None
    said = _said(logs)
    assert [e["event"] for e in said] == ["agentmesh.invalid_configuration"], said
    assert said[0]["error"] == (
        "invalid configuration: AGENTMESH_LOG_LEVEL='loud': Input should be 'debug', 'info', "
        "'warning', 'error' or 'critical'"
    )
    assert "still instrumenting" in str(said[0]["action"])
    assert "AGENTMESH_LOG_LEVEL=info" in str(said[0]["action"])


def test_an_endpoint_on_the_otlp_http_port_is_named_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_http = InstrumentationSettings.load(endpoint="http://collector:4318")
    with capture_logs() as logs:
        _setup._check_at_start(on_http, own_exporter=True)  # pyright: ignore[reportPrivateUsage]
        _setup._check_at_start(on_http, own_exporter=False)  # pyright: ignore[reportPrivateUsage]
        _setup._check_at_start(  # pyright: ignore[reportPrivateUsage]
            InstrumentationSettings.load(endpoint="http://collector:4317"), own_exporter=True
        )
    hints = [e for e in logs if e["event"] == "agentmesh.exporter.wrong_port"]
    assert len(hints) == 1  # not for the app's own exporter, not for 4317
    assert hints[0]["log_level"] == "warning"
    assert "names port 4318, the OTLP/HTTP port" in str(hints[0]["detail"])
    assert "4317" in str(hints[0]["detail"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")
    hint = endpoint_port_hint(InstrumentationSettings.load().endpoint)
    assert hint is not None
    assert hint.startswith("OTEL_EXPORTER_OTLP_ENDPOINT='http://otel:4318' names port 4318")
    assert endpoint_port_hint("collector:4317") is None
