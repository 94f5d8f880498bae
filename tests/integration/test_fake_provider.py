"""The fake LLM provider, driven by the real openai and anthropic SDKs over real HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from agentmesh.instrumentation.testing import (
    ErrorScript,
    FakeProvider,
    FakeProviderThread,
    ModelScript,
    ResponseRule,
    ScriptedReply,
    ToolCallScript,
)

HELLO = "Hello from the fake provider, nice to meet you."
PROMPT = [{"role": "user", "content": "Say hello, please!"}]  # 18 chars -> 5 tokens
WEATHER = ToolCallScript(name="get_weather", arguments={"city": "Paris", "unit": "C"})

SCRIPTS: dict[str, ModelScript] = {
    "gpt-4o-mini": ModelScript(content=HELLO, cached_tokens=2, reasoning_tokens=3),
    "claude-test": ModelScript(
        content=HELLO, input_tokens=40, cached_tokens=10, cache_creation_tokens=5
    ),
    "tooly": ModelScript(tool_calls=(WEATHER,)),
}


def _prompt(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def fp() -> AsyncIterator[FakeProvider]:
    async with FakeProvider(SCRIPTS) as provider:
        yield provider


@pytest.fixture
def fpt() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(SCRIPTS) as provider:
        yield provider


class Clients:
    """Async SDK clients made by a test, closed on the test's own event loop."""

    def __init__(self) -> None:
        self._open: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []

    def openai(self, fp: FakeProvider, **kwargs: Any) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="fake", **kwargs)
        self._open.append(client)
        return client

    def anthropic(self, fp: FakeProvider, **kwargs: Any) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=fp.anthropic_base_url, api_key="fake", **kwargs)
        self._open.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._open:
            await client.close()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.aclose()


# --- OpenAI ---------------------------------------------------------------------------------


def test_urls(fpt: FakeProviderThread) -> None:
    assert fpt.url.startswith("http://127.0.0.1:")
    assert fpt.port > 0
    assert fpt.openai_base_url == f"{fpt.url}/v1"
    assert fpt.anthropic_base_url == fpt.url


def test_openai_sync_plain(fpt: FakeProviderThread) -> None:
    client = openai.OpenAI(base_url=fpt.openai_base_url, api_key="fake")
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint == "fp_fake"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == HELLO
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == 5  # ceil(18 / 4)
    assert usage.completion_tokens == 12 + 3  # ceil(47 / 4) + reasoning
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 2
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 3


async def test_openai_async_plain_default_model(clients: Clients, fp: FakeProvider) -> None:
    completion = await clients.openai(fp).chat.completions.create(
        model="unknown-model", messages=PROMPT
    )
    assert completion.choices[0].message.content == "Fake reply from unknown-model."
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 8  # ceil(30 / 4)


def test_openai_sync_stream_with_usage(fpt: FakeProviderThread) -> None:
    client = openai.OpenAI(base_url=fpt.openai_base_url, api_key="fake")
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 3
    assert "".join(pieces) == HELLO
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(reason is None for reason in finishes[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 5
    assert last.usage.completion_tokens == 15
    assert all(chunk.usage is None for chunk in chunks[:-1])


async def test_openai_async_stream(clients: Clients, fp: FakeProvider) -> None:
    client = clients.openai(fp)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == HELLO
    assert usage is not None
    assert usage.total_tokens == 20
    # Without include_usage, no usage chunk arrives.
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=PROMPT,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


async def test_openai_tool_calls_plain_and_stream(clients: Clients, fp: FakeProvider) -> None:
    client = clients.openai(fp)
    completion = await client.chat.completions.create(model="tooly", messages=PROMPT)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "C"}

    stream = await client.chat.completions.create(model="tooly", messages=PROMPT, stream=True)
    names: list[str] = []
    arguments = ""
    ids: list[str] = []
    argument_deltas = 0
    finish = None
    async for chunk in stream:
        choice_delta = chunk.choices[0]
        finish = choice_delta.finish_reason or finish
        for delta in choice_delta.delta.tool_calls or []:
            assert delta.index == 0
            if delta.id:
                ids.append(delta.id)
            if delta.function and delta.function.name:
                names.append(delta.function.name)
            if delta.function and delta.function.arguments:
                arguments += delta.function.arguments
                argument_deltas += 1
    assert names == ["get_weather"]
    assert len(ids) == 1
    assert argument_deltas > 1
    assert json.loads(arguments) == {"city": "Paris", "unit": "C"}
    assert finish == "tool_calls"


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("anthropic/claude-3.5-sonnet", "Anthropic"),
        ("openai/gpt-4o-mini", "OpenAI"),
        ("meta-llama/llama-3.1-70b-instruct", "Meta"),
    ],
)
async def test_openrouter_model_names(
    clients: Clients, fp: FakeProvider, model: str, provider: str
) -> None:
    client = clients.openai(fp)
    completion = await client.chat.completions.create(model=model, messages=PROMPT)
    assert completion.model == model
    assert completion.choices[0].message.content == f"Fake reply from {model}."
    assert (completion.model_extra or {}).get("provider") == provider
    stream = await client.chat.completions.create(model=model, messages=PROMPT, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks
    assert {(chunk.model_extra or {}).get("provider") for chunk in chunks} == {provider}


async def test_plain_openai_model_has_no_provider_field(clients: Clients, fp: FakeProvider) -> None:
    completion = await clients.openai(fp).chat.completions.create(
        model="gpt-4o-mini", messages=PROMPT
    )
    assert "provider" not in (completion.model_extra or {})


async def test_models_list(clients: Clients, fp: FakeProvider) -> None:
    page = await clients.openai(fp).models.list()
    ids = [model.id for model in page.data]
    assert ids == sorted(SCRIPTS)


# --- Anthropic ------------------------------------------------------------------------------


def test_anthropic_sync_plain(fpt: FakeProviderThread) -> None:
    client = anthropic.Anthropic(base_url=fpt.anthropic_base_url, api_key="fake")
    message = client.messages.create(
        model="claude-test",
        max_tokens=100,
        system="Be brief.",
        messages=PROMPT,
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-test"
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == HELLO
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens == 40 - 10 - 5
    assert message.usage.cache_read_input_tokens == 10
    assert message.usage.cache_creation_input_tokens == 5
    assert message.usage.output_tokens == 12


async def test_anthropic_async_plain_estimates_prompt(clients: Clients, fp: FakeProvider) -> None:
    message = await clients.anthropic(fp).messages.create(
        model="claude-unknown",
        max_tokens=100,
        system="0123456789abcdef",  # 16 chars, joined with the 18-char message: 35 chars
        messages=PROMPT,
    )
    assert message.content[0].text == "Fake reply from claude-unknown."
    assert message.usage.input_tokens == 9  # ceil(35 / 4)


def test_anthropic_sync_stream_helper(fpt: FakeProviderThread) -> None:
    client = anthropic.Anthropic(base_url=fpt.anthropic_base_url, api_key="fake")
    with client.messages.stream(
        model="claude-test",
        max_tokens=100,
        messages=PROMPT,
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 3
    assert "".join(pieces) == HELLO
    assert final.content[0].text == HELLO
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 12
    assert final.usage.cache_read_input_tokens == 10


async def test_anthropic_async_create_stream_events(clients: Clients, fp: FakeProvider) -> None:
    client = clients.anthropic(fp)
    stream = await client.messages.create(
        model="claude-test",
        max_tokens=100,
        messages=PROMPT,
        stream=True,
    )
    events = [event async for event in stream]
    types = [event.type for event in events]
    assert types[0] == "message_start"
    assert types[1] == "content_block_start"
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert len(deltas) > 3
    assert "".join(d.delta.text for d in deltas) == HELLO
    start = events[0]
    assert start.message.usage.input_tokens == 25
    message_delta = events[-2]
    assert message_delta.delta.stop_reason == "end_turn"
    assert message_delta.usage.output_tokens == 12


async def test_anthropic_raw_stream_has_event_lines_and_ping(fp: FakeProvider) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": PROMPT, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fp.anthropic_base_url}/v1/messages", json=body) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = await response.text()
    names = [
        line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event:")
    ]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-1] == "message_stop"


async def test_anthropic_tool_use_plain_and_stream(clients: Clients, fp: FakeProvider) -> None:
    client = clients.anthropic(fp)
    message = await client.messages.create(model="tooly", max_tokens=100, messages=PROMPT)
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"city": "Paris", "unit": "C"}
    assert block.id.startswith("toolu_")
    async with client.messages.stream(model="tooly", max_tokens=100, messages=PROMPT) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Paris", "unit": "C"}


async def test_text_and_tool_call_together(clients: Clients, fp: FakeProvider) -> None:
    fp.set_script("both", ModelScript(content="Let me check.", tool_calls=(WEATHER,)))
    completion = await clients.openai(fp).chat.completions.create(model="both", messages=PROMPT)
    message = completion.choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls is not None
    assert len(message.tool_calls) == 1
    client = clients.anthropic(fp)
    async with client.messages.stream(model="both", max_tokens=50, messages=PROMPT) as stream:
        final = await stream.get_final_message()
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Let me check."
    assert final.content[1].input == {"city": "Paris", "unit": "C"}


# --- Scripting ------------------------------------------------------------------------------


async def test_sequence_cycles_per_call(clients: Clients, fp: FakeProvider) -> None:
    fp.set_script(
        "seq",
        ModelScript(
            sequence=(
                "first",
                ScriptedReply(tool_calls=(ToolCallScript(name="lookup", arguments="{}"),)),
                "third",
            )
        ),
    )
    client = clients.openai(fp)
    replies = []
    for _ in range(4):
        completion = await client.chat.completions.create(model="seq", messages=PROMPT)
        message = completion.choices[0].message
        replies.append(message.content or message.tool_calls[0].function.name)
    assert replies == ["first", "lookup", "third", "first"]
    # Anthropic route shares the counters of the model.
    message = await clients.anthropic(fp).messages.create(
        model="seq", max_tokens=5, messages=PROMPT
    )
    assert message.stop_reason == "tool_use"


async def test_rules_match_last_message_and_fall_back(clients: Clients, fp: FakeProvider) -> None:
    fp.set_script(
        "ruled",
        ModelScript(
            content="fallback",
            rules=(
                ResponseRule(pattern=r"(?i)weather", content="Sunny."),
                ResponseRule(pattern=r"\d+ \+ \d+", content="Math!"),
                ResponseRule(pattern=r"(?i)weather|math", content="never reached for weather"),
            ),
        ),
    )
    client = clients.openai(fp)

    async def ask(messages: list[dict[str, str]]) -> str | None:
        completion = await client.chat.completions.create(model="ruled", messages=messages)
        return completion.choices[0].message.content

    assert await ask(_prompt("What's the WEATHER like?")) == "Sunny."
    assert await ask(_prompt("what is 2 + 2")) == "Math!"
    assert await ask(_prompt("hello")) == "fallback"
    earlier = [*_prompt("weather?"), {"role": "assistant", "content": "Sunny."}, *_prompt("thanks")]
    assert await ask(earlier) == "fallback"
    message = await clients.anthropic(fp).messages.create(
        model="ruled",
        max_tokens=5,
        messages=[{"role": "user", "content": [{"type": "text", "text": "weather in Oslo"}]}],
    )
    assert message.content[0].text == "Sunny."


async def test_set_script_at_runtime_and_default_script(clients: Clients, fp: FakeProvider) -> None:
    client = clients.openai(fp)
    fp.set_script("gpt-4o-mini", ModelScript(content="replaced"))
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert completion.choices[0].message.content == "replaced"
    fp.set_script("*", ModelScript(content="default now"))
    completion = await client.chat.completions.create(model="whatever", messages=PROMPT)
    assert completion.choices[0].message.content == "default now"
    fp.set_script("gpt-4o-mini", None)
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert completion.choices[0].message.content == "default now"


async def test_latency_and_chunk_delay(clients: Clients, fp: FakeProvider) -> None:
    fp.set_script("slow", ModelScript(content="a b c d", latency=0.3))
    client = clients.openai(fp)
    started = time.monotonic()
    await client.chat.completions.create(model="slow", messages=PROMPT)
    assert time.monotonic() - started >= 0.3

    fp.set_script("dribble", ModelScript(content="a b c d", chunk_delay=0.05))
    started = time.monotonic()
    stream = await client.chat.completions.create(model="dribble", messages=PROMPT, stream=True)
    stamps = [time.monotonic() async for _ in stream]
    # role, 4 words, finish: 5 delays of 0.05 s before the stream ends.
    assert stamps[-1] - started >= 0.25


async def test_chunk_size(clients: Clients, fp: FakeProvider) -> None:
    fp.set_script("sized", ModelScript(content="abcdefghij", chunk_size=3))
    stream = await clients.openai(fp).chat.completions.create(
        model="sized", messages=PROMPT, stream=True
    )
    pieces = [c.choices[0].delta.content async for c in stream if c.choices[0].delta.content]
    assert pieces == ["abc", "def", "ghi", "j"]


# --- Errors ---------------------------------------------------------------------------------


async def test_openai_429_with_retry_after(clients: Clients, fp: FakeProvider) -> None:
    fp.set_script("limited", ModelScript(error=ErrorScript(status=429, retry_after=7)))
    client = clients.openai(fp, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="limited", messages=PROMPT)
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "7"
    assert isinstance(error.body, dict)
    assert error.body["code"] == "rate_limit_exceeded"
    assert "429" in error.message
    assert len(fp.requests) == 1


async def test_openai_429_fail_times_then_retry_succeeds(
    clients: Clients, fp: FakeProvider
) -> None:
    fp.set_script(
        "flaky",
        ModelScript(
            content="made it", error=ErrorScript(status=429, retry_after=0.1, fail_times=1)
        ),
    )
    client = clients.openai(fp, max_retries=1)
    completion = await client.chat.completions.create(model="flaky", messages=PROMPT)
    assert completion.choices[0].message.content == "made it"
    assert [r.model for r in fp.requests] == ["flaky", "flaky"]
    assert [r.headers["x-stainless-retry-count"] for r in fp.requests] == ["0", "1"]
    gap = fp.requests[1].time - fp.requests[0].time
    assert gap >= 0.09


def test_anthropic_429_sync_then_retry(fpt: FakeProviderThread) -> None:
    fpt.set_script(
        "claude-flaky",
        ModelScript(
            error=ErrorScript(status=429, message="slow down", retry_after=0.1, fail_times=1)
        ),
    )
    no_retry = anthropic.Anthropic(base_url=fpt.anthropic_base_url, api_key="fake", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as caught:
        no_retry.messages.create(model="claude-flaky", max_tokens=5, messages=PROMPT)
    assert caught.value.response.headers["retry-after"] == "0.1"
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
        "request_id": caught.value.response.headers["request-id"],
    }
    fpt.set_script("claude-flaky", fpt.scripts["claude-flaky"])  # resets the call counter
    retrying = anthropic.Anthropic(base_url=fpt.anthropic_base_url, api_key="fake", max_retries=1)
    message = retrying.messages.create(model="claude-flaky", max_tokens=5, messages=PROMPT)
    assert message.content[0].text == "Fake reply from claude-flaky."


async def test_server_errors(clients: Clients, fp: FakeProvider) -> None:
    fp.set_script("broken", ModelScript(error=ErrorScript(status=500, message="kaboom")))
    fp.set_script("busy", ModelScript(error=ErrorScript(status=529)))
    with pytest.raises(openai.InternalServerError) as caught:
        await clients.openai(fp, max_retries=0).chat.completions.create(
            model="broken", messages=PROMPT
        )
    assert caught.value.status_code == 500
    assert "kaboom" in caught.value.message
    assert "retry-after" not in caught.value.response.headers
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await clients.anthropic(fp, max_retries=0).messages.create(
            model="busy", max_tokens=5, messages=PROMPT
        )
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"
    # Errors come before streaming starts, too.
    with pytest.raises(openai.InternalServerError):
        await clients.openai(fp, max_retries=0).chat.completions.create(
            model="broken",
            messages=PROMPT,
            stream=True,
        )


async def test_hang_times_out_and_server_stops_promptly(clients: Clients) -> None:
    provider = FakeProvider({"stuck": ModelScript(hang=True)})
    await provider.start()
    try:
        client = clients.openai(provider, max_retries=0, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="stuck", messages=PROMPT)
        assert 0.4 <= time.monotonic() - started < 3
        # A second client is still hanging when the server stops.
        patient = clients.openai(provider, max_retries=0, timeout=30)
        pending = asyncio.create_task(
            patient.chat.completions.create(model="stuck", messages=PROMPT)
        )
        while len(provider.requests) < 2:  # noqa: ASYNC110 - polling the server's record
            await asyncio.sleep(0.01)
    finally:
        stop_started = time.monotonic()
        await provider.stop()
        stop_took = time.monotonic() - stop_started
    assert stop_took < 1.0
    with pytest.raises(openai.APIConnectionError):
        await pending
    assert not provider.running


def test_hang_with_thread_runner_stops_promptly() -> None:
    fpt = FakeProviderThread({"stuck": ModelScript(hang=True)})
    fpt.start()
    outcome: list[BaseException] = []

    def call() -> None:
        client = openai.OpenAI(base_url=fpt.openai_base_url, api_key="fake", max_retries=0)
        try:
            client.chat.completions.create(model="stuck", messages=PROMPT)
        except openai.APIError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 5
    while not fpt.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    fpt.stop()
    assert time.monotonic() - started < 1.5
    caller.join(5)
    assert len(outcome) == 1
    assert isinstance(outcome[0], openai.APIConnectionError)


# --- Bad requests, recording ----------------------------------------------------------------


async def test_bad_requests_get_400_and_server_keeps_serving(fp: FakeProvider) -> None:
    chat = f"{fp.openai_base_url}/chat/completions"
    messages = f"{fp.anthropic_base_url}/v1/messages"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            chat, data=b"{not json", headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 400
            body = await response.json()
            assert body["error"]["type"] == "invalid_request_error"
            assert "JSON" in body["error"]["message"]
        async with session.post(chat, json={"messages": PROMPT}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "model"
        async with session.post(chat, json={"model": "gpt-4o-mini"}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "messages"
        async with session.post(messages, data=b"[1, 2") as response:
            assert response.status == 400
            body = await response.json()
            assert body["type"] == "error"
            assert body["error"]["type"] == "invalid_request_error"
        async with session.post(messages, json={"model": "m", "max_tokens": 5}) as response:
            assert response.status == 400
            assert "messages" in (await response.json())["error"]["message"]
        async with session.post(
            chat, json={"model": "gpt-4o-mini", "messages": PROMPT}
        ) as response:
            assert response.status == 200
            assert (await response.json())["choices"][0]["message"]["content"] == HELLO
    assert [r.model for r in fp.requests] == [None, None, "gpt-4o-mini", None, "m", "gpt-4o-mini"]
    assert fp.requests[0].body is None


async def test_bad_request_through_sdk(clients: Clients, fp: FakeProvider) -> None:
    with pytest.raises(openai.BadRequestError):
        await clients.openai(fp).chat.completions.create(model="gpt-4o-mini", messages=[])


async def test_requests_are_recorded(clients: Clients, fp: FakeProvider) -> None:
    client = clients.openai(fp)
    before = time.time()
    await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, temperature=0.2)
    stream = await client.chat.completions.create(model="tooly", messages=PROMPT, stream=True)
    _ = [chunk async for chunk in stream]
    await clients.anthropic(fp).messages.create(model="claude-x", max_tokens=7, messages=PROMPT)
    recorded = fp.requests
    assert [(r.route, r.model, r.stream) for r in recorded] == [
        ("/v1/chat/completions", "gpt-4o-mini", False),
        ("/v1/chat/completions", "tooly", True),
        ("/v1/messages", "claude-x", False),
    ]
    first = recorded[0]
    assert first.method == "POST"
    assert first.body is not None
    assert first.body["messages"] == PROMPT
    assert first.body["temperature"] == 0.2
    assert first.headers["authorization"] == "Bearer fake"
    assert "anthropic-version" in recorded[2].headers
    assert before <= first.time <= recorded[1].time <= recorded[2].time <= time.time()
    fp.clear_requests()
    assert fp.requests == []


def test_thread_runner_from_sync_code_with_runtime_scripts(fpt: FakeProviderThread) -> None:
    assert fpt.running
    client = openai.OpenAI(base_url=fpt.openai_base_url, api_key="fake")
    fpt.set_script("sync-model", ModelScript(sequence=("one", "two")))
    answers = [
        client.chat.completions.create(model="sync-model", messages=PROMPT)
        .choices[0]
        .message.content
        for _ in range(3)
    ]
    assert answers == ["one", "two", "one"]
    assert len(fpt.requests) == 3
    fpt.reset()
    assert fpt.requests == []
    assert (
        client.chat.completions.create(model="sync-model", messages=PROMPT)
        .choices[0]
        .message.content
        == "one"
    )


async def test_from_json_file(clients: Clients, tmp_path: Path) -> None:
    path = tmp_path / "scripts.json"
    path.write_text(
        json.dumps(
            {
                "*": {"content": "json default"},
                "gpt-json": {
                    "rules": [["(?i)ping", "pong"]],
                    "tool_calls": [{"name": "f", "arguments": {"x": 1}}],
                },
            }
        )
    )
    async with FakeProvider.from_json_file(path) as provider:
        client = clients.openai(provider)
        completion = await client.chat.completions.create(model="other", messages=PROMPT)
        assert completion.choices[0].message.content == "json default"
        completion = await client.chat.completions.create(
            model="gpt-json", messages=_prompt("PING")
        )
        message = completion.choices[0].message
        assert message.content == "pong"
        assert message.tool_calls is not None
        assert json.loads(message.tool_calls[0].function.arguments) == {"x": 1}


# --- Command line ---------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
async def test_cli_serves_on_free_port_until_sigterm(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts.json"
    scripts.write_text(json.dumps({"cli-model": {"content": "from the cli"}}))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentmesh.instrumentation.testing.fake_provider",
        "--port",
        "0",
        "--scripts",
        str(scripts),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        assert first.startswith("AgentMesh fake provider listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        lines = [(await process.stdout.readline()).decode().strip() for _ in range(2)]
        assert lines == [f"OPENAI_BASE_URL={url}/v1", f"ANTHROPIC_BASE_URL={url}"]
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="fake") as client:
            completion = await client.chat.completions.create(model="cli-model", messages=PROMPT)
        assert completion.choices[0].message.content == "from the cli"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_cli_rejects_invalid_scripts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentmesh.instrumentation.testing.fake_provider.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"m": {"latency": -1}}))
    assert main(["--scripts", str(bad), "--port", "0"]) == 2
    assert "latency" in capsys.readouterr().err
