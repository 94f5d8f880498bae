"""Provider calls still open when the tracer provider shuts down are ended, marked, then exported.

A stream the application stopped reading (a ``break``, a stream kept in a global) used to end
its span only when the garbage collector freed the SDK's stream, which, in a process about to
exit, came after the exporter's final flush: the span was lost. The open-call registry
(:mod:`agentmesh.instrumentation._open_calls`) ends such calls at exit, before the final flush,
marked ``agentmesh.call.ended_at_exit``, with what was known (time to first chunk, the tokens of
what was read), ending them when they were last seen active rather than at exit.
``tests/integration/test_streams_open_at_exit.py`` runs real apps that exit.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import Iterator, Sequence

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_USAGE_ESTIMATED,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from agentmesh.instrumentation import _open_calls
from agentmesh.instrumentation._exporter import GuardedSpanExporter
from agentmesh.instrumentation._processor import BoundedSpanProcessor
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

GPT = "gpt-4o"
CLAUDE = "claude-haiku-4-5"
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "tell me a long story"}]
ASK_CLAUDE: list[MessageParam] = [{"role": "user", "content": "tell me a long story"}]
STORY = " ".join(f"word{i}" for i in range(40))
IDLE_S = 0.3
"""How long the test waits, after it stopped reading, before it ends the open calls."""


@pytest.fixture
def registry() -> Iterator[None]:
    gc.collect()  # what other tests left open is not ours to look at (set up before `exporter`)
    _open_calls.end_open_calls()
    yield
    _open_calls.end_open_calls()


@pytest.fixture
def instrumented(
    registry: None, exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[None]:
    applied = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for instrumentor in applied:
        instrumentor.instrument(tracer_provider=tracer_provider)
    yield
    for instrumentor in applied:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    scripts = {GPT: ModelScript(content=STORY), CLAUDE: ModelScript(content=STORY)}
    with FakeProviderThread(scripts) as provider:
        yield provider


def _gpt(fake: FakeProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0)


def _claude(fake: FakeProviderThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="t", max_retries=0)


def _number(value: object) -> float:
    assert isinstance(value, int | float)
    return value


def _end_open_calls_later() -> tuple[int, int]:
    """Wait, then end the open calls; return (when the wait began, how many were ended)."""
    stopped_reading = time.time_ns()
    time.sleep(IDLE_S)
    return stopped_reading, _open_calls.end_open_calls()


def _ended_at_exit(exporter: InMemorySpanExporter, stopped_reading: int) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes[_open_calls.ENDED_AT_EXIT] is True
    assert span.status.status_code is StatusCode.UNSET  # the app stopped reading: no failure
    assert _number(attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]) >= 0
    assert span.start_time is not None
    assert span.end_time is not None
    # it ends when it was last seen active, not when it was ended (the app idled in between)
    assert span.start_time <= span.end_time < stopped_reading + int(IDLE_S / 2 * 1e9)
    return span


@pytest.mark.usefixtures("instrumented")
def test_an_openai_stream_the_app_broke_out_of_is_ended_with_what_was_read(
    fake: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    def first_words() -> None:
        stream = _gpt(fake).chat.completions.create(model=GPT, messages=ASK, stream=True)
        for i, _chunk in enumerate(stream):
            if i == 3:
                break

    first_words()  # the SDK's stream is in a reference cycle: nothing ends it yet
    assert exporter.get_finished_spans() == ()
    stopped_reading, ended = _end_open_calls_later()

    assert ended == 1
    attributes = dict(_ended_at_exit(exporter, stopped_reading).attributes or {})
    assert attributes[AGENTMESH_USAGE_ESTIMATED] is True  # no usage chunk came: estimated
    assert _number(attributes[GEN_AI_USAGE_OUTPUT_TOKENS]) > 0
    gc.collect()  # the stream freed later: the span does not end twice
    assert len(exporter.get_finished_spans()) == 1


@pytest.mark.usefixtures("instrumented")
def test_an_async_openai_stream_kept_unfinished_is_ended(
    fake: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    kept: list[object] = []

    async def read_a_little() -> None:
        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0)
        stream = await client.chat.completions.create(model=GPT, messages=ASK, stream=True)
        kept.append(stream)
        for _ in range(4):
            await stream.__anext__()

    asyncio.run(read_a_little())
    stopped_reading, ended = _end_open_calls_later()

    assert ended == 1
    attributes = dict(_ended_at_exit(exporter, stopped_reading).attributes or {})
    assert _number(attributes[GEN_AI_USAGE_OUTPUT_TOKENS]) > 0


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("helper", [False, True])
def test_an_anthropic_stream_kept_unfinished_is_ended(
    fake: FakeProviderThread, exporter: InMemorySpanExporter, helper: bool
) -> None:
    client = _claude(fake)
    if helper:
        manager = client.messages.stream(model=CLAUDE, max_tokens=50, messages=ASK_CLAUDE)
        events = iter(manager.__enter__())  # never left
    else:
        manager = client.messages.create(
            model=CLAUDE, max_tokens=50, messages=ASK_CLAUDE, stream=True
        )
        events = iter(manager)
    for _ in range(4):
        next(events)
    stopped_reading, ended = _end_open_calls_later()

    assert ended == 1
    attributes = dict(_ended_at_exit(exporter, stopped_reading).attributes or {})
    assert _number(attributes[GEN_AI_USAGE_INPUT_TOKENS]) > 0
    del manager, events


@pytest.mark.usefixtures("instrumented")
def test_a_stream_never_read_ends_at_exit_with_nothing_read(
    fake: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    stream = _gpt(fake).chat.completions.create(model=GPT, messages=ASK, stream=True)

    assert _open_calls.end_open_calls() == 1

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes[_open_calls.ENDED_AT_EXIT] is True
    assert GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attributes
    assert GEN_AI_USAGE_OUTPUT_TOKENS not in attributes
    del stream


@pytest.mark.usefixtures("instrumented")
def test_calls_that_ended_are_not_in_the_registry_nor_kept_alive_by_it(
    fake: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    client = _gpt(fake)
    client.chat.completions.create(model=GPT, messages=ASK)
    list(client.chat.completions.create(model=GPT, messages=ASK, stream=True))
    with client.chat.completions.create(model=GPT, messages=ASK, stream=True) as stream:
        next(iter(stream))
    dropped = client.chat.completions.create(model=GPT, messages=ASK, stream=True)
    next(iter(dropped))
    del dropped
    gc.collect()  # the dropped stream is freed: its span ends then, unmarked

    assert not _open_calls.any_open()
    assert _open_calls.end_open_calls() == 0
    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    assert all(_open_calls.ENDED_AT_EXIT not in (span.attributes or {}) for span in spans)


class _Recording(SpanExporter):
    def __init__(self) -> None:
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def listening_endpoint() -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.mark.usefixtures("registry")
def test_the_span_processor_ends_open_calls_before_its_final_flush(
    fake: FakeProviderThread, listening_endpoint: str
) -> None:
    inner = _Recording()
    built: list[int] = []

    def factory() -> SpanExporter:
        built.append(1)
        return inner

    provider = TracerProvider(shutdown_on_exit=False)
    processor = BoundedSpanProcessor(GuardedSpanExporter(factory), listening_endpoint, 5.0)
    provider.add_span_processor(processor)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        stream = _gpt(fake).chat.completions.create(model=GPT, messages=ASK, stream=True)
        next(iter(stream))
    finally:
        instrumentor.uninstrument()

    # Python's exit: the threading hook builds the exporter while thread pools still take work,
    # although no span has ended yet (the only one is the open call's)
    processor._prepare_exporter_at_exit()  # pyright: ignore[reportPrivateUsage]
    assert built == [1]
    provider.shutdown()

    (span,) = inner.exported
    assert span.name == f"chat {GPT}"
    assert (span.attributes or {})[_open_calls.ENDED_AT_EXIT] is True
    del stream
