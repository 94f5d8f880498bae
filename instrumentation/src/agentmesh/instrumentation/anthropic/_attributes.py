"""Span attributes of an Anthropic messages call: from the request, and from the response.

Duck-typed, so a field an SDK version lacks is left out; nothing here imports ``anthropic``.
Anthropic reports ``input_tokens`` without the cached part: the span's
``gen_ai.usage.input_tokens`` is ``input_tokens + cache_read_input_tokens +
cache_creation_input_tokens`` (the GenAI conventions count all input), the cache reads are
``gen_ai.usage.cache_read.input_tokens`` and the cache writes
``gen_ai.usage.cache_creation.input_tokens`` (when not zero); each part is priced at its own
rate (cache writes above the input price).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_K,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    Operation,
    Provider,
)
from agentmesh.instrumentation import _content
from agentmesh.instrumentation.openai import _pricing
from agentmesh.instrumentation.openai._call import CallRequest
from agentmesh.instrumentation.openai._fields import (
    attr,
    base_template,
    copy_numbers,
    int_attr,
    integer,
    model_name,
    server,
    str_attr,
    with_current_run_id,
)
from agentmesh.instrumentation.openai._request_templates import RequestTemplate, RequestTemplates

__all__ = ["MessageSummary", "read_request"]

_SAMPLING: Final = (
    (GEN_AI_REQUEST_TEMPERATURE, "temperature"),
    (GEN_AI_REQUEST_TOP_P, "top_p"),
    (GEN_AI_REQUEST_TOP_K, "top_k"),
)


def read_request(
    instance: object, kwargs: Mapping[str, object], capture: bool = False
) -> CallRequest:
    """Read the request attributes of ``messages.create`` (or ``stream`` / ``parse``).

    Args:
        instance: The ``Messages`` resource (its client gives the base URL).
        kwargs: The call's keyword arguments.
        capture: Record ``system`` and ``messages`` (content capture).

    Returns:
        The request summary, with the attributes to set at span start.
    """
    template = _build_template(instance, kwargs) if capture else _TEMPLATES.get(instance, kwargs)
    model, stream, shared, name = template
    attributes = with_current_run_id(shared)
    if capture:
        system, messages = _content.anthropic_input(kwargs.get("system"), kwargs.get("messages"))
        if system:
            _content.put_json(attributes, GEN_AI_SYSTEM_INSTRUCTIONS, system)
        _content.put_json(attributes, GEN_AI_INPUT_MESSAGES, messages)
    return CallRequest(model, stream, attributes, name)


def _build_template(instance: object, kwargs: Mapping[str, object]) -> RequestTemplate:
    model = model_name(kwargs)
    stream = kwargs.get("stream") is True
    host, port = server(instance)
    attributes = dict(base_template(Operation.CHAT, Provider.ANTHROPIC, model, host, port))
    attributes[GEN_AI_REQUEST_STREAM] = stream
    max_tokens = integer(kwargs.get("max_tokens"))
    if max_tokens is not None:
        attributes[GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    copy_numbers(attributes, kwargs, _SAMPLING)
    return model, stream, attributes, f"{Operation.CHAT} {model}"


def _key_of(kwargs: Mapping[str, object]) -> tuple[object, ...] | None:
    get = kwargs.get
    temperature = get("temperature")
    top_p = get("top_p")
    top_k = get("top_k")
    max_tokens = get("max_tokens")
    if (
        type(temperature) is bool
        or type(top_p) is bool
        or type(top_k) is bool
        or type(max_tokens) is bool
    ):
        return None  # True == 1 in a key: such calls are rare, read them in full
    return (get("model"), get("stream") is True, temperature, top_p, top_k, max_tokens)


_TEMPLATES: Final = RequestTemplates(_key_of, _build_template)


@dataclass(slots=True)
class _Block:
    kind: str
    text: list[str] = field(default_factory=list[str])
    tool_id: object = None
    name: object = None


@dataclass(slots=True)
class MessageSummary:
    """What a ``Message`` (or the events of its stream) said.

    Attributes:
        model: Model that answered.
        response_id: The message id.
        stop_reason: Why the message stopped.
        uncached_input_tokens: ``usage.input_tokens`` (Anthropic's count, cache excluded).
        cache_read_tokens: ``usage.cache_read_input_tokens``.
        cache_creation_tokens: ``usage.cache_creation_input_tokens``.
        output_tokens: Output tokens.
        capture: Collect the content blocks (content capture).
    """

    model: str | None = None
    response_id: str | None = None
    stop_reason: str | None = None
    uncached_input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    output_tokens: int | None = None
    capture: bool = False
    _content: object = None
    _blocks: dict[int, _Block] = field(default_factory=dict[int, _Block])

    @property
    def input_tokens(self) -> int | None:
        """All input tokens: uncached, read from cache and written to cache."""
        if self.uncached_input_tokens is None:
            return None
        return (
            self.uncached_input_tokens
            + (self.cache_read_tokens or 0)
            + (self.cache_creation_tokens or 0)
        )

    def absorb(self, obj: object) -> None:
        """Take what a ``Message`` or a raw stream event carries.

        Args:
            obj: A ``Message`` or a ``RawMessageStreamEvent``.
        """
        kind = str_attr(obj, "type")
        if kind == "message":
            self._absorb_message(obj)
            if self.capture:
                self._content = attr(obj, "content")
        elif kind == "message_start":
            self._absorb_message(attr(obj, "message"))
        elif kind == "message_delta":
            reason = str_attr(attr(obj, "delta"), "stop_reason")
            if reason:
                self.stop_reason = reason
            self._absorb_usage(attr(obj, "usage"))
        elif self.capture and kind is not None:
            self._capture_event(kind, obj)

    def _absorb_message(self, message: object) -> None:
        self.model = str_attr(message, "model") or self.model
        self.response_id = str_attr(message, "id") or self.response_id
        self.stop_reason = str_attr(message, "stop_reason") or self.stop_reason
        self._absorb_usage(attr(message, "usage"))

    def _absorb_usage(self, usage: object) -> None:
        if usage is None:
            return
        uncached = int_attr(usage, "input_tokens")
        if uncached is not None:
            self.uncached_input_tokens = uncached
        read = int_attr(usage, "cache_read_input_tokens")
        if read is not None:
            self.cache_read_tokens = read
        created = int_attr(usage, "cache_creation_input_tokens")
        if created is not None:
            self.cache_creation_tokens = created
        output = int_attr(usage, "output_tokens")
        if output is not None:
            self.output_tokens = output

    def _capture_event(self, kind: str, event: object) -> None:
        index = int_attr(event, "index")
        if index is None:
            return
        if kind == "content_block_start":
            block = attr(event, "content_block")
            state = _Block(str_attr(block, "type") or "text")
            state.tool_id = attr(block, "id")
            state.name = attr(block, "name")
            text = str_attr(block, "text")
            if text:
                state.text.append(text)
            self._blocks[index] = state
        elif kind == "content_block_delta":
            state = self._blocks.setdefault(index, _Block("text"))
            delta = attr(event, "delta")
            piece = (
                str_attr(delta, "text")
                or str_attr(delta, "partial_json")
                or str_attr(delta, "thinking")
            )
            if piece:
                state.text.append(piece)

    def attributes(self, request_model: str) -> dict[str, AttributeValue]:
        """Attributes to set when the call ends.

        Args:
            request_model: The model the call was sent to, the application's unless routing
                replaced it (priced when the response names none known).

        Returns:
            The response attributes; absent values are left out.
        """
        attributes: dict[str, AttributeValue] = {}
        if self.model:
            attributes[GEN_AI_RESPONSE_MODEL] = self.model
        if self.response_id:
            attributes[GEN_AI_RESPONSE_ID] = self.response_id
        if self.stop_reason:
            attributes[GEN_AI_RESPONSE_FINISH_REASONS] = (self.stop_reason,)
        total = self.input_tokens
        if total is not None:
            attributes[GEN_AI_USAGE_INPUT_TOKENS] = total
        if self.cache_read_tokens:
            attributes[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_tokens
        if self.cache_creation_tokens:
            attributes[GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = self.cache_creation_tokens
        if self.output_tokens is not None:
            attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        if total is not None and self.output_tokens is not None:
            cost = _pricing.cost_usd(
                (self.model, request_model),
                total,
                self.output_tokens,
                self.cache_read_tokens or 0,
                self.cache_creation_tokens or 0,
            )
            if cost is not None:
                attributes[AGENTMESH_COST_USD] = cost
        return attributes

    def output_messages(self) -> list[_content.Message]:
        """The message as GenAI output messages (collected only with ``capture``).

        Returns:
            One assistant message.
        """
        if self._content is not None:
            return _content.anthropic_output(self._content, self.stop_reason)
        if not self._blocks:
            return []
        blocks: list[dict[str, object]] = []
        for _, state in sorted(self._blocks.items()):
            joined = "".join(state.text)
            if state.kind == "tool_use":
                blocks.append(
                    {"type": "tool_use", "id": state.tool_id, "name": state.name, "input": joined}
                )
            elif state.kind == "thinking":
                blocks.append({"type": "thinking", "thinking": joined})
            else:
                blocks.append({"type": "text", "text": joined})
        return _content.anthropic_output(blocks, self.stop_reason)
