"""Content capture: off by default, switched on three ways, GenAI parts JSON, caps, images."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_CONTENT_TRUNCATED,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_SYSTEM_INSTRUCTIONS,
)
from agentmesh.instrumentation import _content
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript, ToolCallScript

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
PNG = base64.b64encode(b"\x89PNG" + bytes(range(256)) * 190).decode()  # 48,644 bytes


@pytest.fixture
def instrument(exporter: InMemorySpanExporter, tracer_provider: TracerProvider) -> Iterator[object]:
    applied: list[OpenAIInstrumentor | AnthropicInstrumentor] = []

    def apply(**kwargs: object) -> None:
        for instrumentor in (OpenAIInstrumentor(), AnthropicInstrumentor()):
            instrumentor.instrument(tracer_provider=tracer_provider, **kwargs)
            applied.append(instrumentor)

    yield apply
    for instrumentor in applied:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
def fp() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(
        {GPT: ModelScript(content="Bonjour."), CLAUDE: ModelScript(content="Hello.")}
    ) as provider:
        yield provider


def _gpt(provider: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=provider.openai_base_url, api_key="t", max_retries=0)


def _claude(provider: FakeProviderThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=provider.anthropic_base_url, api_key="t", max_retries=0)


def _attrs(exporter: InMemorySpanExporter) -> dict[str, object]:
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    assert len(spans) == 1
    return dict(spans[0].attributes or {})


def _ask(provider: FakeProviderThread) -> None:
    _gpt(provider).chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "Salut"}]
    )


def test_off_by_default(
    instrument: object,
    fp: FakeProviderThread,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(_content.CAPTURE_ENV_VAR, raising=False)
    monkeypatch.delenv("AGENTMESH_CAPTURE_CONTENT", raising=False)
    instrument()  # type: ignore[operator]

    _ask(fp)

    attrs = _attrs(exporter)
    assert GEN_AI_INPUT_MESSAGES not in attrs
    assert GEN_AI_OUTPUT_MESSAGES not in attrs


@pytest.mark.parametrize(
    ("variable", "value"),
    [(_content.CAPTURE_ENV_VAR, "TRUE"), ("AGENTMESH_CAPTURE_CONTENT", "true")],
)
def test_switched_on_by_the_environment(
    instrument: object,
    fp: FakeProviderThread,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
) -> None:
    monkeypatch.delenv(_content.CAPTURE_ENV_VAR, raising=False)
    monkeypatch.setenv(variable, value)
    instrument()  # type: ignore[operator]

    _ask(fp)

    attrs = _attrs(exporter)
    assert json.loads(str(attrs[GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Salut"}]}
    ]
    assert json.loads(str(attrs[GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Bonjour."}],
            "finish_reason": "stop",
        }
    ]


def test_the_instrument_argument_wins_over_the_environment(
    instrument: object,
    fp: FakeProviderThread,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(_content.CAPTURE_ENV_VAR, "true")
    instrument(capture_content=False)  # type: ignore[operator]

    _ask(fp)

    assert GEN_AI_INPUT_MESSAGES not in _attrs(exporter)


def test_openai_conversation_with_tools(
    instrument: object, fp: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    instrument(capture_content=True)  # type: ignore[operator]
    fp.set_script(
        GPT,
        ModelScript(
            tool_calls=(ToolCallScript(name="weather", arguments='{"c": "Paris"}', id="call_2"),)
        ),
    )
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "city", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Paris"},
    ]

    _gpt(fp).chat.completions.create(model=GPT, messages=messages)

    attrs = _attrs(exporter)
    assert json.loads(str(attrs[GEN_AI_SYSTEM_INSTRUCTIONS])) == [
        {"type": "text", "content": "Be terse."}
    ]
    assert json.loads(str(attrs[GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "city", "arguments": {}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "Paris"}],
        },
    ]
    assert json.loads(str(attrs[GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_2",
                    "name": "weather",
                    "arguments": {"c": "Paris"},
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert AGENTMESH_CONTENT_TRUNCATED not in attrs


def test_openai_stream_output_is_assembled_from_chunks(
    instrument: object, fp: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    instrument(capture_content=True)  # type: ignore[operator]
    fp.set_script(
        GPT,
        ModelScript(
            content="Two words.",
            tool_calls=(ToolCallScript(name="lookup", arguments='{"q": "x"}', id="call_9"),),
        ),
    )

    for _ in _gpt(fp).chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "Go"}], stream=True
    ):
        pass

    assert json.loads(str(_attrs(exporter)[GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Two words."},
                {"type": "tool_call", "id": "call_9", "name": "lookup", "arguments": {"q": "x"}},
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_openai_inline_image_becomes_a_placeholder(
    instrument: object, fp: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    instrument(capture_content=True)  # type: ignore[operator]

    _gpt(fp).chat.completions.create(
        model=GPT,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )

    text = str(_attrs(exporter)[GEN_AI_INPUT_MESSAGES])
    assert PNG[:100] not in text
    assert json.loads(text)[0]["parts"] == [
        {"type": "text", "content": "What is this?"},
        {"type": "blob", "modality": "image", "content": "[image: image/png, 48644 bytes]"},
        {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
    ]


def test_anthropic_system_image_and_output(
    instrument: object, fp: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    instrument(capture_content=True)  # type: ignore[operator]

    _claude(fp).messages.create(
        model=CLAUDE,
        max_tokens=50,
        system="You describe images.",
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG},
                    },
                    {"type": "text", "text": "Describe."},
                ],
            }
        ],
    )

    attrs = _attrs(exporter)
    assert json.loads(str(attrs[GEN_AI_SYSTEM_INSTRUCTIONS])) == [
        {"type": "text", "content": "You describe images."}
    ]
    assert json.loads(str(attrs[GEN_AI_INPUT_MESSAGES])) == [
        {
            "role": "user",
            "parts": [
                {
                    "type": "blob",
                    "modality": "image",
                    "content": "[image: image/jpeg, 48644 bytes]",
                },
                {"type": "text", "content": "Describe."},
            ],
        }
    ]
    assert json.loads(str(attrs[GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello."}],
            "finish_reason": "end_turn",
        }
    ]


def test_anthropic_stream_output_with_tool_use(
    instrument: object, fp: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    instrument(capture_content=True)  # type: ignore[operator]
    fp.set_script(
        CLAUDE,
        ModelScript(
            content="Checking.",
            tool_calls=(
                ToolCallScript(name="weather", arguments='{"city": "Rome"}', id="toolu_1"),
            ),
        ),
    )

    with _claude(fp).messages.stream(
        model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "Rome?"}]
    ) as stream:
        stream.until_done()

    assert json.loads(str(_attrs(exporter)[GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Checking."},
                {
                    "type": "tool_call",
                    "id": "toolu_1",
                    "name": "weather",
                    "arguments": {"city": "Rome"},
                },
            ],
            "finish_reason": "tool_use",
        }
    ]


def test_long_content_is_truncated_to_the_cap(
    instrument: object, fp: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    instrument(capture_content=True)  # type: ignore[operator]

    _gpt(fp).chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "é" * 40_000}]
    )

    attrs = _attrs(exporter)
    captured = str(attrs[GEN_AI_INPUT_MESSAGES])
    assert len(captured.encode()) <= _content.CONTENT_CAP_BYTES
    assert len(captured.encode()) > _content.CONTENT_CAP_BYTES - 4
    assert captured.startswith('[{"role":"user","parts":[{"type":"text","content":"éé')
    assert attrs[AGENTMESH_CONTENT_TRUNCATED] is True


def test_unknown_parts_with_base64_blobs_are_scrubbed() -> None:
    audio = base64.b64encode(bytes(3000)).decode()
    _, messages = _content.openai_chat_input(
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}
                ],
            }
        ]
    )

    assert messages == [
        {
            "role": "user",
            "parts": [
                {
                    "type": "input_audio",
                    "content": {
                        "type": "input_audio",
                        "input_audio": {"data": "[blob: 3000 bytes]", "format": "wav"},
                    },
                }
            ],
        }
    ]


def test_short_text_is_never_mistaken_for_a_blob() -> None:
    word = "A" * 1000  # base64-looking, but under the threshold
    assert _content.scrub({"k": word}) == {"k": word}
    prose = "plain words " * 200
    assert _content.scrub(prose) == prose


def test_responses_input_with_instructions_and_image() -> None:
    system, messages = _content.responses_input(
        "Be brief.",
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Look"},
                    {"type": "input_image", "image_url": f"data:image/webp;base64,{PNG}"},
                ],
            },
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ],
    )

    assert system == [{"type": "text", "content": "Be brief."}]
    assert messages == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Look"},
                {
                    "type": "blob",
                    "modality": "image",
                    "content": "[image: image/webp, 48644 bytes]",
                },
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]},
    ]


def test_capped_json_cuts_on_a_character_boundary() -> None:
    text, truncated = _content.capped_json(["ü" * 100], cap=51)

    assert truncated is True
    assert len(text.encode()) <= 51
    text.encode().decode()  # still valid UTF-8
