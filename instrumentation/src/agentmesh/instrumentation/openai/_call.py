"""One chat-completions call in flight: its span, what the response said, and its single end.

A :class:`ChatCall` is started before the SDK call, fed the completion (or each streamed
chunk), and finished exactly once, whichever comes first: the response, the end of the stream,
an error, ``close()``, or the garbage collector. Every method is fail-open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from typing import cast

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Tracer

from agentmesh.core.semconv import GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation.openai import _attributes

__all__ = ["ChatCall", "start_call", "with_trace_headers"]


class ChatCall:
    """The span of one chat-completions call and what its response said.

    Args:
        span: The started span.
        request: What the request asked for.
    """

    def __init__(self, span: Span, request: _attributes.ChatRequest) -> None:
        self.span = span
        self.request = request
        self.summary = _attributes.ResponseSummary()
        self._started = time.monotonic()
        self._first_chunk_seen = False
        self._lock = threading.Lock()
        self._finished = False

    @property
    def finished(self) -> bool:
        """Whether the span was ended."""
        return self._finished

    @contextmanager
    def activated(self) -> Generator[None]:
        """Make the span current for the duration of the SDK call.

        Yields:
            Nothing.
        """
        with attached(trace.set_span_in_context(self.span)):
            yield

    def absorb(self, response: object) -> None:
        """Take what a complete (non-streamed) response says.

        Args:
            response: The ``ChatCompletion``.
        """
        with _failopen.guarded("openai.absorb_response"):
            self.summary.absorb(response)

    def on_chunk(self, chunk: object) -> None:
        """Take what a streamed chunk says; the first one sets the time to first chunk.

        Args:
            chunk: A ``ChatCompletionChunk``.
        """
        with _failopen.guarded("openai.absorb_chunk"):
            if not self._first_chunk_seen:
                self._first_chunk_seen = True
                self.span.set_attribute(
                    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, time.monotonic() - self._started
                )
            self.summary.absorb(chunk)

    def finish(self, error: BaseException | None = None) -> None:
        """Set the response attributes and end the span; later calls do nothing.

        Args:
            error: The application-visible exception that ended the call, if any.
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
        with _failopen.guarded("openai.response_attributes"):
            self.span.set_attributes(
                _attributes.response_attributes(self.summary, self.request.model)
            )
        if error is not None:
            _failopen.record_error(self.span, error)
        _failopen.end_span(self.span)


def start_call(tracer: Tracer, instance: object, kwargs: Mapping[str, object]) -> ChatCall:
    """Start the span of a ``create`` call (raises on our bugs: call it through fail-open).

    Args:
        tracer: The tracer.
        instance: The ``Completions`` resource.
        kwargs: The call's keyword arguments.

    Returns:
        The call in flight.
    """
    request = _attributes.read_request(instance, kwargs)
    span = tracer.start_span(request.span_name, kind=SpanKind.CLIENT, attributes=request.attributes)
    return ChatCall(span, request)


def with_trace_headers(kwargs: dict[str, object]) -> dict[str, object]:
    """Return the call's keyword arguments with W3C trace context and baggage headers added.

    Headers the application set itself win over the injected ones.

    Args:
        kwargs: The keyword arguments of ``create``.

    Returns:
        New keyword arguments (or the same when there is nothing to add).
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return kwargs
    existing = kwargs.get("extra_headers")
    if existing is not None and not isinstance(existing, Mapping):
        return kwargs
    merged: dict[object, object] = {}
    merged.update(carrier)
    if existing is not None:
        merged.update(cast("Mapping[object, object]", existing))
    return {**kwargs, "extra_headers": merged}
