"""One provider call in flight: its span, what the response said, its metrics, its single end.

A :class:`ProviderCall` is started before the SDK call, fed the response (or each streamed
chunk or event), and finished exactly once, whichever comes first: the response, the end of the
stream, an error, ``close()``, or the garbage collector. Every method is fail-open.

Nothing here is specific to OpenAI: the Anthropic instrumentation uses the same machinery with
its own request reader and :class:`Summary`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    SERVER_ADDRESS,
)
from agentmesh.instrumentation import _content, _failopen
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._metrics import GenAIMetrics

__all__ = [
    "CallRequest",
    "Instruments",
    "ProviderCall",
    "RequestReader",
    "Summary",
    "detach",
    "start_call",
    "with_trace_headers",
]


class Summary(Protocol):
    """What a response (or the chunks of a stream) said, for one kind of call."""

    @property
    def model(self) -> str | None:
        """The model that answered, once known."""
        ...

    @property
    def input_tokens(self) -> int | None:
        """Input tokens (all of them, cached included), once known."""
        ...

    @property
    def output_tokens(self) -> int | None:
        """Output tokens, once known."""
        ...

    def absorb(self, obj: object) -> None:
        """Take what a complete response, a chunk or a stream event carries."""
        ...

    def attributes(self, request_model: str) -> dict[str, AttributeValue]:
        """Attributes to set when the call ends (cost included)."""
        ...

    def output_messages(self) -> list[_content.Message]:
        """The completion as GenAI output messages (only collected when capturing)."""
        ...


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What the span needs from a call, read before it runs.

    Attributes:
        model: Requested model (``"unknown"`` when the call named none).
        stream: Whether a streamed response was asked for.
        attributes: Attributes to set when the span starts.
        span_name: ``{operation} {model}``.
    """

    model: str
    stream: bool
    attributes: dict[str, AttributeValue]
    span_name: str


RequestReader = Callable[[object, Mapping[str, object], bool], CallRequest]
"""Reads ``(resource instance, call kwargs, capture content?)`` into a :class:`CallRequest`."""


@dataclass(frozen=True, slots=True)
class Instruments:
    """What every wrapper of one instrumentor shares.

    Attributes:
        tracer: Spans are started with it.
        metrics: The GenAI client metrics (``None``: not recorded).
        capture_content: Whether prompts and completions are recorded.
    """

    tracer: Tracer
    metrics: GenAIMetrics | None
    capture_content: bool


class ProviderCall:
    """The span of one provider call and what its response said.

    Args:
        span: The started span.
        request: What the request asked for.
        summary: Collects what the response says.
        instruments: Metrics and the content switch.
    """

    __slots__ = (
        "_finished",
        "_first_chunk_seen",
        "_instruments",
        "_lock",
        "_started",
        "request",
        "span",
        "summary",
    )

    def __init__(
        self, span: Span, request: CallRequest, summary: Summary, instruments: Instruments
    ) -> None:
        self.span = span
        self.request = request
        self.summary = summary
        self._instruments = instruments
        self._started = time.perf_counter()
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

    def attach(self) -> object | None:
        """Make the span current (the wrappers' inlined :meth:`activated`); never raises.

        Returns:
            The token for :func:`detach`, or ``None`` when attaching failed.
        """
        try:
            return otel_context.attach(trace.set_span_in_context(self.span))
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.safe_call("context.attach", _reraise, exc)
            return None

    def absorb(self, response: object) -> None:
        """Take what a complete (non-streamed) response says.

        Args:
            response: The SDK's response object.
        """
        try:
            self.summary.absorb(response)
        except Exception as exc:  # noqa: BLE001 - fail-open (inline: this runs on every call)
            _failopen.safe_call("provider.absorb_response", _reraise, exc)

    def on_chunk(self, chunk: object) -> None:
        """Take what a streamed chunk says; the first one sets the time to first chunk.

        Args:
            chunk: A streamed chunk or event.
        """
        try:
            if not self._first_chunk_seen:
                self._first_chunk_seen = True
                self.span.set_attribute(
                    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, time.perf_counter() - self._started
                )
            self.summary.absorb(chunk)
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.safe_call("provider.absorb_chunk", _reraise, exc)

    def finish(self, error: BaseException | None = None) -> None:
        """Set the response attributes, end the span, record the metrics; later calls do nothing.

        Args:
            error: The application-visible exception that ended the call, if any.
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
        duration = time.perf_counter() - self._started
        span = self.span
        try:
            attributes = self.summary.attributes(self.request.model)
            if self._instruments.capture_content:
                output = self.summary.output_messages()
                if output:
                    _content.put_json(attributes, GEN_AI_OUTPUT_MESSAGES, output)
            span.set_attributes(attributes)
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.safe_call("provider.response_attributes", _reraise, exc)
        if error is not None:
            _failopen.record_error(span, error)
        try:
            span.end()
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.safe_call("provider.end_span", _reraise, exc)
        metrics = self._instruments.metrics
        if metrics is not None:
            metrics.record(
                self._metric_attributes(),
                duration,
                self.summary.input_tokens,
                self.summary.output_tokens,
                None if error is None else type(error).__name__,
            )

    def _metric_attributes(self) -> dict[str, AttributeValue]:
        start = self.request.attributes
        attributes: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: start[GEN_AI_OPERATION_NAME],
            GEN_AI_PROVIDER_NAME: start[GEN_AI_PROVIDER_NAME],
            GEN_AI_REQUEST_MODEL: self.request.model,
        }
        model = self.summary.model
        if model:
            attributes[GEN_AI_RESPONSE_MODEL] = model
        server = start.get(SERVER_ADDRESS)
        if server is not None:
            attributes[SERVER_ADDRESS] = server
        return attributes


def _reraise(exc: Exception) -> None:
    raise exc  # logged by safe_call: the one reporting path of fail-open


def start_call(
    instruments: Instruments,
    reader: RequestReader,
    summary: Summary,
    instance: object,
    kwargs: Mapping[str, object],
) -> ProviderCall:
    """Start the span of a call (raises on our bugs: call it through fail-open).

    Args:
        instruments: Tracer, metrics and the content switch.
        reader: Reads the request.
        summary: Collects what the response says.
        instance: The SDK resource the method was called on.
        kwargs: The call's keyword arguments.

    Returns:
        The call in flight.
    """
    request = reader(instance, kwargs, instruments.capture_content)
    span = instruments.tracer.start_span(
        request.span_name, kind=SpanKind.CLIENT, attributes=request.attributes
    )
    return ProviderCall(span, request, summary, instruments)


def detach(token: object | None) -> None:
    """Restore the context :meth:`ProviderCall.attach` replaced; never raises.

    Args:
        token: What ``attach`` returned.
    """
    if token is None:
        return
    try:
        otel_context.detach(token)  # pyright: ignore[reportArgumentType]
    except Exception as exc:  # noqa: BLE001 - fail-open
        _failopen.safe_call("context.detach", _reraise, exc)


def with_trace_headers(kwargs: dict[str, object]) -> dict[str, object]:
    """Return the call's keyword arguments with W3C trace context and baggage headers added.

    Headers the application set itself win over the injected ones.

    Args:
        kwargs: The keyword arguments of the SDK method.

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
