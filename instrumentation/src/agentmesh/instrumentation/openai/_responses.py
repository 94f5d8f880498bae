"""Span attributes of a Responses API call (``responses.create`` / ``parse`` / ``stream``).

A complete ``Response`` and the stream events that carry one (``response.created``,
``response.completed``, ``response.incomplete``, ``response.failed``) are read alike; the last
one seen wins. Usage includes cached input and reasoning output tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    AGENTMESH_UPSTREAM_PROVIDER,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    Operation,
)
from agentmesh.instrumentation import _content
from agentmesh.instrumentation.openai import _pricing
from agentmesh.instrumentation.openai._attributes import SAMPLING, provider_of
from agentmesh.instrumentation.openai._call import CallRequest
from agentmesh.instrumentation.openai._fields import (
    attr,
    base_attributes,
    copy_numbers,
    int_attr,
    integer,
    items,
    model_name,
    server,
    str_attr,
)

__all__ = ["ResponsesSummary", "read_responses_request"]

_STATUS_REASONS: Final = {"completed": "stop", "failed": "error", "cancelled": "cancelled"}


def read_responses_request(
    instance: object, kwargs: Mapping[str, object], capture: bool = False
) -> CallRequest:
    """Read the request attributes of ``Responses.create`` (or ``parse``).

    Args:
        instance: The ``Responses`` resource.
        kwargs: The call's keyword arguments.
        capture: Record ``instructions`` and ``input`` (content capture).

    Returns:
        The request summary.
    """
    model = model_name(kwargs)
    stream = kwargs.get("stream") is True
    host, port = server(instance)
    attributes = base_attributes(Operation.CHAT, provider_of(host), model, host, port)
    attributes[GEN_AI_REQUEST_STREAM] = stream
    copy_numbers(attributes, kwargs, SAMPLING)
    max_tokens = integer(kwargs.get("max_output_tokens"))
    if max_tokens is not None:
        attributes[GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    if capture:
        system, messages = _content.responses_input(kwargs.get("instructions"), kwargs.get("input"))
        if system:
            _content.put_json(attributes, GEN_AI_SYSTEM_INSTRUCTIONS, system)
        _content.put_json(attributes, GEN_AI_INPUT_MESSAGES, messages)
    return CallRequest(model, stream, attributes, f"{Operation.CHAT} {model}")


@dataclass(slots=True)
class ResponsesSummary:
    """What a ``Response`` (or the events of its stream) said.

    Attributes:
        model: Model that answered.
        response_id: The response's id.
        status: ``completed``, ``incomplete``, ``failed``…
        incomplete_reason: Why an incomplete response stopped.
        calls_tools: Whether the output asks for function calls.
        input_tokens: Input tokens (cached included).
        output_tokens: Output tokens (reasoning included).
        cached_input_tokens: Input tokens read from cache.
        reasoning_tokens: Output tokens spent on reasoning.
        upstream_provider: The provider a router forwarded the call to.
        capture: Keep the output items (content capture).
    """

    model: str | None = None
    response_id: str | None = None
    status: str | None = None
    incomplete_reason: str | None = None
    calls_tools: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    upstream_provider: str | None = None
    capture: bool = False
    _output: object = None

    def absorb(self, obj: object) -> None:
        """Take what a ``Response`` or a stream event carrying one says.

        Args:
            obj: A ``Response`` or a ``ResponseStreamEvent``.
        """
        inner = attr(obj, "response")
        if inner is not None and str_attr(obj, "type") is not None:
            obj = inner
        elif str_attr(obj, "object") != "response":
            return  # a delta event: nothing about the response as a whole
        self.model = str_attr(obj, "model") or self.model
        self.response_id = str_attr(obj, "id") or self.response_id
        self.upstream_provider = str_attr(obj, "provider") or self.upstream_provider
        status = str_attr(obj, "status")
        if status:
            self.status = status
        reason = str_attr(attr(obj, "incomplete_details"), "reason")
        if reason:
            self.incomplete_reason = reason
        output = attr(obj, "output")
        outputs = items(output)
        if outputs:
            self.calls_tools = any(str_attr(i, "type") == "function_call" for i in outputs)
            if self.capture:
                self._output = output
        usage = attr(obj, "usage")
        if usage is not None:
            self.input_tokens = int_attr(usage, "input_tokens")
            self.output_tokens = int_attr(usage, "output_tokens")
            details = attr(usage, "input_tokens_details")
            self.cached_input_tokens = int_attr(details, "cached_tokens")
            details = attr(usage, "output_tokens_details")
            self.reasoning_tokens = int_attr(details, "reasoning_tokens")

    def finish_reason(self) -> str | None:
        """The finish reason the status amounts to.

        Returns:
            ``stop``, ``tool_calls``, the incomplete reason, ``error``… or ``None``.
        """
        if self.status is None or self.status in ("in_progress", "queued"):
            return None
        if self.status == "incomplete":
            return self.incomplete_reason or "incomplete"
        if self.status == "completed" and self.calls_tools:
            return "tool_calls"
        return _STATUS_REASONS.get(self.status, self.status)

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
        if self.upstream_provider:
            attributes[AGENTMESH_UPSTREAM_PROVIDER] = self.upstream_provider
        reason = self.finish_reason()
        if reason:
            attributes[GEN_AI_RESPONSE_FINISH_REASONS] = (reason,)
        if self.input_tokens is not None:
            attributes[GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        if self.output_tokens is not None:
            attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        if self.cached_input_tokens:
            attributes[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cached_input_tokens
        if self.reasoning_tokens:
            attributes[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_tokens
        if self.input_tokens is not None and self.output_tokens is not None:
            cost = _pricing.cost_usd(
                (self.model, request_model),
                self.input_tokens,
                self.output_tokens,
                self.cached_input_tokens or 0,
            )
            if cost is not None:
                attributes[AGENTMESH_COST_USD] = cost
        return attributes

    def output_messages(self) -> list[_content.Message]:
        """The response's output as GenAI output messages (kept only with ``capture``).

        Returns:
            The output messages.
        """
        if self._output is None:
            return []
        return _content.responses_output(self._output, self.finish_reason())
