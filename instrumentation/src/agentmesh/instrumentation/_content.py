"""Opt-in capture of prompts and completions as GenAI "parts" JSON, capped, images left out.

Off by default. The first of these that is given decides: the instrumentor's
``capture_content`` argument, then ``AGENTMESH_CAPTURE_CONTENT`` (set to true or to false),
then ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (on when ``true``, any case). An
explicit ``AGENTMESH_CAPTURE_CONTENT=false`` therefore keeps content out even when the
OpenTelemetry variable says ``true``. The decision is taken once, when instrumenting: a call
pays one boolean check when capture is off.

Messages are converted to the GenAI conventions' shape (``{"role", "parts": [...]}``) from the
OpenAI chat, OpenAI Responses and Anthropic request and response formats. Inline images
(``data:`` URLs, Anthropic base64 ``image`` blocks) and any base64 blob over
:data:`BLOB_THRESHOLD` characters are replaced by a short placeholder such as
``"[image: image/png, 48213 bytes]"`` while the parts are built, before anything is
serialised. Each attribute is cut at :data:`CONTENT_CAP_BYTES` bytes of UTF-8 and the span then
carries ``agentmesh.content.truncated=true``.

Example:
    >>> system, messages = openai_chat_input(
    ...     [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    ... )
    >>> system
    [{'type': 'text', 'content': 'Be terse.'}]
    >>> capped_json(messages)
    ('[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]', False)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Final, cast

from opentelemetry.util.types import AttributeValue

from agentmesh.core.errors import ConfigError
from agentmesh.core.semconv import AGENTMESH_CONTENT_TRUNCATED
from agentmesh.instrumentation._failopen import safe_call

__all__ = [
    "BLOB_THRESHOLD",
    "CAPTURE_ENV_VAR",
    "CONTENT_CAP_BYTES",
    "Message",
    "Part",
    "anthropic_input",
    "anthropic_output",
    "capped_json",
    "capture_enabled",
    "openai_chat_input",
    "openai_chat_output_message",
    "put_json",
    "responses_input",
    "responses_output",
    "tool_call_part",
]

CONTENT_CAP_BYTES: Final = 16 * 1024
"""Largest size, in bytes of UTF-8, of one captured content attribute."""

BLOB_THRESHOLD: Final = 1024
"""Base64-looking strings longer than this many characters are replaced by a placeholder."""

CAPTURE_ENV_VAR: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The OpenTelemetry GenAI switch for content capture (``true`` turns it on)."""

Part = dict[str, object]
"""One part of a message: ``{"type": "text", "content": "..."}``, a tool call, a placeholder."""

Message = dict[str, object]
"""One message: ``{"role": ..., "parts": [...]}`` (output messages add ``finish_reason``)."""

_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-\s]+")
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?,", re.ASCII)


def capture_enabled(kwargs: Mapping[str, object]) -> bool:
    """Decide, once per instrumentation, whether content is captured.

    The instrumentor's argument wins, then ``AGENTMESH_CAPTURE_CONTENT`` when it is set (true
    or false), then ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``; off otherwise.

    Args:
        kwargs: The keyword arguments of ``_instrument``; ``capture_content`` (a bool) wins.

    Returns:
        Whether prompts and completions are recorded.
    """
    explicit = kwargs.get("capture_content")
    if isinstance(explicit, bool):
        return explicit
    own = safe_call("content.settings", _own_setting)
    if own is not None:
        return own
    return os.environ.get(CAPTURE_ENV_VAR, "").strip().lower() == "true"


def _own_setting() -> bool | None:
    """``AGENTMESH_CAPTURE_CONTENT`` when it is set, ``None`` when it is not.

    When the settings do not load (a wrong value, reported where the provider is built), a
    set variable still keeps the OpenTelemetry one from switching capture on: off.
    """
    from agentmesh.instrumentation.settings import InstrumentationSettings

    try:
        settings = InstrumentationSettings.load()
    except ConfigError:
        name = InstrumentationSettings.env_var("capture_content")
        return False if any(key.upper() == name for key in os.environ) else None
    if "capture_content" in settings.model_fields_set:
        return settings.capture_content
    return None


def capped_json(value: object, cap: int = CONTENT_CAP_BYTES) -> tuple[str, bool]:
    """Serialise to compact JSON and cut to ``cap`` bytes of UTF-8.

    Args:
        value: Parts or messages (images already replaced).
        cap: Largest size in bytes.

    Returns:
        The JSON text (maybe cut) and whether it was cut.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if len(text) <= cap // 4:  # cannot exceed the cap even at 4 bytes per character
        return text, False
    encoded = text.encode("utf-8")
    if len(encoded) <= cap:
        return text, False
    return encoded[:cap].decode("utf-8", errors="ignore"), True


def put_json(attributes: dict[str, AttributeValue], key: str, value: object) -> None:
    """Set ``key`` to the capped JSON of ``value``; mark the attributes truncated when cut.

    Args:
        attributes: The attributes to extend.
        key: The attribute name.
        value: Parts or messages.
    """
    text, truncated = capped_json(value)
    attributes[key] = text
    if truncated:
        attributes[AGENTMESH_CONTENT_TRUNCATED] = True


# --- reading request and response objects -------------------------------------------------


def _get(obj: object, key: str) -> object:
    if isinstance(obj, Mapping):
        return cast("Mapping[str, object]", obj).get(key)
    return getattr(obj, key, None)


def _items(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return list(cast("list[object] | tuple[object, ...]", value))
    return []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _base64_size(data: str) -> int:
    stripped = data.rstrip("=")
    return len(stripped) * 3 // 4


def _image_placeholder(mime: str | None, data: str) -> Part:
    return {
        "type": "blob",
        "modality": "image",
        "content": f"[image: {mime or 'unknown'}, {_base64_size(data)} bytes]",
    }


def _url_part(url: str) -> Part:
    match = _DATA_URL.match(url)
    if match is None:
        return {"type": "uri", "modality": "image", "uri": scrub(url)}
    return _image_placeholder(match.group(1), url[match.end() :])


def scrub(value: object, depth: int = 0) -> object:
    """Replace base64 blobs and ``data:`` URLs in a JSON-like value by placeholders.

    Args:
        value: Any value read from a request or response.
        depth: Nesting depth so far (deeper values are summarised).

    Returns:
        The value, with large blobs replaced.
    """
    if isinstance(value, str):
        if len(value) > BLOB_THRESHOLD:
            match = _DATA_URL.match(value)
            if match is not None:
                return _image_placeholder(match.group(1), value[match.end() :])["content"]
            if _BASE64.fullmatch(value, 0, min(len(value), 4096)) and " " not in value[:200]:
                return f"[blob: {_base64_size(value)} bytes]"
        return value
    if depth > 8:
        return "[...]"
    if isinstance(value, Mapping):
        mapping = cast("Mapping[object, object]", value)
        return {str(k): scrub(v, depth + 1) for k, v in mapping.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, depth + 1) for v in cast("list[object] | tuple[object, ...]", value)]
    if value is None or isinstance(value, bool | int | float):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return scrub(dump(), depth + 1)
    return str(value)


def _arguments(raw: object) -> object:
    if isinstance(raw, str):
        try:
            return scrub(json.loads(raw))
        except ValueError:
            return scrub(raw)
    return scrub(raw)


def tool_call_part(call_id: object, name: object, arguments: object) -> Part:
    """Return a ``tool_call`` part.

    Args:
        call_id: Id of the call.
        name: Tool name.
        arguments: Arguments, as JSON text or an object.

    Returns:
        The part.
    """
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": _arguments(arguments)}


# --- OpenAI chat completions ----------------------------------------------------------------


def _openai_parts(content: object) -> list[Part]:
    text = _text(content)
    if text is not None:
        return [{"type": "text", "content": text}]
    parts: list[Part] = []
    for item in _items(content):
        kind = _get(item, "type")
        if kind == "text":
            parts.append({"type": "text", "content": _get(item, "text")})
        elif kind == "image_url":
            url = _text(_get(_get(item, "image_url"), "url")) or ""
            parts.append(_url_part(url))
        else:
            parts.append({"type": str(kind), "content": scrub(item)})
    return parts


def openai_chat_input(messages: object) -> tuple[list[Part], list[Message]]:
    """Convert chat-completions ``messages`` to system instructions and input messages.

    Args:
        messages: The request's messages.

    Returns:
        The system (and developer) instruction parts, and the other messages.
    """
    system: list[Part] = []
    converted: list[Message] = []
    for message in _items(messages):
        role = _get(message, "role")
        parts = _openai_parts(_get(message, "content"))
        if role in ("system", "developer"):
            system.extend(parts)
            continue
        for call in _items(_get(message, "tool_calls")):
            function = _get(call, "function")
            parts.append(
                tool_call_part(
                    _get(call, "id"), _get(function, "name"), _get(function, "arguments")
                )
            )
        if role == "tool":
            response: object = parts[0].get("content") if len(parts) == 1 else parts
            parts = [
                {
                    "type": "tool_call_response",
                    "id": _get(message, "tool_call_id"),
                    "response": response,
                }
            ]
        converted.append({"role": role, "parts": parts})
    return system, converted


def openai_chat_output_message(
    text: str | None, tool_calls: list[Part], finish_reason: str | None
) -> Message:
    """Build one output message.

    Args:
        text: The reply text, if any.
        tool_calls: ``tool_call`` parts.
        finish_reason: Why the choice stopped.

    Returns:
        The message.
    """
    parts: list[Part] = [{"type": "text", "content": text}] if text else []
    parts.extend(tool_calls)
    return {"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""}


# --- OpenAI Responses -----------------------------------------------------------------------


def _responses_parts(content: object) -> list[Part]:
    text = _text(content)
    if text is not None:
        return [{"type": "text", "content": text}]
    parts: list[Part] = []
    for item in _items(content):
        kind = _get(item, "type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "content": _get(item, "text")})
        elif kind == "input_image":
            url = _text(_get(item, "image_url"))
            if url is not None:
                parts.append(_url_part(url))
            else:
                parts.append({"type": "blob", "modality": "image", "content": scrub(item)})
        else:
            parts.append({"type": str(kind), "content": scrub(item)})
    return parts


def _responses_item(item: object) -> Message | None:
    kind = _get(item, "type")
    role = _get(item, "role")
    if role is not None and kind in (None, "message"):
        return {"role": role, "parts": _responses_parts(_get(item, "content"))}
    if kind == "function_call":
        part = tool_call_part(_get(item, "call_id"), _get(item, "name"), _get(item, "arguments"))
        return {"role": "assistant", "parts": [part]}
    if kind == "function_call_output":
        response = scrub(_get(item, "output"))
        part: Part = {
            "type": "tool_call_response",
            "id": _get(item, "call_id"),
            "response": response,
        }
        return {"role": "tool", "parts": [part]}
    if kind == "reasoning":
        return None
    return {"role": "assistant", "parts": [{"type": str(kind), "content": scrub(item)}]}


def responses_input(instructions: object, items: object) -> tuple[list[Part], list[Message]]:
    """Convert a Responses request's ``instructions`` and ``input``.

    Args:
        instructions: The ``instructions`` argument.
        items: The ``input`` argument (text or items).

    Returns:
        The system instruction parts, and the input messages.
    """
    system: list[Part] = []
    text = _text(instructions)
    if text:
        system.append({"type": "text", "content": text})
    single = _text(items)
    if single is not None:
        return system, [{"role": "user", "parts": [{"type": "text", "content": single}]}]
    converted: list[Message] = []
    for item in _items(items):
        message = _responses_item(item)
        if message is None:
            continue
        if message["role"] in ("system", "developer"):
            system.extend(cast("list[Part]", message["parts"]))
        else:
            converted.append(message)
    return system, converted


def responses_output(output: object, finish_reason: str | None) -> list[Message]:
    """Convert a ``Response.output`` to one assistant output message.

    Args:
        output: The response's output items.
        finish_reason: Why the response stopped.

    Returns:
        The output messages (empty when the output is).
    """
    parts: list[Part] = []
    for item in _items(output):
        message = _responses_item(item)
        if message is not None:
            parts.extend(cast("list[Part]", message["parts"]))
    if not parts:
        return []
    return [{"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""}]


# --- Anthropic messages ---------------------------------------------------------------------


def _anthropic_parts(content: object) -> list[Part]:
    text = _text(content)
    if text is not None:
        return [{"type": "text", "content": text}]
    parts: list[Part] = []
    for block in _items(content):
        kind = _get(block, "type")
        if kind == "text":
            parts.append({"type": "text", "content": _get(block, "text")})
        elif kind == "image":
            source = _get(block, "source")
            data = _text(_get(source, "data"))
            if data is not None:
                parts.append(_image_placeholder(_text(_get(source, "media_type")), data))
            else:
                parts.append({"type": "uri", "modality": "image", "uri": _get(source, "url")})
        elif kind == "tool_use":
            parts.append(
                tool_call_part(_get(block, "id"), _get(block, "name"), _get(block, "input"))
            )
        elif kind == "tool_result":
            inner = _get(block, "content")
            response: object = _text(inner)
            if response is None:
                response = _anthropic_parts(inner)
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": _get(block, "tool_use_id"),
                    "response": response,
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            parts.append({"type": "reasoning", "content": _get(block, "thinking")})
        else:
            parts.append({"type": str(kind), "content": scrub(block)})
    return parts


def anthropic_input(system: object, messages: object) -> tuple[list[Part], list[Message]]:
    """Convert an Anthropic request's ``system`` and ``messages``.

    Args:
        system: The ``system`` argument (text or text blocks).
        messages: The ``messages`` argument.

    Returns:
        The system instruction parts, and the input messages.
    """
    instructions = _anthropic_parts(system) if system is not None else []
    converted: list[Message] = [
        {"role": _get(m, "role"), "parts": _anthropic_parts(_get(m, "content"))}
        for m in _items(messages)
    ]
    return instructions, converted


def anthropic_output(content: object, stop_reason: str | None) -> list[Message]:
    """Convert an Anthropic response's content blocks to one output message.

    Args:
        content: The ``Message.content`` blocks.
        stop_reason: The ``stop_reason``.

    Returns:
        The output messages.
    """
    return [
        {
            "role": "assistant",
            "parts": _anthropic_parts(content),
            "finish_reason": stop_reason or "",
        }
    ]
