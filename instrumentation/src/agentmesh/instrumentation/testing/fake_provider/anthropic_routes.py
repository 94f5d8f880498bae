"""The Anthropic messages route (``POST /v1/messages``), plain and streamed."""

from __future__ import annotations

import asyncio

from aiohttp import web

from agentmesh.core.log import get_logger
from agentmesh.instrumentation.testing.fake_provider.errors import anthropic_error_response
from agentmesh.instrumentation.testing.fake_provider.handling import InFlight, read_and_record
from agentmesh.instrumentation.testing.fake_provider.jsontypes import JSONObject, as_list
from agentmesh.instrumentation.testing.fake_provider.state import ProviderState, ReplyPlan
from agentmesh.instrumentation.testing.fake_provider.streaming import (
    SSEStream,
    split_fixed,
    split_in,
    split_words,
)
from agentmesh.instrumentation.testing.fake_provider.tokens import last_message_text, prompt_text

__all__ = ["AnthropicRoutes", "anthropic_stop_reason", "anthropic_usage"]

logger = get_logger(__name__)

_STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
}
_ARGUMENT_PIECES = 3


def anthropic_stop_reason(finish_reason: str) -> str:
    """Map an OpenAI-style finish reason to Anthropic's ``stop_reason``.

    Args:
        finish_reason: ``stop``, ``length``, ``content_filter`` or ``tool_calls``.

    Returns:
        ``end_turn``, ``max_tokens``, ``refusal`` or ``tool_use``.
    """
    return _STOP_REASONS.get(finish_reason, "end_turn")


def anthropic_usage(plan: ReplyPlan) -> JSONObject:
    """Return the ``usage`` object of a planned reply.

    ``input_tokens`` is the uncached part of the prompt, as Anthropic reports it.

    Args:
        plan: The reply plan.

    Returns:
        Anthropic's usage object.
    """
    uncached = plan.input_tokens - plan.cached_tokens - plan.cache_creation_tokens
    return {
        "input_tokens": max(0, uncached),
        "output_tokens": plan.output_tokens,
        "cache_read_input_tokens": plan.cached_tokens,
        "cache_creation_input_tokens": plan.cache_creation_tokens,
    }


class AnthropicRoutes:
    """Handlers of the Anthropic wire format."""

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
        app.router.add_post("/v1/messages", self.messages)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """Answer ``POST /v1/messages``.

        Args:
            request: The request.

        Returns:
            A JSON message, an SSE stream of events, or an error in Anthropic's shape.
        """
        number = self._state.next_id()
        request_id = f"req_fake{number:06d}"
        body, model, stream = await read_and_record(request, self._state)
        if body is None:
            return anthropic_error_response(
                400, "The request body is not a valid JSON object.", request_id=request_id
            )
        if not model:
            return anthropic_error_response(400, "model: Field required", request_id=request_id)
        messages = as_list(body.get("messages"))
        if not messages:
            return anthropic_error_response(
                400, "messages: Field required (a non-empty array)", request_id=request_id
            )
        plan = self._state.plan(
            model,
            prompt=prompt_text(messages, body.get("system")),
            last_message=last_message_text(messages),
        )
        if plan.latency > 0:
            await asyncio.sleep(plan.latency)
        if plan.hang:
            logger.debug("fake_provider.hang", model=model)
            await self._inflight.hang()
        if plan.error is not None:
            logger.debug("fake_provider.error", model=model, status=plan.error.status)
            return anthropic_error_response(
                plan.error.status,
                plan.error.effective_message(),
                request_id=request_id,
                error=plan.error,
            )
        message_id = f"msg_fake{number:06d}"
        headers = {"request-id": request_id}
        if stream:
            return await self._stream(request, plan, message_id, headers)
        return web.json_response(self._message(plan, message_id), headers=headers)

    @staticmethod
    def _tool_use_id(plan: ReplyPlan, message_id: str, index: int) -> str:
        call = plan.tool_calls[index]
        return call.id or f"toolu_{message_id.removeprefix('msg_')}_{index}"

    def _blocks(self, plan: ReplyPlan, message_id: str) -> list[JSONObject]:
        blocks: list[JSONObject] = []
        if plan.content or not plan.tool_calls:
            blocks.append({"type": "text", "text": plan.content or ""})
        blocks.extend(
            {
                "type": "tool_use",
                "id": self._tool_use_id(plan, message_id, index),
                "name": call.name,
                "input": call.arguments_object(),
            }
            for index, call in enumerate(plan.tool_calls)
        )
        return blocks

    def _message(self, plan: ReplyPlan, message_id: str) -> JSONObject:
        content: list[object] = list(self._blocks(plan, message_id))
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": plan.model,
            "content": content,
            "stop_reason": anthropic_stop_reason(plan.finish_reason),
            "stop_sequence": None,
            "usage": anthropic_usage(plan),
        }

    async def _stream(
        self, request: web.Request, plan: ReplyPlan, message_id: str, headers: dict[str, str]
    ) -> web.StreamResponse:
        start_usage = {**anthropic_usage(plan), "output_tokens": 1}
        started: JSONObject = {
            **self._message(plan, message_id),
            "content": [],
            "stop_reason": None,
            "usage": start_usage,
        }
        sse = await SSEStream.open(request, delay=plan.chunk_delay, headers=headers)
        try:
            await sse.send({"type": "message_start", "message": started}, event="message_start")
            for index, block in enumerate(self._blocks(plan, message_id)):
                await self._send_block(sse, plan, index, block)
            await sse.send(
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": anthropic_stop_reason(plan.finish_reason),
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": plan.output_tokens},
                },
                event="message_delta",
            )
            await sse.send({"type": "message_stop"}, event="message_stop")
            return await sse.finish()
        except ConnectionResetError:
            logger.debug("fake_provider.client_gone", model=plan.model)
            return sse.response

    async def _send_block(
        self, sse: SSEStream, plan: ReplyPlan, index: int, block: JSONObject
    ) -> None:
        if block["type"] == "text":
            text = plan.content or ""
            await sse.send(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
                event="content_block_start",
            )
            pieces = split_fixed(text, plan.chunk_size) if plan.chunk_size else split_words(text)
            deltas: list[JSONObject] = [{"type": "text_delta", "text": piece} for piece in pieces]
        else:
            call = plan.tool_calls[index - (1 if plan.content else 0)]
            await sse.send(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
                event="content_block_start",
            )
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in split_in(call.arguments, _ARGUMENT_PIECES)
            ]
        if index == 0:
            await sse.send({"type": "ping"}, event="ping")
        for delta in deltas:
            await sse.send(
                {"type": "content_block_delta", "index": index, "delta": delta},
                event="content_block_delta",
            )
        await sse.send({"type": "content_block_stop", "index": index}, event="content_block_stop")
