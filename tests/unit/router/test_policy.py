"""Fallback chains, the pass-through policy and pinned rules."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from agentmesh.core import ConfigError
from agentmesh.router import (
    FallbackChains,
    ModelCatalog,
    ModelInfo,
    PassThroughPolicy,
    PinnedPolicy,
    Pins,
    RouteDecision,
    RouteRequest,
    RoutingPolicy,
    default_catalog,
    reachable,
)

CHAINS = {"gpt-4o": ["gpt-4o-mini", "claude-sonnet-4-5", "gpt-4.1", "gpt-4o-mini", "gpt-4o"]}


def _catalog(*names: str) -> ModelCatalog:
    return ModelCatalog([ModelInfo(n, "openai", 1.0, 1.0, None, 1000, frozenset()) for n in names])


def test_chains_drop_duplicates_and_the_model_itself() -> None:
    chains = FallbackChains(CHAINS)
    assert chains.chain("gpt-4o") == ("gpt-4o-mini", "claude-sonnet-4-5", "gpt-4.1")
    assert chains.chain("o3") == ()


def test_candidates_skip_models_the_sdk_cannot_reach() -> None:
    chains = FallbackChains(CHAINS)
    assert chains.candidates("openai", "gpt-4o") == ("gpt-4o", "gpt-4o-mini", "gpt-4.1")
    assert chains.candidates("openrouter", "gpt-4o") == (
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "gpt-4.1",
    )
    catalog = default_catalog()
    assert reachable("anthropic", "claude-sonnet-4-5", catalog)
    assert not reachable("anthropic", "gpt-4o", catalog)
    assert reachable("openai", "a-model-nobody-knows", catalog)


def test_unknown_models_are_allowed_and_logged_once() -> None:
    with capture_logs() as logs:
        chains = FallbackChains({"m-known": ["m-new-1", "m-new-1b"]}, catalog=_catalog("m-known"))
        FallbackChains({"m-known": ["m-new-1"]}, catalog=_catalog("m-known"))
    warned = [e["model"] for e in logs if e["event"] == "agentmesh.router.unknown_model"]
    assert warned == ["m-new-1", "m-new-1b"]
    assert chains.candidates("openai", "m-known") == ("m-known", "m-new-1", "m-new-1b")


@pytest.mark.parametrize(
    "bad",
    [{"gpt-4o": "gpt-4o-mini"}, {"gpt-4o": ["gpt-4o-mini", 3]}, {"": ["gpt-4o-mini"]}],
)
def test_invalid_chains_are_config_errors(bad: dict[str, list[str]]) -> None:
    with pytest.raises(ConfigError, match="fallback chain"):
        FallbackChains(bad)


def test_pass_through_chooses_the_requested_model_with_its_chain() -> None:
    policy = PassThroughPolicy(FallbackChains(CHAINS))
    assert isinstance(policy, RoutingPolicy)
    decision = policy.decide(RouteRequest("openai", "gpt-4o", task_class="research"))
    assert decision.chosen == "gpt-4o"
    assert decision.candidates == ("gpt-4o", "gpt-4o-mini", "gpt-4.1")
    assert decision.scores == (1.0, 0.0, 0.0)
    assert (decision.policy, decision.mode, decision.task_class) == (
        "pass_through",
        "shadow",
        "research",
    )
    alone = policy.decide(RouteRequest("openai", "o3", mode="enforce"))
    assert (alone.chosen, alone.candidates, alone.mode) == ("o3", ("o3",), "enforce")


def test_each_decision_has_its_own_id() -> None:
    policy = PassThroughPolicy()
    request = RouteRequest("openai", "gpt-4o")
    assert policy.decide(request).decision_id != policy.decide(request).decision_id


def test_pins_win_task_class_first() -> None:
    pins = Pins(task_classes={"triage": "gpt-4o-mini"}, models={"gpt-4o": "gpt-4.1"})
    policy = PinnedPolicy(pins, FallbackChains({"gpt-4o-mini": ["gpt-4.1-nano"]}))
    by_task = policy.decide(RouteRequest("openai", "gpt-4o", task_class="triage"))
    assert by_task.chosen == "gpt-4o-mini"
    assert by_task.candidates == ("gpt-4o-mini", "gpt-4.1-nano", "gpt-4o")
    assert by_task.reason == "pinned: task class triage → gpt-4o-mini"
    assert by_task.policy == "pinned"
    by_model = policy.decide(RouteRequest("openai", "gpt-4o", task_class="research"))
    assert (by_model.chosen, by_model.reason) == ("gpt-4.1", "pinned: model gpt-4o → gpt-4.1")
    assert by_model.candidates == ("gpt-4.1", "gpt-4o")
    unpinned = policy.decide(RouteRequest("openai", "o3"))
    assert (unpinned.chosen, unpinned.policy) == ("o3", "pass_through")


def test_a_pin_the_sdk_cannot_reach_is_ignored() -> None:
    policy = PinnedPolicy(Pins(task_classes={"triage": "claude-haiku-4-5"}))
    openai_call = policy.decide(RouteRequest("openai", "gpt-4o", task_class="triage"))
    assert (openai_call.chosen, openai_call.policy) == ("gpt-4o", "pass_through")
    anthropic_call = policy.decide(
        RouteRequest("anthropic", "claude-sonnet-4-5", task_class="triage")
    )
    assert anthropic_call.chosen == "claude-haiku-4-5"


def test_pinned_policy_defers_to_any_inner_policy() -> None:
    class Cheapest:
        name = "cheapest"

        def decide(self, request: RouteRequest) -> RouteDecision:
            return RouteDecision.new(
                request, self.name, ("gpt-4.1-nano",), (0.9,), "gpt-4.1-nano", "cheap"
            )

    policy = PinnedPolicy(Pins(models={"gpt-4o": "gpt-4o-mini"}), inner=Cheapest())
    assert policy.decide(RouteRequest("openai", "o3")).chosen == "gpt-4.1-nano"
    assert policy.decide(RouteRequest("openai", "gpt-4o")).chosen == "gpt-4o-mini"


def test_pins_from_config() -> None:
    pins = Pins.from_config({"task_class": {"triage": "gpt-4o-mini"}, "model": {"o3": "o4-mini"}})
    assert pins == Pins(task_classes={"triage": "gpt-4o-mini"}, models={"o3": "o4-mini"})
    assert pins
    assert not Pins.from_config({})
    with pytest.raises(ConfigError, match="unknown section"):
        Pins.from_config({"tasks": {"a": "b"}})
    with pytest.raises(ConfigError, match="routing pin"):
        Pins.from_config({"model": {"o3": ""}})
