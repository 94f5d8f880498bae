"""The instrumentation hands a learned policy the prompt text it reads, however it is wrapped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentmesh.instrumentation import routing
from agentmesh.instrumentation.baggage import task_class
from agentmesh.router import (
    DecisionLog,
    PassThroughPolicy,
    PinnedPolicy,
    Pins,
    RouteDecision,
    RouteRequest,
    RouteTable,
    Tradeoff,
    UtilityPolicy,
    text_chars_of,
)
from agentmesh.router.learned import Example, Outcome, train_predictor
from agentmesh.router.learned.hashing import TextHasher

SUMS = ["add the numbers 2 and 3", "add the numbers 7 and 8", "add numbers 4 and 9"]
POEMS = ["write a poem about rain", "write a poem about the sea", "write a short poem"]


def _utility() -> UtilityPolicy:
    examples = [
        Example(t, "qa", {"small": Outcome(1.0, 0.001), "big": Outcome(1.0, 0.01)}) for t in SUMS
    ] * 5 + [
        Example(t, "qa", {"small": Outcome(0.0, 0.001), "big": Outcome(1.0, 0.01)}) for t in POEMS
    ] * 5
    trained = train_predictor(examples, clusters=2, dim=1024, seed=1)
    table = RouteTable(version=4, predictor=trained.to_dict(), tradeoffs={"*": Tradeoff(60.0)})
    return UtilityPolicy(lambda: table, candidates={"*": ("small", "big")}, exploration=0.0)


class _Recording:
    """A policy that reads ten characters and keeps what it was given."""

    name = "recording"
    text_chars = 10

    def __init__(self) -> None:
        self.texts: list[str] = []

    def decide(self, request: RouteRequest) -> RouteDecision:
        self.texts.append(request.text)
        return PassThroughPolicy().decide(request)


@pytest.fixture
def reset() -> Iterator[None]:
    yield
    routing.reset_routing()


def _ask(text: str) -> str:
    kwargs: dict[str, object] = {"model": "big", "messages": [{"role": "user", "content": text}]}
    return str(routing.before_call("openrouter", kwargs).kwargs["model"])


def test_a_pinned_policy_passes_its_inner_policy_the_prompt(reset: None) -> None:
    utility = _utility()
    pinned = PinnedPolicy(Pins(task_classes={"triage": "small"}), inner=utility)
    assert text_chars_of(utility) == text_chars_of(pinned) == utility.text_chars > 0
    with task_class("qa"):
        routing.configure_routing(mode="enforce", policy=pinned, log=DecisionLog())
        assert _ask("please add the numbers 40 and 2") == "small"
        assert _ask("now write a poem about the moon") == "big"  # read: another cluster


def test_a_policy_gets_one_character_more_than_it_reads(reset: None) -> None:
    policy = _Recording()
    routing.configure_routing(mode="shadow", policy=policy, log=DecisionLog())
    whole = "the beginning of a question that finishes here"
    _ask(whole)
    assert policy.texts == ["nishes here"]
    # With that one character more, a hasher drops the word the cut went through, exactly as
    # it does reading the whole prompt in training; cut at ten, a fragment would be read.
    hasher = TextHasher(dim=1024, tail_chars=10)
    assert hasher.buckets("nishes here") == hasher.buckets(whole) == hasher.buckets("here")
    assert hasher.buckets("ishes here") != hasher.buckets(whole)


def test_a_policy_that_reads_no_text_gets_none(reset: None) -> None:
    policy = _Recording()
    policy.text_chars = 0
    routing.configure_routing(mode="shadow", policy=policy, log=DecisionLog())
    _ask("a question")
    assert policy.texts == [""]
    assert text_chars_of(PassThroughPolicy()) == 0
