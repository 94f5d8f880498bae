"""Span attributes of a chat-completions call: from the request, and from the response.

Everything here reads objects by duck typing (``getattr`` with type checks), so a field a
given SDK version lacks is simply left out. Nothing here imports ``openai``.

For OpenRouter, the response's ``model`` is the upstream model that answered and its
``provider`` field (an OpenRouter addition) the upstream provider. Cached and reasoning token
counts are left out when zero (every attribute costs the span processor time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, cast

from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    AGENTMESH_UPSTREAM_PROVIDER,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    Operation,
    Provider,
)
from agentmesh.instrumentation import _content
from agentmesh.instrumentation.openai import _pricing
from agentmesh.instrumentation.openai._call import CallRequest
from agentmesh.instrumentation.openai._estimate import prompt_chars, wants_usage
from agentmesh.instrumentation.openai._fields import (
    attr,
    base_template,
    copy_numbers,
    int_attr,
    integer,
    items,
    model_name,
    server,
    span_name,
    str_attr,
    with_current_run_id,
)
from agentmesh.instrumentation.openai._request_templates import RequestTemplate, RequestTemplates

__all__ = [
    "SAMPLING",
    "ChatRequest",
    "ResponseSummary",
    "cost_usd",
    "provider_of",
    "read_request",
    "response_attributes",
]

ChatRequest = CallRequest
"""The request summary of a chat-completions call."""

SAMPLING: Final = ((GEN_AI_REQUEST_TEMPERATURE, "temperature"), (GEN_AI_REQUEST_TOP_P, "top_p"))
"""The sampling arguments of OpenAI's APIs (Chat Completions and Responses) and their keys."""


# Typed factories: calling an alias such as ``dict[int, str]()`` costs ten times ``{}``.
def _texts() -> list[str]:
    return []


def _tool_calls() -> dict[int, list[object]]:
    return {}


def _reasons() -> dict[int, str]:
    return {}


@dataclass(slots=True)
class _Choice:
    text: list[str] = field(default_factory=_texts)
    tool_calls: dict[int, list[object]] = field(default_factory=_tool_calls)


def _choices() -> dict[int, _Choice]:
    return {}


@dataclass(slots=True)
class ResponseSummary:
    """What a chat completion (or the chunks of a stream) said about itself.

    Attributes:
        model: Model that answered (for OpenRouter: the upstream model).
        response_id: Provider's id of the response.
        finish_reasons: Why each choice stopped, by choice index.
        input_tokens: Prompt tokens.
        output_tokens: Completion tokens.
        cached_input_tokens: Prompt tokens read from cache.
        reasoning_tokens: Completion tokens spent on reasoning.
        upstream_provider: The provider OpenRouter forwarded the call to.
        capture: Collect the completion's text and tool calls (content capture).
        content_chunks: Streamed chunks that carried a content or tool-call delta (the
            estimate of output tokens when the stream reports no usage).
    """

    model: str | None = None
    response_id: str | None = None
    finish_reasons: dict[int, str] = field(default_factory=_reasons)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    upstream_provider: str | None = None
    capture: bool = False
    content_chunks: int = 0
    _choices: dict[int, _Choice] = field(default_factory=_choices)
    _outputs: list[_content.Message] | None = None

    def absorb(self, obj: object) -> None:
        """Take what a completion or a streamed chunk carries (later values win).

        Args:
            obj: A ``ChatCompletion`` or ``ChatCompletionChunk`` (or anything shaped alike).
        """
        values: object = getattr(obj, "__dict__", None)
        if type(values) is dict and _is_model(type(obj)):
            self._absorb_model(obj, cast("dict[str, object]", values))  # the SDK's own objects
            return
        model = str_attr(obj, "model")
        if model:
            self.model = model
        response_id = str_attr(obj, "id")
        if response_id:
            self.response_id = response_id
        extra = getattr(obj, "__pydantic_extra__", None)
        if extra is None:  # not a pydantic model: a plain attribute, maybe
            provider = str_attr(obj, "provider")
        elif extra and isinstance(extra, dict):  # OpenRouter's fields are pydantic extras
            value = cast("dict[str, object]", extra).get("provider")
            provider = value if isinstance(value, str) else None
        else:
            provider = None
        if provider:
            self.upstream_provider = provider
        for position, choice in enumerate(items(attr(obj, "choices"))):
            index = int_attr(choice, "index")
            index = position if index is None else index
            reason = str_attr(choice, "finish_reason")
            if reason:
                self.finish_reasons[index] = reason
            delta = attr(choice, "delta")
            if delta is not None:
                self.content_chunks += _has_delta(delta)
            if self.capture:
                self._capture(index, choice)
        self._absorb_usage(attr(obj, "usage"))

    def _absorb_model(self, obj: object, values: dict[str, object]) -> None:
        # The fast path of absorb() for pydantic SDK objects (it runs on every streamed chunk):
        # their fields are in __dict__ (a missing one reads as None, as attr() does),
        # OpenRouter's in __pydantic_extra__.
        model = values.get("model")
        if model and type(model) is str:
            self.model = model
        response_id = values.get("id")
        if response_id and type(response_id) is str:
            self.response_id = response_id
        extra: object = getattr(obj, "__pydantic_extra__", None)
        if extra and type(extra) is dict:
            provider = cast("dict[str, object]", extra).get("provider")
            if provider and isinstance(provider, str):
                self.upstream_provider = provider
        choices = values.get("choices")
        if choices and type(choices) is list:
            for position, choice in enumerate(cast("list[object]", choices)):
                fields: object = getattr(choice, "__dict__", None)
                if type(fields) is not dict:
                    fields = {
                        "index": int_attr(choice, "index"),
                        "finish_reason": str_attr(choice, "finish_reason"),
                    }
                found = cast("dict[str, object]", fields)
                delta = found.get("delta")
                if delta is not None:
                    parts: object = getattr(delta, "__dict__", None)
                    if type(parts) is dict:
                        seen = cast("dict[str, object]", parts)
                        if seen.get("content") or seen.get("tool_calls"):
                            self.content_chunks += 1
                    else:
                        self.content_chunks += _has_delta(delta)
                index = found.get("index")
                if type(index) is not int:
                    index = position
                reason = found.get("finish_reason")
                if reason and type(reason) is str:
                    self.finish_reasons[index] = reason
                if self.capture:
                    self._capture(index, choice)
        elif choices and isinstance(choices, list):  # a list subclass: the general path
            for position, choice in enumerate(cast("list[object]", choices)):
                index = int_attr(choice, "index")
                index = position if index is None else index
                reason = str_attr(choice, "finish_reason")
                if reason:
                    self.finish_reasons[index] = reason
                delta = attr(choice, "delta")
                if delta is not None:
                    self.content_chunks += _has_delta(delta)
                if self.capture:
                    self._capture(index, choice)
        usage = values.get("usage")
        if usage is not None:
            self._absorb_usage(usage)

    def _capture(self, index: int, choice: object) -> None:
        message = attr(choice, "message")
        if message is not None:  # a complete completion
            calls = [
                _content.tool_call_part(
                    attr(c, "id"),
                    attr(attr(c, "function"), "name"),
                    attr(attr(c, "function"), "arguments"),
                )
                for c in items(attr(message, "tool_calls"))
            ]
            outputs = self._outputs if self._outputs is not None else []
            outputs.append(
                _content.openai_chat_output_message(
                    str_attr(message, "content"), calls, self.finish_reasons.get(index)
                )
            )
            self._outputs = outputs
            return
        delta = attr(choice, "delta")
        if delta is None:
            return
        state = self._choices.setdefault(index, _Choice())
        text = str_attr(delta, "content")
        if text:
            state.text.append(text)
        for call in items(attr(delta, "tool_calls")):
            call_index = int_attr(call, "index") or 0
            pieces = state.tool_calls.setdefault(call_index, [None, None, ""])
            call_id = str_attr(call, "id")
            function = attr(call, "function")
            name = str_attr(function, "name")
            if call_id:
                pieces[0] = call_id
            if name:
                pieces[1] = name
            arguments = str_attr(function, "arguments")
            if arguments:
                pieces[2] = f"{pieces[2]}{arguments}"

    def _absorb_usage(self, usage: object) -> None:
        if usage is None:
            return
        values: object = getattr(usage, "__dict__", None)
        if type(values) is dict and _is_model(type(usage)):  # the SDK's own: read __dict__
            fields = cast("dict[str, object]", values)
            prompt = fields.get("prompt_tokens")
            if type(prompt) is int or (prompt := integer(prompt)) is not None:
                self.input_tokens = prompt
            completion = fields.get("completion_tokens")
            if type(completion) is int or (completion := integer(completion)) is not None:
                self.output_tokens = completion
            prompt_details = fields.get("prompt_tokens_details")
            completion_details = fields.get("completion_tokens_details")
            if "prompt_tokens_details" not in fields:  # an SDK older than the field: an extra
                prompt_details = attr(usage, "prompt_tokens_details")
                completion_details = attr(usage, "completion_tokens_details")
        else:
            prompt = int_attr(usage, "prompt_tokens")
            completion = int_attr(usage, "completion_tokens")
            prompt_details = attr(usage, "prompt_tokens_details")
            completion_details = attr(usage, "completion_tokens_details")
            if prompt is not None:
                self.input_tokens = prompt
            if completion is not None:
                self.output_tokens = completion
        if prompt_details is not None:
            cached = _int_field(prompt_details, "cached_tokens")
            if cached is not None:
                self.cached_input_tokens = cached
        if completion_details is not None:
            reasoning = _int_field(completion_details, "reasoning_tokens")
            if reasoning is not None:
                self.reasoning_tokens = reasoning

    def attributes(self, request_model: str) -> dict[str, AttributeValue]:
        """Attributes to set when the call ends.

        Args:
            request_model: The model the call was sent to (see :func:`cost_usd`).

        Returns:
            The response attributes (see :func:`response_attributes`).
        """
        return response_attributes(self, request_model)

    def output_messages(self) -> list[_content.Message]:
        """The completion as GenAI output messages (collected only with ``capture``).

        Returns:
            One message per choice.
        """
        if self._outputs is not None:
            return self._outputs
        return [
            _content.openai_chat_output_message(
                "".join(state.text),
                [
                    _content.tool_call_part(*pieces)
                    for _, pieces in sorted(state.tool_calls.items())
                ],
                self.finish_reasons.get(index),
            )
            for index, state in sorted(self._choices.items())
        ]


_model_types: set[type] = set()


def _is_model(cls: type) -> bool:
    """Whether ``cls`` is a pydantic model class (remembered once seen)."""
    if cls in _model_types:
        return True
    if hasattr(cls, "__pydantic_fields__"):
        _model_types.add(cls)
        return True
    return False


def _int_field(obj: object, name: str) -> int | None:
    """``int_attr`` with the SDK's models read straight from ``__dict__``."""
    values: object = getattr(obj, "__dict__", None)
    if type(values) is dict:
        value = cast("dict[str, object]", values).get(name)
        if type(value) is int:
            return value
        if value is not None or not _is_model(type(obj)):
            return int_attr(obj, name)
        return None
    return int_attr(obj, name)


def _has_delta(delta: object) -> int:
    """1 when a streamed delta carries content or tool-call pieces, else 0."""
    return 1 if attr(delta, "content") or attr(delta, "tool_calls") else 0


def provider_of(host: str | None) -> str:
    """Return ``gen_ai.provider.name`` for a client's host.

    Args:
        host: The base URL's host.

    Returns:
        ``openrouter`` for OpenRouter's hosts, else ``openai``.
    """
    known = _providers.get(host)
    if known is None:
        known = Provider.OPENROUTER if host and "openrouter" in host.lower() else Provider.OPENAI
        if len(_providers) >= _MAX_HOSTS:
            _providers.clear()
        _providers[host] = known
    return known


_MAX_HOSTS: Final = 256
_providers: dict[str | None, str] = {}


def read_request(
    instance: object, kwargs: Mapping[str, object], capture: bool = False
) -> ChatRequest:
    """Read the request attributes of a chat-completions ``create`` (or ``parse``) call.

    Without content capture, calls that differ only in their messages share their attributes:
    they are built once per client, model, stream flag, sampling parameters and token limit
    (:class:`RequestTemplates`), then copied, with the run id from baggage added.

    Args:
        instance: The ``Completions`` resource (its client gives the base URL).
        kwargs: The call's keyword arguments.
        capture: Record the prompt (content capture).

    Returns:
        The request summary, with the attributes to set at span start.
    """
    template = _build_template(instance, kwargs) if capture else _TEMPLATES.get(instance, kwargs)
    model, stream, shared, name = template
    attributes = with_current_run_id(shared)
    if capture:
        system, messages = _content.openai_chat_input(kwargs.get("messages"))
        if system:
            _content.put_json(attributes, GEN_AI_SYSTEM_INSTRUCTIONS, system)
        _content.put_json(attributes, GEN_AI_INPUT_MESSAGES, messages)
    chars = prompt_chars(kwargs.get("messages")) if stream and not wants_usage(kwargs) else None
    return ChatRequest(model, stream, attributes, name, chars)


def _build_template(instance: object, kwargs: Mapping[str, object]) -> RequestTemplate:
    model = model_name(kwargs)
    stream = kwargs.get("stream") is True
    host, port = server(instance)
    attributes = dict(base_template(Operation.CHAT, provider_of(host), model, host, port))
    attributes[GEN_AI_REQUEST_STREAM] = stream
    copy_numbers(attributes, kwargs, SAMPLING)
    max_tokens = integer(kwargs.get("max_tokens"))
    if max_tokens is None:
        max_tokens = integer(kwargs.get("max_completion_tokens"))
    if max_tokens is not None:
        attributes[GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    return model, stream, attributes, span_name(Operation.CHAT, model)


def _key_of(kwargs: Mapping[str, object]) -> tuple[object, ...] | None:
    get = kwargs.get
    temperature = get("temperature")
    top_p = get("top_p")
    max_tokens = get("max_tokens")
    max_completion = get("max_completion_tokens")
    if (
        type(temperature) is bool
        or type(top_p) is bool
        or type(max_tokens) is bool
        or type(max_completion) is bool
    ):
        return None  # True == 1 in a key: such calls are rare, read them in full
    return (get("model"), get("stream") is True, temperature, top_p, max_tokens, max_completion)


_TEMPLATES: Final = RequestTemplates(_key_of, _build_template)


def response_attributes(summary: ResponseSummary, request_model: str) -> dict[str, AttributeValue]:
    """Attributes to set when the call ends.

    Args:
        summary: What the response said.
        request_model: The model the call was sent to (priced when the response names none
            known; see :func:`cost_usd`).

    Returns:
        The attributes; absent values are left out.
    """
    attributes: dict[str, AttributeValue] = {}
    if summary.model:
        attributes[GEN_AI_RESPONSE_MODEL] = summary.model
    if summary.response_id:
        attributes[GEN_AI_RESPONSE_ID] = summary.response_id
    if summary.upstream_provider:
        attributes[AGENTMESH_UPSTREAM_PROVIDER] = summary.upstream_provider
    if summary.finish_reasons:
        reasons = summary.finish_reasons  # a tuple: what the SDK stores for a sequence
        attributes[GEN_AI_RESPONSE_FINISH_REASONS] = (
            tuple(reasons.values())
            if len(reasons) == 1
            else tuple(reasons[i] for i in sorted(reasons))
        )
    if summary.input_tokens is not None:
        attributes[GEN_AI_USAGE_INPUT_TOKENS] = summary.input_tokens
    if summary.output_tokens is not None:
        attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = summary.output_tokens
    if summary.cached_input_tokens:
        attributes[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = summary.cached_input_tokens
    if summary.reasoning_tokens:
        attributes[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = summary.reasoning_tokens
    cost = cost_usd(summary, request_model)
    if cost is not None:
        attributes[AGENTMESH_COST_USD] = cost
    return attributes


def cost_usd(summary: ResponseSummary, request_model: str) -> float | None:
    """Price the call from the catalog: the response model first, then the model sent.

    The model sent is the application's unless routing replaced it (enforce mode, a
    fallback): a call is never priced at the application's model when another one answered.

    Args:
        summary: What the response said (its usage is required).
        request_model: The model the call was sent to (``gen_ai.request.model``).

    Returns:
        US dollars, or ``None`` when usage or both models are unknown.
    """
    if summary.input_tokens is None or summary.output_tokens is None:
        return None
    return _pricing.cost_usd(
        (summary.model, request_model),
        summary.input_tokens,
        summary.output_tokens,
        summary.cached_input_tokens or 0,
    )
