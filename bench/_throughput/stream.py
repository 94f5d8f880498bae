"""A realistic multi-agent span stream, generated with a fixed seed and pre-serialised.

Many runs are live at once (their spans interleave across requests, as an SDK batch processor
of a busy service sends them); each run is a supervisor workflow of 20-200 spans: agent spans
with handoff attributes, chat spans with GenAI attributes (models, tokens, cost, finish
reasons), tool spans, and on one chat span in five the captured prompt and completion (1-6 KB
of text), the attribute sizes content capture produces.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace

from agentmesh.collector.model import AttributeValue, SpanRecord
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import semconv

SPANS_PER_REQUEST = 512
CONCURRENT_RUNS = 64
_AGENTS = ("supervisor", "researcher", "writer", "critic", "coder")
_MODELS = ("gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1", "gemini-2.5-flash")
_TEXT = (
    "the agent reviews retrieved documents and summarises the key findings for the user "
    "while citing sources and flagging uncertain claims before handing over to the writer"
)
_WORDS = tuple(_TEXT.split(" "))


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def _run(rng: random.Random, index: int) -> list[SpanRecord]:
    """One run of 20-200 spans, in the order its spans end (children before parents)."""
    target = rng.randint(20, 200)
    f = SpanFactory(service_name=f"app-{index % 7}", trace_id=f"{rng.getrandbits(128):032x}")
    run_id = f"run-{index}"
    root = f.workflow("supervisor_graph", run_id=run_id, framework="langgraph")
    spans: list[SpanRecord] = []
    previous: str | None = None
    while len(spans) < target - 1:
        name = "supervisor" if previous != "supervisor" else rng.choice(_AGENTS[1:])
        agent = f.agent(name, parent=root, run_id=run_id, handoff_from=previous)
        children: list[SpanRecord] = []
        for _ in range(rng.randint(1, 4)):
            chat = f.chat(
                parent=agent,
                model=rng.choice(_MODELS),
                input_tokens=rng.randint(50, 8000),
                output_tokens=rng.randint(10, 1200),
                cost_usd=rng.random() / 50,
            )
            extra: dict[str, AttributeValue] = {
                semconv.GEN_AI_PROVIDER_NAME: "openai",
                semconv.GEN_AI_RESPONSE_ID: f"chatcmpl-{rng.getrandbits(64):x}",
                semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
                semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
                semconv.AGENTMESH_RUN_ID: run_id,
            }
            if rng.random() < 0.2:
                prompt = [{"role": "user", "content": _text(rng, rng.randint(1000, 5000))}]
                extra[semconv.GEN_AI_INPUT_MESSAGES] = json.dumps(prompt)
                extra[semconv.GEN_AI_OUTPUT_MESSAGES] = json.dumps(
                    [{"role": "assistant", "content": _text(rng, rng.randint(200, 1000))}]
                )
            children.append(replace(chat, attributes={**chat.attributes, **extra}))
            if rng.random() < 0.3:
                tool = rng.choice(("web_search", "python", "retrieve"))
                children.append(
                    f.span(
                        f"{semconv.Operation.EXECUTE_TOOL} {tool}",
                        parent=agent,
                        attributes={
                            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.EXECUTE_TOOL,
                            semconv.GEN_AI_TOOL_NAME: tool,
                            semconv.GEN_AI_TOOL_CALL_ID: f"call_{rng.getrandbits(48):x}",
                        },
                    )
                )
        spans += [*children, agent]
        previous = name
    spans.append(root)
    # Random 64-bit span ids, as SDKs make them (the factory numbers them per trace from 1;
    # stores that key spans by span id alone, like Phoenix, would merge runs otherwise).
    ids = {span.span_id: f"{rng.getrandbits(64) | 1:016x}" for span in spans}
    return [
        replace(
            span,
            span_id=ids[span.span_id],
            parent_span_id=None if span.parent_span_id is None else ids[span.parent_span_id],
        )
        for span in spans
    ]


def _interleaved(
    rng: random.Random, total_spans: int, whole_runs: bool = False
) -> Iterator[SpanRecord]:
    """Spans of ``CONCURRENT_RUNS`` live runs at a time, interleaved in small chunks.

    With ``whole_runs``, no run starts once ``total_spans`` were produced, and the live ones
    are finished (the stream is a little longer): every run has its root span.
    """
    produced = 0
    index = 0
    live: list[list[SpanRecord]] = []
    while produced < total_spans or (whole_runs and live):
        while produced < total_spans and len(live) < CONCURRENT_RUNS:
            live.append(_run(rng, index))
            index += 1
        run = live[rng.randrange(len(live))]
        chunk = rng.randint(1, 8)
        for span in run[:chunk]:
            yield span
            produced += 1
        del run[:chunk]
        live = [r for r in live if r]


def payloads(total_spans: int, seed: int, whole_runs: bool = False) -> list[bytes]:
    """Serialised ``ExportTraceServiceRequest`` bodies of ``SPANS_PER_REQUEST`` spans each.

    Args:
        total_spans: Spans in the stream (runs are cut at the end to hit it, unless
            ``whole_runs``).
        seed: Random seed; the same seed gives the same bytes.
        whole_runs: Finish the runs live at the end instead of cutting them (a stream that is
            replayed over and over must not leave a trail of runs without roots).

    Returns:
        The request bodies, in sending order.
    """
    rng = random.Random(seed)
    out: list[bytes] = []
    batch: list[SpanRecord] = []
    for span in _interleaved(rng, total_spans, whole_runs):
        batch.append(span)
        if len(batch) == SPANS_PER_REQUEST:
            out.append(to_otlp_request(batch).SerializeToString())
            batch = []
    if batch:
        out.append(to_otlp_request(batch).SerializeToString())
    return out
