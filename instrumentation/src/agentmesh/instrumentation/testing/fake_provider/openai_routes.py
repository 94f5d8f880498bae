"""The OpenAI chat-completions route (``POST /v1/chat/completions``), plain and streamed.

OpenRouter-style model names (``vendor/model``) are answered too; like OpenRouter, responses
and chunks then carry a top-level ``provider`` naming the upstream.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from agentmesh.core.log import get_logger
from agentmesh.instrumentation.testing.fake_provider.errors import openai_error_response
from agentmesh.instrumentation.testing.fake_provider.handling import InFlight, read_and_record
from agentmesh.instrumentation.testing.fake_provider.jsontypes import (
    JSONObject,
    as_list,
    as_object,
    get_bool,
)
from agentmesh.instrumentation.testing.fake_provider.openrouter import upstream_provider
from agentmesh.instrumentation.testing.fake_provider.state import ProviderState, ReplyPlan
from agentmesh.instrumentation.testing.fake_provider.streaming import (
    SSEStream,
    split_fixed,
    split_in,
    split_words,
)
from agentmesh.instrumentation.testing.fake_provider.tokens import last_message_text, prompt_text

__all__ = ["OpenAIRoutes", "openai_usage"]

logger = get_logger(__name__)

SYSTEM_FINGERPRINT = "fp_fake"
"""The ``system_fingerprint`` of every response."""

_ARGUMENT_PIECES = 3


def openai_usage(plan: ReplyPlan) -> JSONObject:
    """Return the ``usage`` object of a planned reply.

    Args:
        plan: The reply plan.

    Returns:
        OpenAI's usage object with token details.
    """
    return {
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": plan.input_tokens + plan.output_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
    }


class OpenAIRoutes:
    """Handlers of the OpenAI wire format."""

    def __init__(self, state: ProviderState, inflight: InFlight) -> None:
        """Create the handlers.

        Args:
            state: Scripts, counters and the request record.
            inflight: Tracker of running handlers (for hanging).
        """
        self._state = state
        self._inflight = inflight

    def register(self, app: web.Application) -> None:
        """Add the routes to an application.

        Args:
            app: The aiohttp application.
        """
        app.router.add_post("/v1/chat/completions", self.chat_completions)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """Answer ``POST /v1/chat/completions``.

        Args:
            request: The request.

        Returns:
            A JSON completion, an SSE stream of chunks, or an error in OpenAI's shape.
        """
        number = self._state.next_id()
        request_id = f"req_fake{number:06d}"
        body, model, stream = await read_and_record(request, self._state)
        if body is None:
            return openai_error_response(
                400,
                "We could not parse the JSON body of your request: expected a JSON object.",
                request_id=request_id,
            )
        if not model:
            return openai_error_response(
                400, "Missing required parameter: 'model'.", request_id=request_id, param="model"
            )
        messages = as_list(body.get("messages"))
        if not messages:
            return openai_error_response(
                400,
                "Missing required parameter: 'messages' (a non-empty array).",
                request_id=request_id,
                param="messages",
            )
        plan = self._state.plan(
            model, prompt=prompt_text(messages), last_message=last_message_text(messages)
        )
        if plan.latency > 0:
            await asyncio.sleep(plan.latency)
        if plan.hang:
            logger.debug("fake_provider.hang", model=model)
            await self._inflight.hang()
        if plan.error is not None:
            logger.debug("fake_provider.error", model=model, status=plan.error.status)
            return openai_error_response(
                plan.error.status,
                plan.error.effective_message(),
                request_id=request_id,
                error=plan.error,
            )
        prefix = "gen" if upstream_provider(model) else "chatcmpl"
        completion_id = f"{prefix}-fake{number:06d}"
        headers = {"x-request-id": request_id}
        if stream:
            options = as_object(body.get("stream_options")) or {}
            return await self._stream(
                request,
                plan,
                completion_id,
                include_usage=get_bool(options, "include_usage"),
                headers=headers,
            )
        return web.json_response(self._completion(plan, completion_id), headers=headers)

    def _base(self, plan: ReplyPlan, completion_id: str, obj: str) -> JSONObject:
        base: JSONObject = {
            "id": completion_id,
            "object": obj,
            "created": int(time.time()),
            "model": plan.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        provider = upstream_provider(plan.model)
        if provider is not None:
            base["provider"] = provider
        return base

    @staticmethod
    def _tool_call_id(plan: ReplyPlan, completion_id: str, index: int) -> str:
        call = plan.tool_calls[index]
        return call.id or f"call_{completion_id.split('-', 1)[1]}_{index}"

    def _completion(self, plan: ReplyPlan, completion_id: str) -> JSONObject:
        message: JSONObject = {"role": "assistant", "content": plan.content, "refusal": None}
        if plan.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._tool_call_id(plan, completion_id, index),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for index, call in enumerate(plan.tool_calls)
            ]
        return {
            **self._base(plan, completion_id, "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": plan.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": openai_usage(plan),
        }

    async def _stream(
        self,
        request: web.Request,
        plan: ReplyPlan,
        completion_id: str,
        *,
        include_usage: bool,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        base = self._base(plan, completion_id, "chat.completion.chunk")
        if include_usage:
            base["usage"] = None

        def chunk(delta: JSONObject, finish_reason: str | None = None) -> JSONObject:
            choice: JSONObject = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            return {**base, "choices": [choice]}

        sse = await SSEStream.open(request, delay=plan.chunk_delay, headers=headers)
        try:
            await sse.send(chunk({"role": "assistant", "content": "" if plan.content else None}))
            text = plan.content or ""
            pieces = split_fixed(text, plan.chunk_size) if plan.chunk_size else split_words(text)
            for piece in pieces:
                await sse.send(chunk({"content": piece}))
            for index, call in enumerate(plan.tool_calls):
                opening: JSONObject = {
                    "index": index,
                    "id": self._tool_call_id(plan, completion_id, index),
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                await sse.send(chunk({"tool_calls": [opening]}))
                for piece in split_in(call.arguments, _ARGUMENT_PIECES):
                    delta: JSONObject = {"index": index, "function": {"arguments": piece}}
                    await sse.send(chunk({"tool_calls": [delta]}))
            await sse.send(chunk({}, plan.finish_reason))
            if include_usage:
                await sse.send({**base, "choices": [], "usage": openai_usage(plan)})
            await sse.send("[DONE]")
            return await sse.finish()
        except ConnectionResetError:
            logger.debug("fake_provider.client_gone", model=plan.model)
            return sse.response
