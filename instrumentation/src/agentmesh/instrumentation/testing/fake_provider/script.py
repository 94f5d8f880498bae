"""What the fake provider answers for a model: :class:`ModelScript` and its parts.

A script is immutable (a frozen pydantic model); replace it at runtime with
``FakeProvider.set_script``. Scripts load from JSON too (:func:`load_scripts`), where
sequences and rules are plain lists and tool-call arguments may be JSON objects::

    {
      "*": {"latency": 0.05},
      "gpt-4o-mini": {"rules": [["(?i)weather", "Sunny."]], "content": "Hello."},
      "claude-3-5-haiku-latest": {"error": {"status": 429, "retry_after": 1, "fail_times": 1}}
    }

The key ``"*"`` (:data:`DEFAULT_SCRIPT_KEY`) holds the script of every model without its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Literal, NamedTuple, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from agentmesh.core.errors import ProviderError
from agentmesh.instrumentation.testing.fake_provider.jsontypes import as_object

__all__ = [
    "DEFAULT_CONTENT_TEMPLATE",
    "DEFAULT_SCRIPT_KEY",
    "ErrorScript",
    "FinishReason",
    "ModelScript",
    "ReplySelection",
    "ResponseRule",
    "ScriptedReply",
    "ToolCallScript",
    "load_scripts",
    "parse_scripts",
]

DEFAULT_SCRIPT_KEY = "*"
"""Key of the default script (used for every model without a script of its own)."""

DEFAULT_CONTENT_TEMPLATE = "Fake reply from {model}."
"""Content of a reply whose script sets no content, formatted with the model name."""

FinishReason = Literal["stop", "length", "content_filter"]
"""Why a scripted reply ended, in OpenAI terms (mapped to Anthropic's stop reasons)."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ToolCallScript(BaseModel):
    """A tool (function) call the fake model makes.

    Attributes:
        name: The function name.
        arguments: The arguments as JSON text of an object; a mapping is accepted too and is
            serialized.
        id: The call id; generated when ``None``.
    """

    model_config = _FROZEN

    name: str = Field(min_length=1)
    arguments: str = "{}"
    id: str | None = None

    @field_validator("arguments", mode="before")
    @classmethod
    def _serialize_mapping(cls, value: object) -> object:
        obj = as_object(value)
        return json.dumps(obj) if obj is not None else value

    @field_validator("arguments")
    @classmethod
    def _check_json_object(cls, value: str) -> str:
        try:
            decoded: object = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"tool call arguments are not valid JSON: {exc}") from exc
        if as_object(decoded) is None:
            raise ValueError("tool call arguments must be a JSON object")
        return value

    def arguments_object(self) -> dict[str, object]:
        """Return the arguments decoded (always a JSON object).

        Returns:
            The decoded arguments.
        """
        return as_object(json.loads(self.arguments)) or {}


class ScriptedReply(BaseModel):
    """One reply: text and/or tool calls (an entry of a sequence, or a rule's answer).

    Attributes:
        content: The text; ``None`` means no text (useful with tool calls).
        tool_calls: Tool calls made by this reply.
    """

    model_config = _FROZEN

    content: str | None = None
    tool_calls: tuple[ToolCallScript, ...] = ()


class ResponseRule(BaseModel):
    """Answer ``content`` when ``pattern`` matches the text of the request's last message.

    In JSON (and at runtime) a rule may also be given as a ``[pattern, content]`` pair.

    Attributes:
        pattern: A regular expression, searched (``re.search``) in the last message's text.
        content: The reply: a text or a :class:`ScriptedReply`.
    """

    model_config = _FROZEN

    pattern: str
    content: str | ScriptedReply

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: object) -> object:
        if isinstance(value, tuple | list):
            pair = list(cast("tuple[object, ...] | list[object]", value))
            if len(pair) != 2:
                raise ValueError("a rule pair must be [pattern, content]")
            return {"pattern": pair[0], "content": pair[1]}
        return value

    @field_validator("pattern")
    @classmethod
    def _check_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    def matches(self, text: str) -> bool:
        """Tell whether the rule applies to a last message.

        Args:
            text: The text of the request's last message.

        Returns:
            Whether ``pattern`` is found in ``text``.
        """
        return re.search(self.pattern, text) is not None


class ErrorScript(BaseModel):
    """An error the fake provider answers with instead of a reply.

    Attributes:
        status: The HTTP status (429, 500, 503, 529…).
        message: The error message; defaults to one naming the status.
        type: The provider's error type; defaults to the provider's usual type for ``status``.
        retry_after: Seconds for the ``retry-after`` header. A 429 always carries the header
            (1 second when unset); other statuses only when this is set.
        fail_times: Fail only the first N calls of the model, then answer normally; ``None``
            fails every call.
    """

    model_config = _FROZEN

    status: int = Field(ge=400, le=599)
    message: str | None = None
    type: str | None = None
    retry_after: float | None = Field(default=None, ge=0)
    fail_times: int | None = Field(default=None, ge=1)

    def effective_message(self) -> str:
        """Return the message, or a default one naming the status.

        Returns:
            The error message.
        """
        if self.message is not None:
            return self.message
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Overloaded" if self.status == 529 else "Error"
        return f"Fake provider error {self.status}: {phrase}"

    def retry_after_header(self) -> str | None:
        """Return the ``retry-after`` header value, if the error carries one.

        Returns:
            Seconds as text (an integer when whole), or ``None``.
        """
        seconds = self.retry_after
        if seconds is None:
            if self.status != 429:
                return None
            seconds = 1.0
        return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))

    def applies_to(self, call_index: int) -> bool:
        """Tell whether the error answers a call.

        Args:
            call_index: 0-based index of the call among the model's calls.

        Returns:
            Whether this call fails.
        """
        return self.fail_times is None or call_index < self.fail_times


class ReplySelection(NamedTuple):
    """The reply a script chose for a call, and whether it took a sequence turn."""

    reply: ScriptedReply
    from_sequence: bool


class ModelScript(BaseModel):
    """How the fake provider answers one model.

    The reply's text is chosen in this order: the first of ``rules`` whose pattern matches
    the last message; else the next entry of ``sequence`` (cycling; only calls answered from
    the sequence advance it); else ``content``; else ``"Fake reply from {model}."`` (no text
    at all when the script makes tool calls). ``tool_calls`` go with every reply given as
    plain text; a :class:`ScriptedReply` carries its own.

    Attributes:
        content: Fixed reply text.
        sequence: Replies used in turn, one per call.
        rules: ``(regex, reply)`` rules on the last message's text; first match wins.
        tool_calls: Tool calls made with every plain-text reply.
        latency: Seconds to wait before answering (or failing).
        chunk_delay: Seconds between streamed chunks.
        chunk_size: Characters per streamed text chunk; ``None`` streams word by word.
        input_tokens: Prompt tokens reported (OpenAI's count, cached tokens included; the
            Anthropic route reports ``input_tokens - cached_tokens - cache_creation_tokens``
            as ``input_tokens``). Default: estimated from the prompt, about 4 characters per
            token, at least 1.
        output_tokens: Completion tokens reported (reasoning included). Default: estimated
            from the reply text and tool calls, plus ``reasoning_tokens``.
        cached_tokens: Prompt tokens read from cache.
        cache_creation_tokens: Prompt tokens written to cache (Anthropic only).
        reasoning_tokens: Reasoning tokens (OpenAI's ``completion_tokens_details``).
        finish_reason: Why the reply ends, unless it makes tool calls.
        error: Fail with this error (maybe only the first calls).
        hang: Never answer: wait until the client goes away or the server stops.
    """

    model_config = _FROZEN

    content: str | None = None
    sequence: tuple[str | ScriptedReply, ...] = ()
    rules: tuple[ResponseRule, ...] = ()
    tool_calls: tuple[ToolCallScript, ...] = ()
    latency: float = Field(default=0.0, ge=0)
    chunk_delay: float = Field(default=0.0, ge=0)
    chunk_size: int | None = Field(default=None, ge=1)
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    cache_creation_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    finish_reason: FinishReason = "stop"
    error: ErrorScript | None = None
    hang: bool = False

    def select_reply(self, model: str, last_message: str, sequence_position: int) -> ReplySelection:
        """Choose the reply to a call.

        Args:
            model: The requested model (for the default text).
            last_message: The text of the request's last message (for ``rules``).
            sequence_position: How many calls were answered from ``sequence`` so far.

        Returns:
            The reply, and whether it was taken from ``sequence``.
        """
        for rule in self.rules:
            if rule.matches(last_message):
                return ReplySelection(self._as_reply(rule.content), from_sequence=False)
        if self.sequence:
            entry = self.sequence[sequence_position % len(self.sequence)]
            return ReplySelection(self._as_reply(entry), from_sequence=True)
        if self.content is not None or self.tool_calls:
            return ReplySelection(self._as_reply(self.content), from_sequence=False)
        return ReplySelection(
            ScriptedReply(content=DEFAULT_CONTENT_TEMPLATE.format(model=model)),
            from_sequence=False,
        )

    def _as_reply(self, entry: str | ScriptedReply | None) -> ScriptedReply:
        if isinstance(entry, ScriptedReply):
            return entry
        return ScriptedReply(content=entry, tool_calls=self.tool_calls)


_SCRIPTS_ADAPTER: TypeAdapter[dict[str, ModelScript]] = TypeAdapter(dict[str, ModelScript])


def parse_scripts(data: Mapping[str, object]) -> dict[str, ModelScript]:
    """Validate a mapping of model name to script (as decoded from JSON).

    Args:
        data: Model name to script fields; the key ``"*"`` is the default script.

    Returns:
        Model name to :class:`ModelScript`.

    Raises:
        ProviderError: A script is invalid; the message says which field and why.
    """
    try:
        return _SCRIPTS_ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        raise ProviderError(f"invalid fake provider scripts: {exc}") from exc


def load_scripts(path: str | Path) -> dict[str, ModelScript]:
    """Load scripts from a JSON file mapping model name to script.

    Args:
        path: The JSON file; the key ``"*"`` is the default script.

    Returns:
        Model name to :class:`ModelScript`.

    Raises:
        ProviderError: The file cannot be read, is not a JSON object, or a script is invalid.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProviderError(f"cannot read fake provider scripts {file}: {exc}") from exc
    try:
        decoded: object = json.loads(text)
    except ValueError as exc:
        raise ProviderError(f"fake provider scripts {file} are not valid JSON: {exc}") from exc
    obj = as_object(decoded)
    if obj is None:
        raise ProviderError(
            f"fake provider scripts {file} must be a JSON object of model -> script"
        )
    return parse_scripts(obj)
