"""Span attributes of a chat-completions call: from the request, and from the response.

Everything here reads objects by duck typing (``getattr`` with type checks), so a field a
given SDK version lacks is simply left out. Nothing here imports ``openai``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, cast

from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    AGENTMESH_RUN_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    SERVER_ADDRESS,
    SERVER_PORT,
    Operation,
    Provider,
)
from agentmesh.instrumentation.run_context import current_run_id
from agentmesh.router.catalog import default_catalog

__all__ = [
    "ChatRequest",
    "ResponseSummary",
    "cost_usd",
    "read_request",
    "response_attributes",
]

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_UNKNOWN_MODEL: Final = "unknown"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the span needs from a ``create`` call, read before it runs.

    Attributes:
        model: Requested model (``"unknown"`` when the call named none).
        stream: Whether a streamed response was asked for.
        attributes: Attributes to set when the span starts.
    """

    model: str
    stream: bool
    attributes: dict[str, AttributeValue]

    @property
    def span_name(self) -> str:
        """Span name: ``chat {request model}``."""
        return f"{Operation.CHAT} {self.model}"


@dataclass(slots=True)
class ResponseSummary:
    """What a response (or the chunks of a stream) said about itself.

    Attributes:
        model: Model that answered.
        response_id: Provider's id of the response.
        finish_reasons: Why each choice stopped, by choice index.
        input_tokens: Prompt tokens.
        output_tokens: Completion tokens.
        cached_input_tokens: Prompt tokens read from cache.
        reasoning_tokens: Completion tokens spent on reasoning.
    """

    model: str | None = None
    response_id: str | None = None
    finish_reasons: dict[int, str] = field(default_factory=dict[int, str])
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None

    def absorb(self, obj: object) -> None:
        """Take what a completion or a streamed chunk carries (later values win).

        Args:
            obj: A ``ChatCompletion`` or ``ChatCompletionChunk`` (or anything shaped alike).
        """
        model = _str_attr(obj, "model")
        if model:
            self.model = model
        response_id = _str_attr(obj, "id")
        if response_id:
            self.response_id = response_id
        choices: object = getattr(obj, "choices", None)
        if isinstance(choices, list | tuple):
            items = cast("list[object] | tuple[object, ...]", choices)
            for position, choice in enumerate(items):
                reason = _str_attr(choice, "finish_reason")
                if reason:
                    index = _int_attr(choice, "index")
                    self.finish_reasons[position if index is None else index] = reason
        self._absorb_usage(getattr(obj, "usage", None))

    def _absorb_usage(self, usage: object) -> None:
        if usage is None:
            return
        prompt = _int_attr(usage, "prompt_tokens")
        if prompt is not None:
            self.input_tokens = prompt
        completion = _int_attr(usage, "completion_tokens")
        if completion is not None:
            self.output_tokens = completion
        cached = _int_attr(getattr(usage, "prompt_tokens_details", None), "cached_tokens")
        if cached is not None:
            self.cached_input_tokens = cached
        reasoning = _int_attr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens")
        if reasoning is not None:
            self.reasoning_tokens = reasoning


def read_request(instance: object, kwargs: Mapping[str, object]) -> ChatRequest:
    """Read the request attributes of a ``create`` call.

    Args:
        instance: The ``Completions`` resource (its client gives the base URL).
        kwargs: The call's keyword arguments.

    Returns:
        The request summary, with the attributes to set at span start.
    """
    model = kwargs.get("model")
    model_name = model if isinstance(model, str) and model else _UNKNOWN_MODEL
    stream = kwargs.get("stream") is True
    host, port = _server(instance)
    provider = Provider.OPENROUTER if host and "openrouter" in host.lower() else Provider.OPENAI
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.CHAT,
        GEN_AI_PROVIDER_NAME: provider,
        GEN_AI_REQUEST_MODEL: model_name,
        GEN_AI_REQUEST_STREAM: stream,
    }
    for key, name in ((GEN_AI_REQUEST_TEMPERATURE, "temperature"), (GEN_AI_REQUEST_TOP_P, "top_p")):
        value = _number(kwargs.get(name))
        if value is not None:
            attributes[key] = value
    max_tokens = _integer(kwargs.get("max_tokens"))
    if max_tokens is None:
        max_tokens = _integer(kwargs.get("max_completion_tokens"))
    if max_tokens is not None:
        attributes[GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    if host:
        attributes[SERVER_ADDRESS] = host
    if port is not None:
        attributes[SERVER_PORT] = port
    run_id = current_run_id()
    if run_id is not None:
        attributes[AGENTMESH_RUN_ID] = run_id
    return ChatRequest(model_name, stream, attributes)


def response_attributes(summary: ResponseSummary, request_model: str) -> dict[str, AttributeValue]:
    """Attributes to set when the call ends.

    Args:
        summary: What the response said.
        request_model: The requested model (priced when the response names none known).

    Returns:
        The attributes; absent values are left out.
    """
    attributes: dict[str, AttributeValue] = {}
    if summary.model:
        attributes[GEN_AI_RESPONSE_MODEL] = summary.model
    if summary.response_id:
        attributes[GEN_AI_RESPONSE_ID] = summary.response_id
    if summary.finish_reasons:
        attributes[GEN_AI_RESPONSE_FINISH_REASONS] = [
            summary.finish_reasons[i] for i in sorted(summary.finish_reasons)
        ]
    if summary.input_tokens is not None:
        attributes[GEN_AI_USAGE_INPUT_TOKENS] = summary.input_tokens
    if summary.output_tokens is not None:
        attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = summary.output_tokens
    if summary.cached_input_tokens is not None:
        attributes[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = summary.cached_input_tokens
    if summary.reasoning_tokens is not None:
        attributes[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = summary.reasoning_tokens
    cost = cost_usd(summary, request_model)
    if cost is not None:
        attributes[AGENTMESH_COST_USD] = cost
    return attributes


def cost_usd(summary: ResponseSummary, request_model: str) -> float | None:
    """Price the call from the catalog: the response model first, then the requested one.

    Args:
        summary: What the response said (its usage is required).
        request_model: The requested model.

    Returns:
        US dollars, or ``None`` when usage or both models are unknown.
    """
    if summary.input_tokens is None or summary.output_tokens is None:
        return None
    catalog = default_catalog()
    for model in (summary.model, request_model):
        if not model or model == _UNKNOWN_MODEL:
            continue
        cost = catalog.cost_usd(
            model, summary.input_tokens, summary.output_tokens, summary.cached_input_tokens or 0
        )
        if cost is not None:
            return cost
    return None


def _server(instance: object) -> tuple[str | None, int | None]:
    client = getattr(instance, "_client", None)
    url = getattr(client, "base_url", None)
    host = _str_attr(url, "host")
    port = _int_attr(url, "port")
    if port is None:
        scheme = _str_attr(url, "scheme")
        port = _DEFAULT_PORTS.get(scheme or "")
    return host, port


def _str_attr(obj: object, name: str) -> str | None:
    value = getattr(obj, name, None) if obj is not None else None
    return value if isinstance(value, str) else None


def _int_attr(obj: object, name: str) -> int | None:
    value = getattr(obj, name, None) if obj is not None else None
    return _integer(value)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
