"""Canned chat-completion answers served in-process (stdlib only: runs in every peer's venv).

The same bytes for every contender: a non-streamed ``chat.completion`` with usage, and an SSE
stream of ``chat.completion.chunk`` events (role, five content deltas, the finish reason, then
the usage chunk asked for with ``stream_options={"include_usage": True}``) ending in ``[DONE]``.
"""

from __future__ import annotations

import json

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
MESSAGES = (
    {"role": "system", "content": "You are a terse research assistant."},
    {"role": "user", "content": "Name the capital of France in one word."},
)
_WORDS = ("The", " capital", " is", " Paris", ".")
_USAGE = {
    "prompt_tokens": 24,
    "completion_tokens": 5,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def completion_body() -> bytes:
    """Return the JSON body of a non-streamed chat completion."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": RESPONSE_MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(_WORDS)},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _USAGE,
        }
    ).encode()


def _chunk(delta: dict[str, object], finish: str | None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": RESPONSE_MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def stream_body() -> bytes:
    """Return the SSE body of a streamed chat completion, usage chunk included."""
    events: list[dict[str, object]] = [_chunk({"role": "assistant", "content": ""}, None)]
    events += [_chunk({"content": word}, None) for word in _WORDS]
    events.append(_chunk({}, "stop"))
    usage_chunk = _chunk({}, None)
    usage_chunk["choices"] = []
    usage_chunk["usage"] = _USAGE
    events.append(usage_chunk)
    lines = [f"data: {json.dumps(event)}\n\n" for event in events]
    lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()
