"""Token counts for streams that report no usage.

OpenAI sends usage on a stream only when the request asks for it
(``stream_options={"include_usage": True}``). Asking on the app's behalf would change the
chunks the app receives (a last chunk with no choices) and some OpenAI-compatible servers refuse
the option, so the instrumentation never adds it. Instead, when such a stream ends, it
estimates: about four characters per prompt token, one token per streamed content chunk (how
OpenAI streams), and marks the span ``agentmesh.usage.estimated``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    AGENTMESH_USAGE_ESTIMATED,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from agentmesh.instrumentation.openai import _pricing

__all__ = ["estimate_stream_usage", "prompt_chars", "wants_usage"]


def wants_usage(kwargs: Mapping[str, object]) -> bool:
    """Tell whether a streamed chat request asked the provider for usage.

    Args:
        kwargs: The call's keyword arguments.

    Returns:
        Whether ``stream_options.include_usage`` is true.
    """
    return bool(_get(kwargs.get("stream_options"), "include_usage"))


def prompt_chars(messages: object) -> int:
    """Count the characters of a chat request's text content.

    Args:
        messages: The ``messages`` argument.

    Returns:
        Characters of every string content and text part.

    Example:
        >>> prompt_chars([{"role": "user", "content": "Hello"}, {"content": [{"text": "abc"}]}])
        8
    """
    total = 0
    for message in _items(messages):
        content = _get(message, "content")
        if isinstance(content, str):
            total += len(content)
            continue
        for part in _items(content):
            text = _get(part, "text")
            if isinstance(text, str):
                total += len(text)
    return total


def _get(obj: object, key: str) -> object:
    if isinstance(obj, Mapping):
        return cast("Mapping[str, object]", obj).get(key)
    return None


def _items(obj: object) -> Sequence[object]:
    if isinstance(obj, list | tuple):
        return cast("Sequence[object]", obj)
    return ()


def estimate_stream_usage(
    request_model: str, response_model: str | None, chars: int, content_chunks: int
) -> dict[str, AttributeValue]:
    """Estimate the token counts and cost of a stream that reported no usage.

    Args:
        request_model: The model the call was sent to (the application's unless routing
            replaced it).
        response_model: The model that answered, if known.
        chars: Characters of the prompt.
        content_chunks: Chunks that carried content or tool-call deltas.

    Returns:
        Input and output tokens, the cost when the model is priced, and the estimated flag.

    Example:
        >>> estimate_stream_usage("gpt-4o-mini", None, 400, 12)[GEN_AI_USAGE_INPUT_TOKENS]
        100
    """
    input_tokens = max(1, (chars + 3) // 4)
    attributes: dict[str, AttributeValue] = {
        GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        GEN_AI_USAGE_OUTPUT_TOKENS: content_chunks,
        AGENTMESH_USAGE_ESTIMATED: True,
    }
    cost = _pricing.cost_usd((response_model, request_model), input_tokens, content_chunks, 0)
    if cost is not None:
        attributes[AGENTMESH_COST_USD] = cost
    return attributes
