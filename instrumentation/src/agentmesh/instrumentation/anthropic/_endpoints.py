"""The instrumented ``anthropic`` methods and the wrapper of the ``stream`` helper.

Imported only when a patch is applied: importing this module imports ``anthropic``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import anthropic
from anthropic import _response  # pyright: ignore[reportPrivateUsage]
from opentelemetry import context as otel_context

from agentmesh.core.errors import RunStoppedError
from agentmesh.instrumentation import _dedupe, _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.anthropic._attributes import MessageSummary, read_request
from agentmesh.instrumentation.anthropic._stream_manager import (
    AsyncStreamManagerProxy,
    Reopen,
    StreamManagerProxy,
)
from agentmesh.instrumentation.control import check_current_run
from agentmesh.instrumentation.openai import _hooks
from agentmesh.instrumentation.openai._call import (
    Instruments,
    ProviderCall,
    Summary,
    start_call,
    with_trace_headers,
)
from agentmesh.instrumentation.openai._wrappers import Endpoint, before_call, retry_kwargs

__all__ = ["MESSAGES", "stream_helper_wrapper"]


def _raw_classes() -> tuple[type, ...]:
    classes: list[type] = [_response.APIResponse, _response.AsyncAPIResponse]
    try:
        from anthropic import _legacy_response  # pyright: ignore[reportAttributeAccessIssue, reportUnknownVariableType]
    except ImportError:
        return tuple(classes)
    legacy: object = getattr(_legacy_response, "LegacyAPIResponse", None)  # pyright: ignore[reportUnknownArgumentType]
    if isinstance(legacy, type):
        classes.append(legacy)
    return tuple(classes)


def _summary(capture: bool) -> Summary:
    return MessageSummary(capture=capture)


MESSAGES: Final = Endpoint(
    "anthropic.messages",
    read_request,
    _summary,
    anthropic.Stream,
    anthropic.AsyncStream,
    _raw_classes(),
    inject_headers=True,  # the SDK's own propagation is off with its tracing (one span a call)
)
"""``messages.create`` / ``parse`` (plain and ``stream=True``), beta namespace included."""


def _start(instruments: Instruments, instance: object, kwargs: dict[str, Any]) -> ProviderCall:
    request_kwargs = {**kwargs, "stream": True}
    return start_call(
        instruments, read_request, _summary(instruments.capture_content), instance, request_kwargs
    )


def _proxy(
    call: ProviderCall, manager: object, asynchronous: bool, reopen: Reopen | None
) -> object:
    if asynchronous:
        return AsyncStreamManagerProxy(manager, call, reopen)  # pyright: ignore[reportArgumentType]
    return StreamManagerProxy(manager, call, reopen)  # pyright: ignore[reportArgumentType]


def stream_helper_wrapper(instruments: Instruments, asynchronous: bool) -> Wrapper:
    """Build the wrapper of ``Messages.stream`` (both return a context manager).

    The call is routed like ``messages.create``: the hooks' ``before`` may change its keyword
    arguments (the model chosen in enforce mode), and when entering the manager fails (the
    request is sent then) ``on_error`` may give arguments to open another manager with (a
    fallback model).

    Args:
        instruments: Tracer, metrics and the content switch.
        asynchronous: Whether the resource is the async one (its manager is async).

    Returns:
        A wrapt wrapper returning a proxy of the stream manager. In a run the collector
        stopped it raises :class:`~agentmesh.core.errors.RunStoppedError` (span ended with it).
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if _dedupe.suppressed(otel_context.get_current()):
            return wrapped(*args, **kwargs)
        call = _failopen.safe_call(
            "anthropic.stream.start_call", _start, instruments, instance, kwargs
        )
        if call is None:
            return wrapped(*args, **kwargs)
        hooks = _hooks.current()
        try:
            if hooks is not None:
                kwargs = before_call(hooks, MESSAGES, call, kwargs)  # routed, or stopped
            else:
                check_current_run()  # a stopped run's call is not sent (fail-open otherwise)
        except RunStoppedError as exc:
            call.finish(exc)
            raise
        sent = [kwargs]  # the arguments of the manager in use (a fallback replaces them)

        def open_manager(arguments: dict[str, Any]) -> Any:
            with call.activated():
                headers = (
                    _failopen.safe_call("anthropic.stream.headers", with_trace_headers, arguments)
                    if call.sends_trace_headers()
                    else None
                )
                return wrapped(*args, **(headers if headers is not None else arguments))

        def reopen(error: BaseException) -> Any:
            retry = retry_kwargs(hooks, MESSAGES, call, sent[0], error)
            if retry is None:
                return None
            sent[0] = retry
            try:
                return open_manager(retry)
            except Exception as exc:  # noqa: BLE001 - the first error reaches the app instead
                _failopen.report("anthropic.stream.fallback", exc)
                return None

        try:
            manager = open_manager(kwargs)
        except BaseException as exc:
            call.finish(exc)
            raise
        proxied = _failopen.safe_call(
            "anthropic.stream.proxy",
            _proxy,
            call,
            manager,
            asynchronous,
            reopen if hooks is not None else None,
        )
        if proxied is None:
            call.finish()
            return manager
        return proxied

    return wrapper
