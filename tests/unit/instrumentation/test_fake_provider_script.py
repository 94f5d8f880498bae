"""Scripts, state and helpers of the fake provider, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmesh.core.errors import ProviderError
from agentmesh.instrumentation.testing import (
    ErrorScript,
    ModelScript,
    ResponseRule,
    ScriptedReply,
    ToolCallScript,
    estimate_tokens,
    load_scripts,
    parse_scripts,
)
from agentmesh.instrumentation.testing.fake_provider.openrouter import upstream_provider
from agentmesh.instrumentation.testing.fake_provider.state import ProviderState
from agentmesh.instrumentation.testing.fake_provider.streaming import split_fixed, split_words
from agentmesh.instrumentation.testing.fake_provider.tokens import (
    content_text,
    last_message_text,
    prompt_text,
)


def test_reply_precedence_rules_then_sequence_then_content() -> None:
    script = ModelScript(
        content="fixed",
        sequence=("s1", "s2"),
        rules=(ResponseRule(pattern="^hi", content="hello"),),
    )
    assert script.select_reply("m", "hi there", 0).reply.content == "hello"
    assert script.select_reply("m", "hi there", 0).from_sequence is False
    assert script.select_reply("m", "other", 1) == (ScriptedReply(content="s2"), True)
    assert script.select_reply("m", "other", 2).reply.content == "s1"
    assert ModelScript(content="fixed").select_reply("m", "x", 0).reply.content == "fixed"
    assert ModelScript().select_reply("gpt-x", "x", 0).reply.content == "Fake reply from gpt-x."


def test_tool_calls_go_with_plain_replies_but_not_with_scripted_ones() -> None:
    call = ToolCallScript(name="f", arguments='{"a": 1}')
    script = ModelScript(tool_calls=(call,), sequence=("text", ScriptedReply(content="own")))
    assert script.select_reply("m", "", 0).reply == ScriptedReply(
        content="text", tool_calls=(call,)
    )
    assert script.select_reply("m", "", 1).reply == ScriptedReply(content="own")
    tool_only = ModelScript(tool_calls=(call,)).select_reply("m", "", 0).reply
    assert tool_only.content is None
    assert tool_only.tool_calls == (call,)


def test_parse_scripts_accepts_json_shapes() -> None:
    scripts = parse_scripts(
        {
            "*": {"latency": 0.5},
            "m": {
                "rules": [["(?i)ping", "pong"], {"pattern": "x", "content": {"content": "y"}}],
                "sequence": ["a", {"tool_calls": [{"name": "f", "arguments": {"k": [1, 2]}}]}],
                "error": {"status": 503, "retry_after": 2, "fail_times": 2},
            },
        }
    )
    assert scripts["*"].latency == 0.5
    m = scripts["m"]
    assert m.rules[0] == ResponseRule(pattern="(?i)ping", content="pong")
    assert m.rules[1].content == ScriptedReply(content="y")
    entry = m.sequence[1]
    assert isinstance(entry, ScriptedReply)
    assert json.loads(entry.tool_calls[0].arguments) == {"k": [1, 2]}
    assert entry.tool_calls[0].arguments_object() == {"k": [1, 2]}
    assert m.error == ErrorScript(status=503, retry_after=2, fail_times=2)


@pytest.mark.parametrize(
    "bad",
    [
        {"m": {"rules": [["(unclosed", "x"]]}},
        {"m": {"rules": [["only-one"]]}},
        {"m": {"tool_calls": [{"name": "f", "arguments": "[1, 2]"}]}},
        {"m": {"tool_calls": [{"name": "f", "arguments": "{nope"}]}},
        {"m": {"error": {"status": 200}}},
        {"m": {"latency": -0.1}},
        {"m": {"no_such_field": 1}},
        {"m": "not an object"},
    ],
)
def test_parse_scripts_rejects_invalid_scripts(bad: dict[str, object]) -> None:
    with pytest.raises(ProviderError, match="invalid fake provider scripts"):
        parse_scripts(bad)


def test_load_scripts_errors(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="cannot read"):
        load_scripts(tmp_path / "missing.json")
    not_json = tmp_path / "a.json"
    not_json.write_text("{")
    with pytest.raises(ProviderError, match="not valid JSON"):
        load_scripts(not_json)
    a_list = tmp_path / "b.json"
    a_list.write_text("[]")
    with pytest.raises(ProviderError, match="JSON object"):
        load_scripts(a_list)
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"m": {"content": "ok"}}))
    assert load_scripts(good) == {"m": ModelScript(content="ok")}


def test_scripts_are_frozen() -> None:
    script = ModelScript(content="a")
    with pytest.raises(ValueError, match="frozen"):
        script.content = "b"  # type: ignore[misc]


def test_error_script_headers_and_messages() -> None:
    assert ErrorScript(status=429).retry_after_header() == "1"
    assert ErrorScript(status=429, retry_after=0.25).retry_after_header() == "0.25"
    assert ErrorScript(status=503, retry_after=2.0).retry_after_header() == "2"
    assert ErrorScript(status=500).retry_after_header() is None
    assert ErrorScript(status=529).effective_message() == "Fake provider error 529: Overloaded"
    assert "Too Many Requests" in ErrorScript(status=429).effective_message()
    assert ErrorScript(status=500, message="boom").effective_message() == "boom"
    limited = ErrorScript(status=500, fail_times=2)
    assert [limited.applies_to(i) for i in range(3)] == [True, True, False]
    assert ErrorScript(status=500).applies_to(10_000)


def test_state_counts_failures_and_sequence_turns_separately() -> None:
    state = ProviderState(
        {
            "m": ModelScript(
                sequence=("a", "b"),
                rules=(ResponseRule(pattern="rule", content="ruled"),),
                error=ErrorScript(status=429, fail_times=1),
            )
        }
    )
    plans = [
        state.plan("m", prompt="p", last_message=text) for text in ["x", "x", "rule", "x", "x"]
    ]
    assert [p.error is not None for p in plans] == [True, False, False, False, False]
    assert [p.content for p in plans] == [None, "a", "ruled", "b", "a"]
    assert [p.call_index for p in plans] == [0, 1, 2, 3, 4]
    state.set_script("m", ModelScript(sequence=("z", "y")))
    assert state.plan("m", prompt="p", last_message="x").content == "z"


def test_state_default_script_tokens_and_models() -> None:
    state = ProviderState(
        {"*": ModelScript(content="dflt", reasoning_tokens=4), "known": ModelScript()}
    )
    assert state.scripts.keys() == {"known"}
    plan = state.plan("anything", prompt="x" * 41, last_message="x")
    assert plan.content == "dflt"
    assert plan.input_tokens == 11
    assert plan.output_tokens == 1 + 4
    assert plan.finish_reason == "stop"
    fixed = ProviderState({"m": ModelScript(input_tokens=100, output_tokens=7)})
    fixed_plan = fixed.plan("m", prompt="x", last_message="x")
    assert (fixed_plan.input_tokens, fixed_plan.output_tokens) == (100, 7)
    tools = ProviderState({"t": ModelScript(tool_calls=(ToolCallScript(name="f"),))})
    assert tools.plan("t", prompt="x", last_message="x").finish_reason == "tool_calls"
    assert state.known_models() == ["anything", "known"]
    state.set_script("*", None)
    assert state.plan("other", prompt="x", last_message="x").content == "Fake reply from other."
    assert state.next_id() < state.next_id()


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


def test_message_texts_in_both_formats() -> None:
    openai_messages: list[object] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "f", "arguments": '{"a":1}'}}],
        },
    ]
    assert prompt_text(openai_messages) == 'sys\npart\nf\n{"a":1}'
    anthropic_messages: list[object] = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "input": {"k": "v"}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "content": [{"type": "text", "text": "res"}]}],
        },
    ]
    assert (
        prompt_text(anthropic_messages, [{"type": "text", "text": "S"}]) == 'S\nq\n{"k": "v"}\nres'
    )
    assert last_message_text(anthropic_messages) == "res"
    assert last_message_text([]) == ""
    assert content_text(42) == ""


@pytest.mark.parametrize("text", ["", "one", "Fake reply from gpt-4o.", "  lead  and trail  "])
def test_split_words_joins_back(text: str) -> None:
    assert "".join(split_words(text)) == text


def test_split_words_and_fixed() -> None:
    assert split_words("a b  c") == ["a ", "b  ", "c"]
    assert split_fixed("abcdefg", 3) == ["abc", "def", "g"]
    assert split_fixed("", 3) == []


def test_upstream_provider() -> None:
    assert upstream_provider("anthropic/claude-3.5-sonnet") == "Anthropic"
    assert upstream_provider("openai/gpt-4o-mini") == "OpenAI"
    assert upstream_provider("meta-llama/llama-3.1-70b-instruct") == "Meta"
    assert upstream_provider("acme-ai/model") == "Acme Ai"
    assert upstream_provider("gpt-4o") is None
    assert upstream_provider("/x") is None
