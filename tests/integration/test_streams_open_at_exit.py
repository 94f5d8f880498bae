"""A provider call the app left open (an abandoned stream) still reaches the collector at exit.

An app that breaks out of a stream early and then exits (a CLI, a cron job, the last step of a
batch), or that keeps an unfinished stream in a global, used to lose the call's span: the span
ended only when the garbage collector freed the SDK's stream (a reference cycle), which did not
happen before the exporter's final flush. No chat span, no tokens, no cost reached the
collector, and nothing said so.

Each case runs a real app (``init()``, the real ``openai`` / ``anthropic`` SDK against the fake
provider) in a child process and reads what the collector received: the call's span, under its
agent, marked ``agentmesh.call.ended_at_exit``, with what was known when the app stopped reading
(time to first chunk, the estimated tokens and cost of what was read). A stream the app read to
its end is not marked.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.model import SpanRecord
from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    AGENTMESH_USAGE_ESTIMATED,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from agentmesh.instrumentation._open_calls import ENDED_AT_EXIT
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

APP = textwrap.dedent(
    """
    import asyncio
    import sys
    import time

    from agentmesh.instrumentation import agent, init, workflow

    init()
    case, base_url = sys.argv[1], sys.argv[2]
    ask = [{"role": "user", "content": "tell me a long story"}]
    kept = []


    def gpt():
        import openai

        return openai.OpenAI(base_url=f"{base_url}/v1", api_key="t", max_retries=0)


    def async_gpt():
        import openai

        return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="t", max_retries=0)


    def claude():
        import anthropic

        return anthropic.Anthropic(base_url=base_url, api_key="t", max_retries=0)


    def openai_break():
        stream = gpt().chat.completions.create(model="gpt-4o", messages=ask, stream=True)
        for i, _chunk in enumerate(stream):
            if i == 3:
                break  # we have what we need


    def openai_kept():
        kept.append(gpt().chat.completions.create(model="gpt-4o", messages=ask, stream=True))
        chunks = iter(kept[0])
        for _ in range(4):
            next(chunks)


    def openai_unread():
        kept.append(gpt().chat.completions.create(model="gpt-4o", messages=ask, stream=True))


    def openai_async_break():
        async def main():
            stream = await async_gpt().chat.completions.create(
                model="gpt-4o", messages=ask, stream=True
            )
            async for _chunk in stream:
                break

        asyncio.run(main())


    def openai_async_kept():
        async def main():
            stream = await async_gpt().chat.completions.create(
                model="gpt-4o", messages=ask, stream=True
            )
            kept.append(stream)
            for _ in range(4):
                await stream.__anext__()

        asyncio.run(main())


    def anthropic_break():
        stream = claude().messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=ask, stream=True
        )
        for i, _event in enumerate(stream):
            if i == 3:
                break


    def anthropic_kept():
        kept.append(
            claude().messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=ask, stream=True
            )
        )
        events = iter(kept[0])
        for _ in range(4):
            next(events)


    def anthropic_helper_kept():
        manager = claude().messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=ask)
        kept.append(manager)
        events = iter(manager.__enter__())  # never left
        for _ in range(4):
            next(events)


    def openai_read_to_the_end():
        stream = gpt().chat.completions.create(model="gpt-4o", messages=ask, stream=True)
        kept.append(stream)
        for _chunk in stream:
            pass


    with workflow("open-at-exit"), agent("reader"):
        globals()[case]()
    time.sleep(float(sys.argv[3]))  # the app goes on with other work, then exits
    """
)

AT_EXIT = [
    "openai_break",
    "openai_kept",
    "openai_unread",
    "openai_async_kept",
    "anthropic_kept",
    "anthropic_helper_kept",
]
"""Calls the app left open until it exited: ended at exit, marked."""

FREED = ["openai_async_break", "anthropic_break", "openai_read_to_the_end"]
"""Calls whose stream was read to the end, or freed (by reference counting) when the function
that dropped it returned: ended then, not marked."""

STORY = " ".join(f"word{i}" for i in range(40))
WORK_AFTER_S = 2.0


async def _spans_of(
    tmp_path: Path, case: str, after_s: float = 0.0
) -> tuple[list[SpanRecord], str]:
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, duckdb_path=tmp_path / "unused.duckdb"
    )
    scripts = {
        "gpt-4o": ModelScript(content=STORY),
        "claude-haiku-4-5": ModelScript(content=STORY),
    }
    with FakeProviderThread(scripts) as fake:
        store = MemoryStore()
        async with Collector(settings, store) as collector:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMESH_"))}
            env.update(
                AGENTMESH_ENDPOINT=collector.endpoint,
                AGENTMESH_CONTROL_URL=collector.http_endpoint,
                AGENTMESH_CONTROL_ENABLED="false",
                AGENTMESH_SHUTDOWN_TIMEOUT_S="30",
                AGENTMESH_EXPORT_TIMEOUT_S="30",
            )
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", APP, case, fake.anthropic_base_url, str(after_s)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            await collector.drain()
            runs = await store.runs()
            spans = [span for run in runs for span in await store.spans(run.trace_id)]
    assert done.returncode == 0, done.stderr[-3000:]
    return spans, done.stderr[-3000:]


def _by_name(spans: list[SpanRecord], stderr: str) -> dict[str, SpanRecord]:
    by_name = {span.name: span for span in spans}
    calls = [span for span in spans if span.name.startswith("chat ")]
    assert len(calls) == 1, (sorted(by_name), stderr)
    by_name["call"] = calls[0]
    assert calls[0].parent_span_id == by_name["invoke_agent reader"].span_id
    return by_name


@pytest.mark.parametrize("case", AT_EXIT)
async def test_a_call_left_open_is_ended_and_exported_at_exit(tmp_path: Path, case: str) -> None:
    spans, stderr = await _spans_of(tmp_path, case)

    call = _by_name(spans, stderr)["call"]
    attributes = call.attributes
    assert attributes.get(ENDED_AT_EXIT) is True, attributes
    assert call.status_code == "unset"  # the app stopped reading: no failure
    assert call.start_ns <= call.end_ns
    if case == "openai_unread":  # nothing was read: nothing more to tell
        assert GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attributes
        assert GEN_AI_USAGE_OUTPUT_TOKENS not in attributes
        return
    assert float(attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]) >= 0  # pyright: ignore[reportArgumentType]
    if case.startswith("openai"):  # no usage chunk came: what was read is estimated, priced
        assert attributes[AGENTMESH_USAGE_ESTIMATED] is True
        assert int(attributes[GEN_AI_USAGE_OUTPUT_TOKENS]) > 0  # pyright: ignore[reportArgumentType]
        assert float(attributes[AGENTMESH_COST_USD]) > 0  # pyright: ignore[reportArgumentType]
    else:  # the message_start event said how many input tokens
        assert int(attributes[GEN_AI_USAGE_INPUT_TOKENS]) > 0  # pyright: ignore[reportArgumentType]


async def test_a_call_ended_at_exit_ends_at_its_last_chunk_read_not_at_exit(
    tmp_path: Path,
) -> None:
    # the app works on for a while after it stopped reading: that time is not the call's
    spans, stderr = await _spans_of(tmp_path, "openai_kept", after_s=WORK_AFTER_S)

    by_name = _by_name(spans, stderr)
    call, run = by_name["call"], by_name["invoke_workflow open-at-exit"]
    assert call.attributes.get(ENDED_AT_EXIT) is True
    assert call.end_ns < run.end_ns + int(WORK_AFTER_S / 2 * 1e9)


@pytest.mark.parametrize("case", FREED)
async def test_a_call_ended_before_exit_is_not_marked(tmp_path: Path, case: str) -> None:
    spans, stderr = await _spans_of(tmp_path, case)

    call = _by_name(spans, stderr)["call"]
    assert ENDED_AT_EXIT not in call.attributes
    assert float(call.attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]) >= 0  # pyright: ignore[reportArgumentType]
