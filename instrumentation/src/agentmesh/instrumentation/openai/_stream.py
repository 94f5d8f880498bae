"""Proxies of the SDK's ``Stream`` / ``AsyncStream`` that end the call's span exactly once.

The proxy behaves like the stream it wraps (``isinstance``, attributes such as ``response``,
iteration, context manager, ``close()``) and feeds each chunk to the :class:`ProviderCall`. The
span ends on exhaustion, on an error, on ``close()`` or leaving the ``with`` block, and, when
the application drops an unfinished stream, when the proxy is garbage-collected. A stream still
open when the process exits is ended then, its span marked as such, by
:mod:`agentmesh.instrumentation._open_calls` (the proxies' finalizers do not run at exit).

The SDKs' stream helpers (``chat.completions.stream``, ``responses.stream``) close the HTTP
response they read from ``stream.response`` rather than the stream: that attribute is therefore
a proxy too, whose ``close()`` / ``aclose()`` end the span. Provider-agnostic (duck-typed).

A synchronous SDK stream of the usual shape (a generator in ``_iterator`` and an HTTP
``response``, as ``openai.Stream`` and ``anthropic.Stream`` have) is instrumented in place by
:func:`observe` instead: its generator is wrapped by one that feeds each chunk to the call, and
its ``response`` by a :class:`ResponseProxy`. The application then iterates the SDK's own
object with one extra generator step per chunk, rather than a Python-level ``__next__`` per
chunk; the span ends on exhaustion, an error, ``close()`` (through the response), or when the
stream is garbage-collected (the wrapping generator is closed, or the response proxy is
collected when the stream was never iterated). Any other stream is wrapped by a proxy.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Generator, Iterator
from types import GeneratorType, TracebackType
from typing import TYPE_CHECKING, Protocol, cast

import wrapt

from agentmesh.instrumentation.openai._call import ProviderCall

__all__ = ["AsyncStreamProxy", "ResponseProxy", "StreamProxy", "observe"]

_BATCH = 16
"""Chunks absorbed together by the in-place stream reader (bounds what it holds)."""


class _Closable(Protocol):
    def close(self) -> object: ...


if TYPE_CHECKING:
    _ResponseProxyBase = wrapt.ObjectProxy[_Closable]
else:  # wrapt 1.x proxies are not subscriptable at run time
    _ResponseProxyBase = wrapt.ObjectProxy


class ResponseProxy(_ResponseProxyBase):
    """Wraps the HTTP response of a stream: ``close()`` and ``aclose()`` end the span too.

    Args:
        response: The SDK's HTTP response.
        call: The call whose span closing ends.
    """

    def __init__(
        self, response: _Closable, call: ProviderCall, reading: _Reading | None = None
    ) -> None:
        super().__init__(response)
        self._self_call = call
        self._self_reading = reading

    def close(self) -> object:
        """Close the response and end the span (unless a chunk is being read: see below)."""
        try:
            return self.__wrapped__.close()
        finally:
            # The SDK's generator closes the response in its ``finally``, before its error
            # reaches the reader that wraps it: that reader ends the span, with the error.
            reading = self._self_reading
            if reading is None or not reading.now:
                self._self_call.finish()

    async def aclose(self) -> object:
        """Close the response (asynchronously) and end the span."""
        try:
            closer = getattr(self.__wrapped__, "aclose")  # noqa: B009 - httpx's async close
            return await closer()
        finally:
            self._self_call.finish()

    def __del__(self) -> None:
        # A stream dropped before it was ever iterated: nothing else would end its span.
        self._self_call.finish()


class _Reading:
    """Whether the in-place reader is inside the SDK's generator (shared with the response)."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = False


def _observed(chunks: Iterator[object], call: ProviderCall, reading: _Reading) -> Generator[object]:
    """Yield the SDK generator's chunks, feeding each to ``call``; end the span at the end."""
    reading.now = True
    try:
        chunk = next(chunks)
    except StopIteration:
        call.finish()
        return
    except BaseException as exc:  # the SDK's error (the application's to handle): recorded
        call.finish(exc)
        raise
    finally:
        reading.now = False
    call.first_chunk()
    pending = call.pending_chunks()
    flush = call.flush
    clock = time.perf_counter
    try:
        while True:
            pending.append(chunk)
            if len(pending) >= _BATCH:
                flush()
            yield chunk
            reading.now = True
            chunk = next(chunks)
            reading.now = False
            call.active_at = clock()  # a call ended at exit ends at its last chunk read
    except StopIteration:
        call.finish()
    except GeneratorExit:  # closed early: by the garbage collector, or by hand
        call.finish()
        raise
    except BaseException as exc:  # raised by the SDK's generator, or thrown in by the app
        call.finish(exc)
        raise
    finally:
        reading.now = False


def observe(stream: object, call: ProviderCall) -> object | None:
    """Instrument a synchronous SDK stream in place (see the module docstring).

    Args:
        stream: The SDK stream (``openai.Stream``, ``anthropic.Stream``).
        call: The call whose span the stream ends.

    Returns:
        The same stream, or ``None`` when its shape is not the expected one (the caller then
        wraps it in a :class:`StreamProxy`).
    """
    values: object = getattr(stream, "__dict__", None)
    if type(values) is not dict:
        return None
    fields = cast("dict[str, object]", values)
    chunks = fields.get("_iterator")
    response = fields.get("response")
    if type(chunks) is not GeneratorType or response is None or isinstance(response, ResponseProxy):
        return None
    reading = _Reading()
    call.active_at = time.perf_counter()  # handed over
    fields["response"] = ResponseProxy(cast("_Closable", response), call, reading)
    fields["_iterator"] = _observed(cast("Iterator[object]", chunks), call, reading)
    return stream


class _SyncStream(Protocol):
    @property
    def response(self) -> _Closable: ...
    def __next__(self) -> object: ...
    def __enter__(self) -> object: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool | None: ...
    def close(self) -> None: ...


class _AsyncStream(Protocol):
    @property
    def response(self) -> _Closable: ...
    async def __anext__(self) -> object: ...
    async def __aenter__(self) -> object: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool | None: ...
    async def close(self) -> None: ...


if TYPE_CHECKING:
    _StreamProxyBase = wrapt.ObjectProxy[_SyncStream]
else:  # wrapt 1.x proxies are not subscriptable at run time
    _StreamProxyBase = wrapt.ObjectProxy


class StreamProxy(_StreamProxyBase):
    """Wraps a synchronous ``openai.Stream``.

    Args:
        stream: The SDK stream.
        call: The call whose span the stream ends.
    """

    def __init__(self, stream: _SyncStream, call: ProviderCall) -> None:
        super().__init__(stream)
        self._self_call = call
        call.active_at = time.perf_counter()  # handed over
        # not at exit: the open-call registry ends the call then, marked (_open_calls)
        weakref.finalize(self, call.finish).atexit = False

    @property
    def response(self) -> object:
        """The HTTP response, proxied so that closing it ends the span."""
        cached: object = getattr(self, "_self_response", None)
        if cached is None:
            cached = ResponseProxy(self.__wrapped__.response, self._self_call)
            self._self_response = cached
        return cached

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> object:
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            self._self_call.finish()
            raise
        except BaseException as exc:
            self._self_call.finish(exc)
            raise
        self._self_call.on_chunk(chunk)
        return chunk

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_call.finish()

    def close(self) -> None:
        """Close the response and end the span."""
        try:
            self.__wrapped__.close()
        finally:
            self._self_call.finish()


if TYPE_CHECKING:
    _AsyncStreamProxyBase = wrapt.ObjectProxy[_AsyncStream]
else:  # wrapt 1.x proxies are not subscriptable at run time
    _AsyncStreamProxyBase = wrapt.ObjectProxy


class AsyncStreamProxy(_AsyncStreamProxyBase):
    """Wraps an ``openai.AsyncStream``.

    Args:
        stream: The SDK stream.
        call: The call whose span the stream ends.
    """

    def __init__(self, stream: _AsyncStream, call: ProviderCall) -> None:
        super().__init__(stream)
        self._self_call = call
        call.active_at = time.perf_counter()  # handed over
        # not at exit: the open-call registry ends the call then, marked (_open_calls)
        weakref.finalize(self, call.finish).atexit = False

    @property
    def response(self) -> object:
        """The HTTP response, proxied so that closing it ends the span."""
        cached: object = getattr(self, "_self_response", None)
        if cached is None:
            cached = ResponseProxy(self.__wrapped__.response, self._self_call)
            self._self_response = cached
        return cached

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> object:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_call.finish()
            raise
        except BaseException as exc:
            self._self_call.finish(exc)
            raise
        self._self_call.on_chunk(chunk)
        return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_call.finish()

    async def close(self) -> None:
        """Close the response and end the span."""
        try:
            await self.__wrapped__.close()
        finally:
            self._self_call.finish()

    async def aclose(self) -> None:
        """Close the response and end the span (alias of :meth:`close`)."""
        await self.close()
