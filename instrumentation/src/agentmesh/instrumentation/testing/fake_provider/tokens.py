"""Deterministic token estimates and the text of chat messages (OpenAI and Anthropic shapes)."""

from __future__ import annotations

import json
import math

from agentmesh.instrumentation.testing.fake_provider.jsontypes import as_list, as_object, get_str

__all__ = ["content_text", "estimate_tokens", "last_message_text", "message_text", "prompt_text"]

CHARS_PER_TOKEN = 4
"""Characters per token of the estimate."""


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of a text: one per 4 characters, rounded up, at least 1.

    Args:
        text: Any text.

    Returns:
        The estimate.

    Example:
        >>> estimate_tokens("Hello, world")
        3
    """
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def content_text(content: object) -> str:
    """Return the text of a message content: a string, or a list of parts or blocks.

    Text parts (``{"type": "text", "text": ...}``), Anthropic ``tool_result`` blocks (their
    ``content``) and ``tool_use`` blocks (their ``input`` as JSON) count; images do not.

    Args:
        content: The ``content`` of a message (or of a block).

    Returns:
        The texts joined with newlines.
    """
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in as_list(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        block = as_object(part)
        if block is None:
            continue
        text = get_str(block, "text")
        if text is not None:
            texts.append(text)
        elif "content" in block:
            texts.append(content_text(block["content"]))
        elif (tool_input := as_object(block.get("input"))) is not None:
            texts.append(json.dumps(tool_input))
    return "\n".join(text for text in texts if text)


def message_text(message: object) -> str:
    """Return the text of one chat message, including OpenAI tool-call arguments.

    Args:
        message: A message object of either wire format.

    Returns:
        Its text (empty when it has none).
    """
    obj = as_object(message)
    if obj is None:
        return content_text(message)
    texts = [content_text(obj.get("content"))]
    for call in as_list(obj.get("tool_calls")):
        function = as_object((as_object(call) or {}).get("function")) or {}
        texts.extend(
            value for value in (get_str(function, "name"), get_str(function, "arguments")) if value
        )
    return "\n".join(text for text in texts if text)


def prompt_text(messages: list[object], system: object = None) -> str:
    """Return the whole prompt's text: the (Anthropic) system prompt, then every message.

    Args:
        messages: The request's ``messages``.
        system: Anthropic's top-level ``system`` (a string or text blocks), if any.

    Returns:
        The texts joined with newlines.
    """
    texts = [content_text(system), *(message_text(message) for message in messages)]
    return "\n".join(text for text in texts if text)


def last_message_text(messages: list[object]) -> str:
    """Return the text of the last message (what scripted rules match against).

    Args:
        messages: The request's ``messages``.

    Returns:
        Its text, or ``""`` when there are no messages.
    """
    return message_text(messages[-1]) if messages else ""
