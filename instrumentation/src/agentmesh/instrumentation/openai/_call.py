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

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation import _SPAN_KEY  # pyright: ignore[reportPrivateUsage]
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    SERVER_ADDRESS,
)
from agentmesh.instrumentation import _content, _dedupe, _failopen
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._metrics import GenAIMetrics
from agentmesh.instrumentation.openai._estimate import estimate_stream_usage

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

_OWN_PREFIX = "agentmesh."


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
        prompt_chars: Characters of the prompt, for a stream that will report no usage (its
            token counts are then estimated); ``None`` otherwise.
    """

    model: str
    stream: bool
    attributes: dict[str, AttributeValue]
    span_name: str
    prompt_chars: int | None = None


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

    A *guest* call rides on a peer instrumentation's span (the peer wrapped ours, see
    :mod:`agentmesh.instrumentation._dedupe`): it only adds our ``agentmesh.*`` attributes to
    that span, and never ends it nor records metrics (the peer does).

    Args:
        span: The started span (or the peer's span, for a guest call).
        request: What the request asked for.
        summary: Collects what the response says.
        instruments: Metrics and the content switch.
        guest: Whether the span is a peer's.
    """

    __slots__ = (
        "_finished",
        "_first_chunk",
        "_instruments",
        "_lock",
        "_started",
        "guest",
        "request",
        "span",
        "summary",
    )

    def __init__(
        self,
        span: Span,
        request: CallRequest,
        summary: Summary,
        instruments: Instruments,
        guest: bool = False,
    ) -> None:
        self.span = span
        self.request = request
        self.summary = summary
        self._instruments = instruments
        self._started = time.perf_counter()
        self._first_chunk: float | None = None
        self._lock = threading.Lock()
        self._finished = False
        self.guest = guest

    @property
    def finished(self) -> bool:
        """Whether the span was ended."""
        return self._finished

    @contextmanager
    def activated(self) -> Generator[None]:
        """Make the span current for the duration of the SDK call, with the peers' suppression keys.

        Yields:
            Nothing.
        """
        values = dict(otel_context.get_current())
        values.update(_dedupe.suppression_values())
        values[_SPAN_KEY] = self.span
        with attached(Context(values)):
            yield

    def attach(self, current: Context) -> object | None:
        """Make the span current for the SDK call, with the peers' suppression keys; never raises.

        One context is built and attached: ``current`` plus the span and the values of
        :func:`~agentmesh.instrumentation._dedupe.suppression_values`.

        Args:
            current: The context current when the call started.

        Returns:
            The token for :func:`detach`, or ``None`` when attaching failed.
        """
        try:
            values = dict(current)
            values.update(_dedupe.suppression_values())
            values[_SPAN_KEY] = self.span
            return otel_context.attach(Context(values))
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
        """Take what a streamed chunk says; the first one gives the time to first chunk.

        Args:
            chunk: A streamed chunk or event.
        """
        try:
            if self._first_chunk is None:
                self._first_chunk = time.perf_counter() - self._started
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
        if self.guest:
            self._finish_guest()
            return
        duration = time.perf_counter() - self._started
        span = self.span
        try:
            attributes = self.summary.attributes(self.request.model)
            chars = self.request.prompt_chars
            if chars is not None and GEN_AI_USAGE_OUTPUT_TOKENS not in attributes:
                chunks: object = getattr(self.summary, "content_chunks", 0)
                if isinstance(chunks, int) and chunks > 0:  # something was read to count
                    attributes.update(
                        estimate_stream_usage(self.request.model, self.summary.model, chars, chunks)
                    )
            if self._first_chunk is not None:  # set with the rest: one set_attributes call
                attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self._first_chunk
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

    def _finish_guest(self) -> None:
        try:
            if self.span.is_recording():
                attributes = self.summary.attributes(self.request.model)
                own = {k: v for k, v in attributes.items() if k.startswith(_OWN_PREFIX)}
                if own:
                    self.span.set_attributes(own)
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.safe_call("provider.guest_attributes", _reraise, exc)

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
    current: Context | None = None,
) -> ProviderCall:
    """Start the span of a call (raises on our bugs: call it through fail-open).

    When the current span is a peer instrumentation's model-call span, no span is started: the
    call is a guest on the peer's span (see :mod:`agentmesh.instrumentation._dedupe`).

    Args:
        instruments: Tracer, metrics and the content switch.
        reader: Reads the request.
        summary: Collects what the response says.
        instance: The SDK resource the method was called on.
        kwargs: The call's keyword arguments.
        current: The current context (read when not given).

    Returns:
        The call in flight.
    """
    request = reader(instance, kwargs, instruments.capture_content)
    parent = trace.get_current_span(current)
    if _dedupe.peer_span(parent):
        own = {k: v for k, v in request.attributes.items() if k.startswith(_OWN_PREFIX)}
        if own:
            parent.set_attributes(own)
        return ProviderCall(parent, request, summary, instruments, guest=True)
    span = instruments.tracer.start_span(
        request.span_name, kind=SpanKind.CLIENT, attributes=request.attributes, context=current
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
    if _default_propagation():
        _inject_default(carrier)
    else:
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


_textmap_seen: list[object] = [None, False]  # [global propagator, is it the default one?]
_BAGGAGE = W3CBaggagePropagator()


def _default_propagation() -> bool:
    # The default global propagator (W3C trace context, then W3C baggage) is injected inline:
    # the generic composite path costs several microseconds a call. Any other propagator
    # (B3, Jaeger, a custom one) goes through propagate.inject().
    textmap = propagate.get_global_textmap()
    if _textmap_seen[0] is not textmap:
        inner: object = getattr(textmap, "_propagators", None)
        default = (
            isinstance(textmap, CompositePropagator)
            and isinstance(inner, list | tuple)
            and [type(p) for p in cast("list[object]", inner)]
            == [TraceContextTextMapPropagator, W3CBaggagePropagator]
        )
        _textmap_seen[:] = [textmap, default]
    return _textmap_seen[1] is True


def _inject_default(carrier: dict[str, str]) -> None:
    # What TraceContextTextMapPropagator and W3CBaggagePropagator would write (same headers).
    current = otel_context.get_current()
    span_context = trace.get_current_span(current).get_span_context()
    if span_context.is_valid:
        carrier["traceparent"] = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
            f"-{span_context.trace_flags:02x}"
        )
        if span_context.trace_state:
            carrier["tracestate"] = span_context.trace_state.to_header()
    if baggage.get_all(current):
        _BAGGAGE.inject(carrier, current)
