"""Proxies of the ``messages.stream(...)`` context managers (sync and async, beta too).

The helper builds its request without going through ``create``, so it is wrapped itself: the
span starts when ``stream()`` is called, the request runs (with the span current) when the
manager is entered, and the ``MessageStream``'s raw SSE stream is replaced by a stream proxy
that feeds each event to the call and ends the span on exhaustion, ``close()``, an error or
garbage collection. Leaving the ``with`` block ends it too (an exception raised in the block
is recorded on the span); a manager that is never entered ends its span when it is
garbage-collected. A call still open when the process exits is ended then, its span marked
(:mod:`agentmesh.instrumentation._open_calls`). Duck-typed: nothing here imports ``anthropic``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

import wrapt

from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation.openai._call import ProviderCall
from agentmesh.instrumentation.openai._stream import AsyncStreamProxy, ResponseProxy, StreamProxy

__all__ = ["AsyncStreamManagerProxy", "Reopen", "StreamManagerProxy"]

Reopen: TypeAlias = "Callable[[BaseException], Any]"
"""Given the error entering a manager raised, another manager to enter (a fallback's), or
``None`` to let the error through."""


class _Closable(Protocol):
    def close(self) -> object: ...


class _SyncManager(Protocol):
    def __enter__(self) -> object: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool | None: ...


class _AsyncManager(Protocol):
    async def __aenter__(self) -> object: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool | None: ...


def _swap_raw_stream(stream: object, call: ProviderCall, asynchronous: bool) -> None:
    raw: object = getattr(stream, "_raw_stream", None)
    if raw is None or isinstance(raw, StreamProxy | AsyncStreamProxy):
        return
    proxy = AsyncStreamProxy(raw, call) if asynchronous else StreamProxy(raw, call)  # pyright: ignore[reportArgumentType]
    stream._raw_stream = proxy  # pyright: ignore[reportAttributeAccessIssue]
    # older anthropic releases (0.40 among them): the helper's close() closes its own HTTP
    # response, not the event stream; closing that response must end the span too
    own: dict[str, object] = getattr(stream, "__dict__", {})
    response = own.get("response")
    if response is not None and not isinstance(response, ResponseProxy):
        stream.response = ResponseProxy(cast("_Closable", response), call)  # pyright: ignore[reportAttributeAccessIssue]


if TYPE_CHECKING:
    _StreamManagerProxyBase = wrapt.ObjectProxy[_SyncManager]
else:  # wrapt 1.x proxies are not subscriptable at run time
    _StreamManagerProxyBase = wrapt.ObjectProxy


class StreamManagerProxy(_StreamManagerProxyBase):
    """Wraps a ``MessageStreamManager``.

    Args:
        manager: The SDK's manager.
        call: The call the stream belongs to (already started).
    """

    def __init__(
        self, manager: _SyncManager, call: ProviderCall, reopen: Reopen | None = None
    ) -> None:
        super().__init__(manager)
        self._self_call = call
        self._self_reopen = reopen
        self._self_unentered = weakref.finalize(self, call.finish)
        self._self_unentered.atexit = False  # the open-call registry ends it then, marked

    def __enter__(self) -> object:
        self._self_unentered.detach()
        call = self._self_call
        while True:
            with call.activated():
                try:
                    stream = self.__wrapped__.__enter__()
                    break
                except Exception as exc:
                    other = None if self._self_reopen is None else self._self_reopen(exc)
                    if other is None:
                        call.finish(exc)
                        raise
                    self.__wrapped__ = other  # a fallback's manager, entered next
                except BaseException as exc:
                    call.finish(exc)
                    raise
        _failopen.safe_call("anthropic.stream_proxy", _swap_raw_stream, stream, call, False)
        return stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if exc is not None:
            self._self_call.finish(exc)
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_call.finish()


if TYPE_CHECKING:
    _AsyncStreamManagerProxyBase = wrapt.ObjectProxy[_AsyncManager]
else:  # wrapt 1.x proxies are not subscriptable at run time
    _AsyncStreamManagerProxyBase = wrapt.ObjectProxy


class AsyncStreamManagerProxy(_AsyncStreamManagerProxyBase):
    """Wraps an ``AsyncMessageStreamManager``.

    Args:
        manager: The SDK's manager.
        call: The call the stream belongs to (already started).
    """

    def __init__(
        self, manager: _AsyncManager, call: ProviderCall, reopen: Reopen | None = None
    ) -> None:
        super().__init__(manager)
        self._self_call = call
        self._self_reopen = reopen
        self._self_unentered = weakref.finalize(self, call.finish)
        self._self_unentered.atexit = False  # the open-call registry ends it then, marked

    async def __aenter__(self) -> object:
        self._self_unentered.detach()
        call = self._self_call
        while True:
            with call.activated():
                try:
                    stream = await self.__wrapped__.__aenter__()
                    break
                except Exception as exc:
                    other = None if self._self_reopen is None else self._self_reopen(exc)
                    if other is None:
                        call.finish(exc)
                        raise
                    self.__wrapped__ = other  # a fallback's manager, entered next
                except BaseException as exc:
                    call.finish(exc)
                    raise
        _failopen.safe_call("anthropic.stream_proxy", _swap_raw_stream, stream, call, True)
        return stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if exc is not None:
            self._self_call.finish(exc)
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_call.finish()
