"""The handoff context digest: canonical, stable, and tolerant of non-JSON values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from langchain_core.messages import AIMessage, HumanMessage

from agentmesh.instrumentation.handoff import canonical_json, context_digest


def test_digest_is_sha256_of_canonical_json() -> None:
    state = {"b": [1, 2], "a": {"y": None, "x": "é"}}
    text = canonical_json(state)

    assert text == '{"a":{"x":"é","y":null},"b":[1,2]}'
    digest = context_digest(state)
    assert digest.digest == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert digest.size == len(text.encode()) == len(text) + 1  # "é" is two bytes


def test_equal_states_give_equal_digests_whatever_the_key_order() -> None:
    assert context_digest({"a": 1, "b": 2}) == context_digest({"b": 2, "a": 1})
    assert context_digest({"a": 1}) != context_digest({"a": 2})


def test_langchain_messages_go_through_model_dump() -> None:
    def state() -> dict[str, object]:
        return {"messages": [HumanMessage("hi", id="1"), AIMessage("hello", id="2")]}

    text = canonical_json(state())
    assert '"content":"hi"' in text
    assert '"type":"ai"' in text
    assert context_digest(state()) == context_digest(state())
    other = {"messages": [HumanMessage("hi", id="1"), AIMessage("bye", id="2")]}
    assert context_digest(other) != context_digest(state())


def test_other_values_fall_back_on_str() -> None:
    @dataclass
    class Point:
        x: int

    assert (
        canonical_json({"p": Point(1), "s": {2, 1}})
        == '{"p":"test_other_values_fall_back_on_str.<locals>.Point(x=1)","s":["1","2"]}'
    )
