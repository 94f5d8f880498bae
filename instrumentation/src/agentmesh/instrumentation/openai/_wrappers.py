"""Generic sync/async wrappers of a provider SDK method that returns a response or a stream.

An :class:`Endpoint` says how to read the request, what collects the response, and which SDK
classes are streams and raw responses; :func:`sync_wrapper` / :func:`async_wrapper` build the
wrapt wrappers. Provider-agnostic: the SDK classes are passed in by the caller, so importing
this module imports no SDK.

Raw responses (``with_raw_response``): the span ends when the wrapped method returns, with the
response attributes read by calling the raw response's ``parse()`` at once. The SDKs cache what
``parse()`` returns, so the application's own ``parse()`` gets the same object at no extra cost.
A streamed raw response is parsed the same way (that only builds the stream object), which is
then instrumented in place (:func:`~._stream.observe`), or replaced in the SDK's cache by a
proxy that ends the span; when neither can be done, the span ends at once with the request
attributes only. A raw response whose body the
application streams itself (``with_streaming_response``) is never read by us: its span ends
when the method returns, with the request attributes only.

One span per call (:mod:`agentmesh.instrumentation._dedupe`): a call made under a suppression
key passes through; under a peer's model-call span it is a guest on that span; otherwise the
context attached around the SDK call tells inner peers to skip theirs. The routing hook point
(:mod:`._hooks`) runs just before the SDK call and on its errors. The one exception a hook
may raise into the application is :class:`~agentmesh.core.errors.RunStoppedError` (the
collector stopped the run): the call is not sent and its span ends with that error.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agentmesh.core.errors import RunStoppedError
from agentmesh.instrumentation import _dedupe, _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.openai import _call, _hooks
from agentmesh.instrumentation.openai._stream import AsyncStreamProxy, StreamProxy, observe

__all__ = ["Endpoint", "async_wrapper", "before_call", "retry_kwargs", "sync_wrapper"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to instrument one SDK method.

    Attributes:
        name: Short name, for the logs (``openai.chat``).
        reader: Reads the request into a :class:`~._call.CallRequest`.
        summary: Builds the response collector; its argument is the content-capture switch.
        sync_stream: The SDK's synchronous stream class.
        async_stream: The SDK's asynchronous stream class.
        raw_response: The SDK's raw-response classes (``with_raw_response``), if any.
        inject_headers: Add W3C trace context and baggage headers to the request (for SDKs
            that do not propagate context themselves).
    """

    name: str
    reader: _call.RequestReader
    summary: Callable[[bool], _call.Summary]
    sync_stream: type
    async_stream: type
    raw_response: tuple[type, ...] = ()
    inject_headers: bool = True


def _proxy_stream(endpoint: Endpoint, call: _call.ProviderCall, result: object) -> object | None:
    if isinstance(result, endpoint.sync_stream):
        observed = observe(result, call)  # in place when the stream has the usual shape
        if observed is not None:
            return observed
        return StreamProxy(result, call)  # pyright: ignore[reportArgumentType]
    if isinstance(result, endpoint.async_stream):
        return AsyncStreamProxy(result, call)  # pyright: ignore[reportArgumentType]
    return None


def _raw_parsed(
    endpoint: Endpoint, call: _call.ProviderCall, raw: object, parsed: object
) -> object:
    proxy = _proxy_stream(endpoint, call, parsed)
    if proxy is None:
        call.absorb(parsed)
        call.finish()
        return raw
    if proxy is parsed:  # instrumented in place: the SDK's cache already holds it
        return raw
    cache: object = getattr(raw, "_parsed_by_type", None)
    if isinstance(cache, dict):
        for key, value in list(cache.items()):  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
            if value is parsed:
                cache[key] = proxy
                return raw
    call.finish()
    return raw


def _wrap_result(endpoint: Endpoint, call: _call.ProviderCall, result: object) -> object:
    if call.request.stream:
        proxy = _proxy_stream(endpoint, call, result)
        if proxy is not None:
            return proxy
    if endpoint.raw_response and isinstance(result, endpoint.raw_response):
        if not _parseable(call, result):
            call.finish()
            return result
        parsed = _parse(result)
        return _raw_parsed(endpoint, call, result, parsed)
    call.absorb(result)
    call.finish()
    return result


def _finish_with(endpoint: Endpoint, call: _call.ProviderCall, result: object) -> object:
    try:
        return _wrap_result(endpoint, call, result)
    except Exception as exc:  # noqa: BLE001 - fail-open (inline: this runs on every call)
        _failopen.report(f"{endpoint.name}.wrap_result", exc)
        call.finish()
        return result


def _start(
    instruments: _call.Instruments,
    endpoint: Endpoint,
    instance: object,
    kwargs: dict[str, Any],
    current: Context,
) -> _call.ProviderCall | None:
    try:
        summary = endpoint.summary(instruments.capture_content)
        return _call.start_call(instruments, endpoint.reader, summary, instance, kwargs, current)
    except Exception as exc:  # noqa: BLE001 - fail-open (inline: this runs on every call)
        _failopen.report(f"{endpoint.name}.start_call", exc)
        return None


def before_call(
    hooks: _hooks.CallHooks, endpoint: Endpoint, call: _call.ProviderCall, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Run the ``before`` hook: the keyword arguments to send (the same when it fails).

    ``call`` notes the arguments to send (:meth:`~._call.ProviderCall.sending`): the call is
    priced by the model sent, which the hook may have changed.

    Args:
        hooks: The installed hooks.
        endpoint: The endpoint called.
        call: The call, started.
        kwargs: The keyword arguments the application gave.

    Returns:
        The keyword arguments to call the SDK with.

    Raises:
        RunStoppedError: The collector stopped the run (the caller ends the span with it).
    """
    if hooks.before is None:
        return kwargs
    try:  # inline rather than safe_call: this runs on every call
        sent = hooks.before(call.span, endpoint.name, kwargs)
    except RunStoppedError:
        raise  # on purpose: the collector stopped this run (the caller ends the span with it)
    except Exception as exc:  # noqa: BLE001 - fail-open
        _failopen.report(f"{endpoint.name}.hook_before", exc)
        return kwargs
    call.sending(sent)
    return sent


def retry_kwargs(
    hooks: _hooks.CallHooks | None,
    endpoint: Endpoint,
    call: _call.ProviderCall,
    kwargs: dict[str, Any],
    error: BaseException,
) -> dict[str, Any] | None:
    """Run the ``on_error`` hook (never raises).

    ``call`` notes the keyword arguments to try again with (the fallback model prices the
    call, :meth:`~._call.ProviderCall.sending`).

    Args:
        hooks: The installed hooks, if any.
        endpoint: The endpoint called.
        call: The call.
        kwargs: The keyword arguments that failed.
        error: The SDK's error.

    Returns:
        The keyword arguments to try again with, or ``None`` to let the error through.
    """
    if hooks is None or hooks.on_error is None:
        return None
    retry = _failopen.safe_call(
        f"{endpoint.name}.hook_on_error", hooks.on_error, call.span, endpoint.name, kwargs, error
    )
    if retry is not None:
        call.sending(retry)
    return retry


def _headers(
    endpoint: Endpoint,
    kwargs: dict[str, Any],
    call: _call.ProviderCall,
    token: object | None,
    current: Context,
) -> dict[str, Any]:
    if not endpoint.inject_headers:
        return kwargs
    try:
        if not call.sends_trace_headers():
            return kwargs
        # With the call's context attached (token), the current span is the call's.
        return _call.with_trace_headers(kwargs, call.span if token is not None else None, current)
    except Exception as exc:  # noqa: BLE001 - fail-open (inline: this runs on every call)
        _failopen.report("trace_headers", exc)
        return kwargs


def sync_wrapper(instruments: _call.Instruments, endpoint: Endpoint) -> Wrapper:
    """Build the wrapper of a synchronous SDK method.

    Args:
        instruments: Tracer, metrics and the content switch.
        endpoint: What the method is and returns.

    Returns:
        A wrapt wrapper.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        current = otel_context.get_current()
        if _dedupe.suppressed(current):
            return wrapped(*args, **kwargs)
        call = _start(instruments, endpoint, instance, kwargs, current)
        if call is None:
            return wrapped(*args, **kwargs)
        hooks = _hooks.current()
        if hooks is not None:
            try:
                kwargs = before_call(hooks, endpoint, call, kwargs)
            except RunStoppedError as exc:
                call.finish(exc)
                raise
        token = call.attach(current)
        try:
            while True:
                try:
                    result = wrapped(*args, **_headers(endpoint, kwargs, call, token, current))
                    break
                except Exception as exc:
                    retry = retry_kwargs(hooks, endpoint, call, kwargs, exc)
                    if retry is None:
                        raise
                    kwargs = retry
        except BaseException as exc:
            call.finish(exc)
            raise
        finally:
            _call.detach(token)
        return _finish_with(endpoint, call, result)

    return wrapper


async def _finish_async(endpoint: Endpoint, call: _call.ProviderCall, result: object) -> object:
    if endpoint.raw_response and isinstance(result, endpoint.raw_response):
        if not _parseable(call, result):
            call.finish()
            return result
        try:
            parsed = _parse(result)
            if inspect.isawaitable(parsed):
                parsed = await parsed
        except Exception as exc:  # noqa: BLE001 - fail-open: the app's own parse() will say
            _failopen.safe_call(f"{endpoint.name}.raw_parse", _raise, exc)
            call.finish()
            return result
        wrapped = _failopen.safe_call(
            f"{endpoint.name}.wrap_raw", _raw_parsed, endpoint, call, result, parsed
        )
        if wrapped is None:
            call.finish()
            return result
        return wrapped
    return _finish_with(endpoint, call, result)


def _parseable(call: _call.ProviderCall, raw: object) -> bool:
    # A raw response whose body was read (with_raw_response), or a server-sent event stream
    # (parsing builds the stream object, reads nothing). Not an unread plain body
    # (with_streaming_response): the application streams it, we must not read it first.
    if call.request.stream:
        return True
    http_response: object = getattr(raw, "http_response", None)
    return getattr(http_response, "is_closed", False) is True


def _parse(raw: object) -> object:
    parse: Callable[[], object] = getattr(raw, "parse")  # noqa: B009 - any SDK's raw response
    return parse()


def _raise(exc: Exception) -> None:
    raise exc


def async_wrapper(instruments: _call.Instruments, endpoint: Endpoint) -> Wrapper:
    """Build the wrapper of an asynchronous SDK method.

    Args:
        instruments: Tracer, metrics and the content switch.
        endpoint: What the method is and returns.

    Returns:
        A wrapt wrapper returning a coroutine.
    """

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        current = otel_context.get_current()
        if _dedupe.suppressed(current):
            return await wrapped(*args, **kwargs)
        call = _start(instruments, endpoint, instance, kwargs, current)
        if call is None:
            return await wrapped(*args, **kwargs)
        hooks = _hooks.current()
        if hooks is not None:
            try:
                kwargs = before_call(hooks, endpoint, call, kwargs)
            except RunStoppedError as exc:
                call.finish(exc)
                raise
        token = call.attach(current)
        try:
            while True:
                try:
                    sent = _headers(endpoint, kwargs, call, token, current)
                    result = await wrapped(*args, **sent)
                    break
                except Exception as exc:
                    retry = retry_kwargs(hooks, endpoint, call, kwargs, exc)
                    if retry is None:
                        raise
                    kwargs = retry
        except BaseException as exc:
            call.finish(exc)
            raise
        finally:
            _call.detach(token)
        return await _finish_async(endpoint, call, result)

    return wrapper
