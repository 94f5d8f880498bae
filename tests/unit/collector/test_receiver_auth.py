"""Bearer-token and API-key checks shared by both OTLP transports."""

import pytest

from agentmesh.collector import CollectorSettings
from agentmesh.collector.receiver import Authenticator


def test_off_when_nothing_is_configured() -> None:
    auth = Authenticator([], [])
    assert not auth.enabled
    assert auth.check(None, None) is None


def test_bearer_token_accepted_case_insensitive_scheme() -> None:
    auth = Authenticator(["tok-1", "tok-2"], [])
    assert auth.check("Bearer tok-2", None) is None
    assert auth.check("bearer tok-1", None) is None


def test_api_key_accepted() -> None:
    auth = Authenticator([], ["key-1"])
    assert auth.check(None, "key-1") is None


@pytest.mark.parametrize(
    ("authorization", "api_key"),
    [("Bearer nope", None), (None, "nope"), ("Basic dG9rLTE=", "nope"), ("Bearer key-1", None)],
)
def test_wrong_credentials_are_refused_without_echoing_them(
    authorization: str | None, api_key: str | None
) -> None:
    auth = Authenticator(["tok-1"], ["key-1"])
    problem = auth.check(authorization, api_key)
    assert problem is not None
    assert "not accepted" in problem
    assert "nope" not in problem


def test_missing_credentials_say_what_to_send() -> None:
    problem = Authenticator(["tok-1"], []).check(None, None)
    assert problem is not None
    assert "Authorization: Bearer" in problem


def test_settings_read_comma_separated_and_json_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_COLLECTOR_AUTH_BEARER_TOKENS", " a , b ,")
    monkeypatch.setenv("AGENTMESH_COLLECTOR_AUTH_API_KEYS", '["k,1", "k2"]')
    settings = CollectorSettings.load()
    auth = Authenticator.from_settings(settings)
    assert auth.check("Bearer b", None) is None
    assert auth.check(None, "k,1") is None
    assert "a" not in repr(settings.auth_bearer_tokens).replace("SecretStr", "")
