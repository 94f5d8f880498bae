"""The wrappers of ``Completions.create`` and ``AsyncCompletions.create`` (sync/async twins).

Imported only when the instrumentor is applied: importing this module imports ``openai``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import openai
from opentelemetry.trace import Tracer

from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.openai import _call
from agentmesh.instrumentation.openai._stream import AsyncStreamProxy, StreamProxy

__all__ = ["async_chat_wrapper", "chat_wrapper"]


def _wrap_result(call: _call.ChatCall, result: object) -> object:
    if call.request.stream and isinstance(result, openai.Stream):
        return StreamProxy(result, call)  # pyright: ignore[reportUnknownArgumentType]
    if call.request.stream and isinstance(result, openai.AsyncStream):
        return AsyncStreamProxy(result, call)  # pyright: ignore[reportUnknownArgumentType]
    call.absorb(result)
    call.finish()
    return result


def _finish_with(call: _call.ChatCall, result: object) -> object:
    wrapped = _failopen.safe_call("openai.wrap_result", _wrap_result, call, result)
    if wrapped is None:
        call.finish()
        return result
    return wrapped


def chat_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of the synchronous ``Completions.create``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _failopen.safe_call("openai.start_call", _call.start_call, tracer, instance, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        with call.activated():
            call_kwargs = (
                _failopen.safe_call("openai.trace_headers", _call.with_trace_headers, kwargs)
                or kwargs
            )
            try:
                result = wrapped(*args, **call_kwargs)
            except BaseException as exc:
                call.finish(exc)
                raise
        return _finish_with(call, result)

    return wrapper


def async_chat_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``AsyncCompletions.create``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper returning a coroutine.
    """

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        call = _failopen.safe_call("openai.start_call", _call.start_call, tracer, instance, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        with call.activated():
            call_kwargs = (
                _failopen.safe_call("openai.trace_headers", _call.with_trace_headers, kwargs)
                or kwargs
            )
            try:
                result = await wrapped(*args, **call_kwargs)
            except BaseException as exc:
                call.finish(exc)
                raise
        return _finish_with(call, result)

    return wrapper
