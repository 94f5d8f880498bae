import json
from pathlib import Path

import pytest

from agentmesh.core import ConfigError
from agentmesh.router import ModelCatalog, ModelInfo, default_catalog
from agentmesh.router.catalog import RouterSettings


def test_bundled_catalog_covers_the_three_providers() -> None:
    providers = {m.provider for m in default_catalog()}
    assert {"openai", "anthropic", "openrouter"} <= providers


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "openai/gpt-4o-mini",
        "openai/gpt-4o-mini-2024-07-18",
    ],
)
def test_forgiving_lookup(name: str) -> None:
    info = default_catalog().get(name)
    assert info is not None
    assert info.name == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("anthropic/claude-3.5-haiku", "claude-3-5-haiku"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("anthropic/claude-haiku-4.5", "claude-haiku-4-5"),
        ("anthropic/claude-opus-4.1", "claude-opus-4-1"),
        ("anthropic/claude-sonnet-4", "claude-sonnet-4"),
        ("anthropic/claude-3.5-sonnet-20240620", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("gpt-4.1", "gpt-4.1"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
        ("deepseek/deepseek-chat-v3.1", "deepseek/deepseek-chat-v3.1"),
        ("google/gemini-2.5-flash", "google/gemini-2.5-flash"),
    ],
)
def test_openrouter_dotted_versions_find_the_vendors_dashed_ids(name: str, found: str) -> None:
    info = default_catalog().get(name)
    assert info is not None
    assert info.name == found


def _catalog(*names: tuple[str, str]) -> ModelCatalog:
    return ModelCatalog(
        [ModelInfo(name, provider, 1.0, 1.0, None, 1000, frozenset()) for name, provider in names]
    )


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4.1",  # no vendor: not an OpenRouter name
        "claude-sonnet-4.5",
        "anthropic/gpt-4.1",  # gpt-4-1 is not Anthropic's
        "anthropic/claude-sonnet-4.5.1",  # claude-sonnet-4-5-1 neither
        "anthropic/claude-sonnet-45",
        "anthropic/claude-sonnet-4.5x",
    ],
)
def test_dotted_versions_never_find_another_model(name: str) -> None:
    catalog = _catalog(
        ("gpt-4-1", "openai"), ("claude-sonnet-4-5", "anthropic"), ("claude-sonnet-4-5-1", "openai")
    )
    assert catalog.get(name) is None


def test_a_dotted_name_the_catalog_lists_is_found_as_is() -> None:
    catalog = _catalog(
        ("gpt-4.1", "openai"),
        ("gpt-4-1", "openai"),
        ("anthropic/claude-sonnet-4.5", "openrouter"),
        ("claude-sonnet-4-5", "anthropic"),
    )
    for name in ("gpt-4.1", "openai/gpt-4.1"):
        info = catalog.get(name)
        assert info is not None
        assert info.name == "gpt-4.1"
    info = catalog.get("anthropic/claude-sonnet-4.5")
    assert info is not None
    assert info.provider == "openrouter"
    assert default_catalog().get("openai/gpt-4.5") is None  # neither gpt-4-5 nor gpt-4.1


@pytest.mark.parametrize(
    ("name", "prices"),
    [
        ("claude-3-5-sonnet", (3.0, 15.0, 0.3, 3.75)),
        ("claude-3-5-haiku", (0.8, 4.0, 0.08, 1.0)),
    ],
)
def test_bundled_claude_3_5_prices(name: str, prices: tuple[float, ...]) -> None:
    info = default_catalog().get(name)
    assert info is not None
    assert info.provider == "anthropic"
    assert info.context_window == 200_000
    assert "tools" in info.capabilities
    assert (
        info.input_per_mtok,
        info.output_per_mtok,
        info.cached_input_per_mtok,
        info.cache_write_per_mtok,
    ) == pytest.approx(prices)


def test_cost_uses_cached_price() -> None:
    cost = default_catalog().cost_usd("gpt-4o-mini", 1_000_000, 1_000_000, cached_input_tokens=0)
    cached = default_catalog().cost_usd("gpt-4o-mini", 1_000_000, 1_000_000, 1_000_000)
    assert cost == pytest.approx(0.15 + 0.6)
    assert cached == pytest.approx(0.075 + 0.6)


def test_unknown_model_has_no_price() -> None:
    assert default_catalog().cost_usd("no-such-model", 10, 10) is None


def test_override_file_adds_and_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "models.json"
    path.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "gpt-4o-mini",
                        "provider": "openai",
                        "input": 1,
                        "output": 1,
                        "cached_input": None,
                        "context_window": 10,
                        "capabilities": [],
                    },
                    {
                        "name": "house-model",
                        "provider": "openai",
                        "input": 2,
                        "output": 3,
                        "context_window": 10,
                    },
                ]
            }
        )
    )
    monkeypatch.setenv("AGENTMESH_ROUTER_CATALOG_PATH", str(path))
    default_catalog.cache_clear()
    try:
        catalog = default_catalog()
        assert catalog.cost_usd("gpt-4o-mini", 1_000_000, 0) == pytest.approx(1.0)
        assert catalog.cost_usd("house-model", 0, 1_000_000) == pytest.approx(3.0)
        assert catalog.get("claude-sonnet-4-5") is not None
    finally:
        default_catalog.cache_clear()


def test_missing_override_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTMESH_ROUTER_CATALOG_PATH", str(tmp_path / "nope.json"))
    default_catalog.cache_clear()
    try:
        with pytest.raises(ConfigError, match="AGENTMESH_ROUTER_CATALOG_PATH"):
            default_catalog()
    finally:
        default_catalog.cache_clear()


def test_invalid_document_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid"):
        ModelCatalog.from_json('{"models": [{"name": "x"}]}', source="t")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", 'expected {"models": [...]}'),
        ("{nope", "not JSON"),
        (
            '{"models": [{"name": "m", "provider": "openai", "input": 1, "output": -3, '
            '"context_window": 10}]}',
            "model 'm': output: Input should be greater than or equal to 0",
        ),
        (
            '{"models": [{"name": "m", "provider": "openai", "input": "cheap", "output": 1}]}',
            "model 'm': input: Input should be a valid number, unable to parse string as a "
            "number; context_window: Field required",
        ),
        (
            '{"models": [{"provider": "openai", "input": 1, "output": 1, "context_window": 9}]}',
            "model #1: name: Field required",
        ),
        (
            '{"models": [{"name": "m", "provider": "openai", "input": 1, "ouput": 1, '
            '"context_window": 9}]}',
            "model 'm': output: Field required; ouput: Extra inputs are not permitted",
        ),
    ],
)
def test_catalog_mistakes_are_named_with_their_model_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        ModelCatalog.from_json(text, source="house.json")
    assert f"model catalog house.json is invalid: {message}" in str(refused.value)
    assert RouterSettings.env_var("catalog_path") == "AGENTMESH_ROUTER_CATALOG_PATH"
