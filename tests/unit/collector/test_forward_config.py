"""Which forwarders the settings enable, with which URLs and headers; retry delays."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from agentmesh.collector.forward import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    parse_retry_after,
    targets_from_settings,
)
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError


def test_nothing_is_forwarded_by_default() -> None:
    assert targets_from_settings(CollectorSettings.load()) == []


def test_langsmith_and_braintrust_shapes() -> None:
    settings = CollectorSettings.load(
        forward_langsmith_api_key="ls-secret",
        forward_langsmith_endpoint="https://eu.api.smith.langchain.com/",
        forward_langsmith_project="agents",
        forward_braintrust_api_key="bt-secret",
        forward_braintrust_parent="project_name:agents",
    )
    langsmith, braintrust = targets_from_settings(settings)
    assert langsmith.url == "https://eu.api.smith.langchain.com/otel/v1/traces"
    assert langsmith.header_values() == {"x-api-key": "ls-secret", "Langsmith-Project": "agents"}
    assert braintrust.url == "https://api.braintrust.dev/otel/v1/traces"
    assert braintrust.header_values() == {
        "Authorization": "Bearer bt-secret",
        "x-bt-parent": "project_name:agents",
    }
    assert "secret" not in repr(langsmith) + repr(braintrust)


def test_optional_headers_are_left_out() -> None:
    settings = CollectorSettings.load(forward_langsmith_api_key="k", forward_braintrust_api_key="b")
    assert [sorted(t.headers) for t in targets_from_settings(settings)] == [
        ["x-api-key"],
        ["Authorization"],
    ]


def test_otlp_endpoints_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AGENTMESH_COLLECTOR_FORWARD_OTLP_ENDPOINTS", "http://a:4318/v1/traces, https://b/v1/traces"
    )
    monkeypatch.setenv("AGENTMESH_COLLECTOR_FORWARD_OTLP_HEADERS", '{"x-token": "t0p"}')
    targets = targets_from_settings(CollectorSettings.load())
    assert [(t.name, t.url) for t in targets] == [
        ("otlp-1", "http://a:4318/v1/traces"),
        ("otlp-2", "https://b/v1/traces"),
    ]
    assert targets[1].header_values() == {"x-token": "t0p"}
    assert isinstance(targets[0].headers["x-token"], SecretStr)


def test_an_endpoint_without_a_path_gets_the_traces_path_and_headers_their_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = CollectorSettings.load(
        forward_otlp_endpoints=["http://a:4318", "http://b:4318/", "https://c/api/spans"]
    )
    assert [t.url for t in targets_from_settings(settings)] == [
        "http://a:4318/v1/traces",  # a receiver's root answers 404 to every export
        "http://b:4318/v1/traces",
        "https://c/api/spans",  # a path given is kept
    ]
    monkeypatch.setenv("AGENTMESH_COLLECTOR_FORWARD_OTLP_HEADERS", "x-api-key=abc")
    with pytest.raises(
        ConfigError, match=r'FORWARD_OTLP_HEADERS: expected a JSON object, like \{"'
    ):
        CollectorSettings.load()


@pytest.mark.parametrize("url", ["ftp://a/v1/traces", "a:4318", "http://a b"])
def test_bad_otlp_endpoint_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="forward_otlp_endpoints"):
        CollectorSettings.load(forward_otlp_endpoints=[url])


def test_bad_langsmith_endpoint_is_refused() -> None:
    with pytest.raises(ConfigError, match="forward_langsmith_endpoint"):
        CollectorSettings.load(forward_langsmith_endpoint="api.smith.langchain.com")


def test_retry_after_wins_over_backoff() -> None:
    policy = RetryPolicy(max_seconds=30.0, initial_seconds=0.5)
    assert policy.delay(attempt=5, retry_after=3.0) == 3.0
    assert policy.delay(attempt=1, retry_after=0.0) == 0.0


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_seconds=30.0, initial_seconds=0.5, max_backoff_seconds=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jittered over the whole range, not fixed


def test_retry_after_header_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=now) == 10.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("later") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-3") is None


def test_retryable_statuses_match_the_otel_collector() -> None:
    assert frozenset({429, 502, 503, 504}) == RETRYABLE_STATUSES
