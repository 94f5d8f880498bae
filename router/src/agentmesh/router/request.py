"""What a routing policy is asked: the call's provider, model, task class and prompt features.

Features are computed in-process from the call's keyword arguments, cheaply (one pass over the
messages, no tokenizer) and without keeping any content: only counts and flags leave this
module. Both the OpenAI shapes (``messages``, Responses ``input``, ``tools``,
``response_format``, ``image_url`` parts) and the Anthropic ones (``system``, ``image``
blocks) are understood.

Example:
    >>> f = prompt_features({"messages": [{"role": "user", "content": "Hi"}], "tools": [{}]})
    >>> f.message_count, f.total_chars, f.has_tools, f.has_images, f.wants_json
    (1, 2, True, False, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, cast

__all__ = [
    "EMPTY_FEATURES",
    "PromptFeatures",
    "RouteMode",
    "RouteRequest",
    "prompt_features",
    "prompt_text",
]

RouteMode = Literal["off", "shadow", "enforce"]
"""``off``: no decision; ``shadow``: decided and recorded only; ``enforce``: applied."""

_IMAGE_PARTS: Final = frozenset({"image_url", "image", "input_image"})


@dataclass(frozen=True, slots=True)
class PromptFeatures:
    """Cheap, content-free features of a prompt.

    Attributes:
        message_count: Messages in the request (a string prompt counts as one).
        total_chars: Characters of text across messages and the system prompt.
        has_tools: Whether the request offers tools.
        has_images: Whether a message carries an image.
        wants_json: Whether the request asks for JSON output (``response_format`` /
            ``text.format`` of type ``json_object`` or ``json_schema``).
    """

    message_count: int = 0
    total_chars: int = 0
    has_tools: bool = False
    has_images: bool = False
    wants_json: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        """Return the features by name (for the decision log).

        Returns:
            A new dict.
        """
        return {
            "message_count": self.message_count,
            "total_chars": self.total_chars,
            "has_tools": self.has_tools,
            "has_images": self.has_images,
            "wants_json": self.wants_json,
        }


EMPTY_FEATURES: Final = PromptFeatures()
"""Features of a request that says nothing readable."""


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """One provider call, as a routing policy sees it.

    Attributes:
        provider: ``openai``, ``anthropic`` or ``openrouter``: where the SDK sends the call.
        requested_model: The model the application asked for.
        task_class: The task class carried in baggage, if any.
        features: The prompt's features.
        mode: The routing mode the decision is made in (recorded on the decision).
        open_circuits: Models whose circuit breaker is open (the collector saw them failing):
            a policy chooses another candidate while they cool down.
        text: The tail of the prompt's text, when the policy reads it (learned policies find
            the prompt's cluster from it); kept in memory only, never recorded.
        budget_usd: Most the call may cost, when the run has a budget.
        table_version: Version of the route table whose mode and breakers the call is routed
            under (0: the bundled defaults); decisions record it.
    """

    provider: str
    requested_model: str
    task_class: str | None = None
    features: PromptFeatures = EMPTY_FEATURES
    mode: RouteMode = "shadow"
    open_circuits: frozenset[str] = frozenset()
    text: str = ""
    budget_usd: float | None = None
    table_version: int = 0


def _part_len(part: object) -> tuple[int, bool]:
    if isinstance(part, str):
        return len(part), False
    if not isinstance(part, Mapping):
        return 0, False
    typed = cast("Mapping[str, object]", part)
    text = typed.get("text")
    return (len(text) if isinstance(text, str) else 0), typed.get("type") in _IMAGE_PARTS


def _text_len(content: object) -> tuple[int, bool]:
    """Characters of text in a message content, and whether it holds an image."""
    if type(content) is str:  # the common case, checked first: this runs on every call
        return len(content), False
    if isinstance(content, str):
        return len(content), False
    if not isinstance(content, list | tuple | Sequence) or isinstance(content, bytes | bytearray):
        return 0, False
    chars = 0
    image = False
    for part in cast("Sequence[object]", content):
        n, has_image = _part_len(part)
        chars += n
        image = image or has_image
    return chars, image


def _wants_json(kwargs: Mapping[str, object]) -> bool:
    fmt = kwargs.get("response_format")
    if fmt is None:
        text = kwargs.get("text")
        if isinstance(text, Mapping):
            fmt = cast("Mapping[str, object]", text).get("format")
    if isinstance(fmt, Mapping):
        kind = cast("Mapping[str, object]", fmt).get("type")
        return kind in ("json_object", "json_schema")
    # A pydantic class passed to ``parse()`` means structured output too.
    return isinstance(fmt, type)


def prompt_features(kwargs: Mapping[str, object]) -> PromptFeatures:
    """Compute a call's prompt features from the SDK method's keyword arguments.

    Args:
        kwargs: The keyword arguments of ``chat.completions.create``, ``responses.create``,
            ``messages.create``…

    Returns:
        The features (never raises on odd shapes: what is not understood counts as nothing).
    """
    messages = kwargs.get("messages")
    if messages is None:
        messages = kwargs.get("input")
    count = 0
    chars = 0
    images = False
    if isinstance(messages, str):
        count, chars = 1, len(messages)
    elif type(messages) is list or (
        isinstance(messages, Sequence) and not isinstance(messages, bytes | bytearray)
    ):
        for message in cast("Sequence[object]", messages):
            count += 1
            if type(message) is dict or isinstance(message, Mapping):
                n, image = _text_len(cast("Mapping[str, object]", message).get("content"))
                chars += n
                images = images or image
    system = kwargs.get("system") or kwargs.get("instructions")
    if system is not None:
        chars += _text_len(system)[0]
    return PromptFeatures(
        message_count=count,
        total_chars=chars,
        has_tools=bool(kwargs.get("tools")),
        has_images=images,
        wants_json=_wants_json(kwargs),
    )


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        parts: list[str] = []
        for part in cast("Sequence[object]", content):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                text = cast("Mapping[str, object]", part).get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(parts)
    return ""


def prompt_text(kwargs: Mapping[str, object], tail_chars: int = 400) -> str:
    """Return the tail of the call's last user message (where the question usually is).

    Used by learned policies to place the prompt in a cluster; the text never leaves the
    process and is not recorded.

    Args:
        kwargs: The keyword arguments of the SDK call.
        tail_chars: Characters kept from the end.

    Returns:
        The text (empty when the call has no readable user message).

    Example:
        >>> prompt_text({"messages": [{"role": "user", "content": "Why is the sky blue?"}]})
        'Why is the sky blue?'
    """
    messages = kwargs.get("messages")
    if messages is None:
        messages = kwargs.get("input")
    if isinstance(messages, str):
        return messages[-tail_chars:]
    if not isinstance(messages, list | tuple):
        return ""
    for message in reversed(cast("Sequence[object]", messages)):
        if isinstance(message, Mapping):
            typed = cast("Mapping[str, object]", message)
            if typed.get("role", "user") == "user":
                return _content_text(typed.get("content"))[-tail_chars:]
    return ""
