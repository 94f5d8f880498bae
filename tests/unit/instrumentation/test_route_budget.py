"""A per-call budget in baggage reaches the learned routing policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentmesh.instrumentation import routing
from agentmesh.instrumentation.route_budget import call_budget, current_call_budget
from agentmesh.router import DecisionLog, RouteTable, UtilityPolicy
from agentmesh.router.learned import Predictor, QualityModel


@pytest.fixture
def learned() -> Iterator[None]:
    quality = QualityModel()
    for _ in range(30):
        quality.update(None, 0, "gpt-4o", 0.95, cost_usd=0.004)
        quality.update(None, 0, "gpt-4o-mini", 0.90, cost_usd=0.0003)
    table = RouteTable(version=3, predictor=Predictor(quality).to_dict())
    policy = UtilityPolicy(
        lambda: table, candidates={"*": ("gpt-4o", "gpt-4o-mini")}, exploration=0.0
    )
    routing.configure_routing(mode="enforce", policy=policy, log=DecisionLog())
    yield
    routing.reset_routing()


def test_a_call_budget_sends_the_call_to_a_candidate_within_it(learned: None) -> None:
    kwargs: dict[str, object] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    assert routing.before_call("openai", kwargs).kwargs["model"] == "gpt-4o"  # best quality
    with call_budget(0.001):
        routed = routing.before_call("openai", kwargs)
    assert routed.kwargs["model"] == "gpt-4o-mini"
    assert routed.decision is not None
    assert routed.decision.candidates == ("gpt-4o-mini",)  # gpt-4o is over the budget
    assert routing.before_call("openai", kwargs).kwargs["model"] == "gpt-4o"  # block over


def test_a_budget_that_is_not_a_positive_number_is_no_budget() -> None:
    for bad in ("abc", -1.0, 0.0, float("inf")):
        with call_budget(bad):  # pyright: ignore[reportArgumentType]
            assert current_call_budget() is None
    with call_budget(0.5):
        assert current_call_budget() == 0.5
