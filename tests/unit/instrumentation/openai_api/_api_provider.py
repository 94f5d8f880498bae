"""The fake provider with two more OpenAI routes: ``/v1/embeddings`` and ``/v1/responses``.

The bundled fake provider speaks chat completions and Anthropic messages only; these tests
need the embeddings and Responses wire formats too. :class:`ExtendedFakeProvider` adds them
on top of the real server (same scripts, same token plan, same error injection), and
:class:`ProviderOnThread` serves it from a background thread like ``FakeProviderThread``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time

from aiohttp import web

from agentmesh.instrumentation.testing import FakeProvider
from agentmesh.instrumentation.testing.fake_provider.errors import openai_error_response
from agentmesh.instrumentation.testing.fake_provider.handling import read_and_record
from agentmesh.instrumentation.testing.fake_provider.openrouter import upstream_provider
from agentmesh.instrumentation.testing.fake_provider.state import ReplyPlan

EMBEDDING_MODEL = "text-embedding-3-small"
RESPONSES_MODEL = "gpt-4o-mini"
DIMENSIONS = 8


def _usage(plan: ReplyPlan) -> dict[str, object]:
    return {
        "input_tokens": plan.input_tokens,
        "output_tokens": plan.output_tokens,
        "total_tokens": plan.input_tokens + plan.output_tokens,
        "input_tokens_details": {"cached_tokens": plan.cached_tokens},
        "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
    }


def _output(plan: ReplyPlan, number: int) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    if plan.content:
        items.append(
            {
                "type": "message",
                "id": f"msg_fake{number:06d}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": plan.content, "annotations": []}],
            }
        )
    for index, call in enumerate(plan.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_fake{number:06d}_{index}",
                "call_id": call.id or f"call_{number:06d}_{index}",
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    return items


def _response(plan: ReplyPlan, number: int, *, status: str, done: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "id": f"resp_fake{number:06d}",
        "object": "response",
        "created_at": int(time.time()),
        "model": plan.model,
        "status": status,
        "output": _output(plan, number) if done else [],
        "usage": _usage(plan) if done else None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "error": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    provider = upstream_provider(plan.model)
    if provider is not None:
        body["provider"] = provider
    return body


class ExtendedFakeProvider(FakeProvider):
    """The fake provider plus ``/v1/embeddings`` and ``/v1/responses``."""

    def create_app(self) -> web.Application:
        """Build the application with the two extra routes.

        Returns:
            The application.
        """
        app = super().create_app()
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        return app

    async def _plan(
        self, request: web.Request
    ) -> tuple[dict[str, object], ReplyPlan] | web.Response:
        body, model, _ = await read_and_record(request, self.state)
        if body is None or not model:
            return openai_error_response(400, "bad request", request_id="req_bad")
        raw_input = body.get("input")
        text = raw_input if isinstance(raw_input, str) else json.dumps(raw_input)
        plan = self.state.plan(model, prompt=text, last_message=text)
        if plan.error is not None:
            return openai_error_response(
                plan.error.status,
                plan.error.effective_message(),
                request_id="req_err",
                error=plan.error,
            )
        return dict(body), plan

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        planned = await self._plan(request)
        if isinstance(planned, web.Response):
            return planned
        body, plan = planned
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1  # pyright: ignore[reportUnknownArgumentType]
        dims = body.get("dimensions")
        size = dims if isinstance(dims, int) else DIMENSIONS
        vector = [round(0.1 * (i + 1), 3) for i in range(size)]
        encoded: object = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data = [{"object": "embedding", "index": i, "embedding": encoded} for i in range(count)]
        usage = {"prompt_tokens": plan.input_tokens, "total_tokens": plan.input_tokens}
        return web.json_response(
            {"object": "list", "data": data, "model": plan.model, "usage": usage}
        )

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        planned = await self._plan(request)
        if isinstance(planned, web.Response):
            return planned
        body, plan = planned
        number = self.state.next_id()
        status = "incomplete" if plan.finish_reason == "length" else "completed"
        if body.get("stream") is not True:
            return web.json_response(_response(plan, number, status=status, done=True))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        sequence = 0

        async def send(event: dict[str, object]) -> None:
            nonlocal sequence
            event["sequence_number"] = sequence
            sequence += 1
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())

        await send(
            {
                "type": "response.created",
                "response": _response(plan, number, status="in_progress", done=False),
            }
        )
        item_id = f"msg_fake{number:06d}"
        text = plan.content or ""
        await send(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {
                    "type": "message",
                    "id": item_id,
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                },
            }
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        await send(
            {
                "type": "response.content_part.added",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": part,
            }
        )
        for word in text.split(" "):
            await send(
                {
                    "type": "response.output_text.delta",
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": word if word == text.split(" ")[0] else f" {word}",
                    "logprobs": [],
                }
            )
        await send(
            {
                "type": "response.output_text.done",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            }
        )
        done_type = "response.completed" if status == "completed" else "response.incomplete"
        await send(
            {"type": done_type, "response": _response(plan, number, status=status, done=True)}
        )
        await response.write_eof()
        return response


class ProviderOnThread:
    """Serves an :class:`ExtendedFakeProvider` from a daemon thread's event loop.

    Args:
        provider: The provider to serve.
    """

    def __init__(self, provider: ExtendedFakeProvider) -> None:
        self.provider = provider
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ExtendedFakeProvider:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.provider.start(), self._loop).result(10)
        return self.provider

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.provider.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
