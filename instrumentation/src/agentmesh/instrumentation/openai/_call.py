"""One provider call in flight: its span, what the response said, its metrics, its single end.

A :class:`ProviderCall` is started before the SDK call, fed the response (or each streamed
chunk or event), and finished exactly once, whichever comes first: the response, the end of the
stream, an error, ``close()``, the garbage collector, or the process's exit (a call still open
then, such as a stream the application stopped reading, is ended by
:mod:`agentmesh.instrumentation._open_calls`). Every method is fail-open.

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
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer
from opentelemetry.trace.propagation import _SPAN_KEY  # pyright: ignore[reportPrivateUsage]
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    SERVER_ADDRESS,
)
from agentmesh.instrumentation import _content, _dedupe, _failopen, _open_calls
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._metrics import GenAIMetrics
from agentmesh.instrumentation._provider_hosts import is_public_provider
from agentmesh.instrumentation._span_attributes import set_span_attributes, start_span
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
        """Attributes to set when the call ends (cost included).

        ``request_model`` is the model the call was sent to (``gen_ai.request.model``): the
        application's, unless routing replaced it. It prices the call when the response names
        no model the catalog knows.
        """
        ...

    def output_messages(self) -> list[_content.Message]:
        """The completion as GenAI output messages (only collected when capturing)."""
        ...


@dataclass(slots=True)
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
        propagate_to_public_providers: Whether trace headers also go to public model APIs
            (see :mod:`agentmesh.instrumentation._provider_hosts`).
    """

    tracer: Tracer
    metrics: GenAIMetrics | None
    capture_content: bool
    propagate_to_public_providers: bool = False


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
        "__weakref__",
        "_finished",
        "_first_chunk",
        "_instruments",
        "_lock",
        "_pending",
        "_sent_model",
        "_started",
        "active_at",
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
        self._pending: list[object] | None = None
        self._sent_model: str | None = None
        self.active_at: float | None = None
        """``time.perf_counter()`` when the call was last seen active: its stream handed to the
        application, or a chunk read (``None`` before). A call ended at exit ends then."""
        if not guest:
            _open_calls.track(self)

    @property
    def finished(self) -> bool:
        """Whether the span was ended."""
        return self._finished

    @property
    def sent_model(self) -> str:
        """The model the call was last sent to: the requested one unless routing replaced it."""
        sent = self._sent_model
        return self.request.model if sent is None else sent

    def sending(self, kwargs: Mapping[str, object]) -> None:
        """Note the keyword arguments the SDK is called with (routing may change the model).

        The call is priced by the model it was sent to (after enforce mode or a fallback),
        never by the one the application asked for: a model the catalog does not know gets
        no cost rather than another model's.

        Args:
            kwargs: The keyword arguments sent.
        """
        model = kwargs.get("model")
        self._sent_model = model if isinstance(model, str) and model else None

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
            return otel_context.attach(
                Context({**current, **_dedupe.suppression_values(), _SPAN_KEY: self.span})
            )
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.report("context.attach", exc)
            return None

    def absorb(self, response: object) -> None:
        """Take what a complete (non-streamed) response says.

        Args:
            response: The SDK's response object.
        """
        try:
            self.summary.absorb(response)
        except Exception as exc:  # noqa: BLE001 - fail-open (inline: this runs on every call)
            _failopen.report("provider.absorb_response", exc)

    def on_chunk(self, chunk: object) -> None:
        """Take what a streamed chunk says; the first one gives the time to first chunk.

        Args:
            chunk: A streamed chunk or event.
        """
        try:
            now = self.active_at = time.perf_counter()
            if self._first_chunk is None:
                self._first_chunk = now - self._started
            self.summary.absorb(chunk)
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.report("provider.absorb_chunk", exc)

    def pending_chunks(self) -> list[object]:
        """The list streamed chunks are appended to, absorbed in batches (see :meth:`flush`).

        Reading a chunk's fields as it passes costs more than reading a few of them together
        (the SDK's parsing runs in between); a stream reader appends each chunk here and calls
        :meth:`flush` every few chunks. :meth:`finish` absorbs what is still pending.

        Returns:
            The list (created on first use).
        """
        pending = self._pending
        if pending is None:
            pending = self._pending = []
        return pending

    def flush(self) -> None:
        """Absorb the pending chunks, in order (never raises)."""
        pending = self._pending
        if not pending:
            return
        absorb = self.summary.absorb
        for chunk in pending:
            try:
                absorb(chunk)
            except Exception as exc:  # noqa: BLE001 - fail-open
                _failopen.report("provider.absorb_chunk", exc)
        pending.clear()

    def first_chunk(self) -> None:
        """Note that the first chunk arrived now (for the time to first chunk; once)."""
        now = self.active_at = time.perf_counter()
        if self._first_chunk is None:
            self._first_chunk = now - self._started

    def finish(self, error: BaseException | None = None, at_exit: bool = False) -> None:
        """Set the response attributes, end the span, record the metrics; later calls do nothing.

        Args:
            error: The application-visible exception that ended the call, if any.
            at_exit: The call was still open at exit (see :meth:`end_at_exit`).
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
        _open_calls.untrack(self)
        if self._pending:
            self.flush()
        if self.guest:
            self._finish_guest()
            return
        ended = time.perf_counter()
        end_time: int | None = None
        if at_exit and self.active_at is not None:
            end_time = time.time_ns() - int((ended - self.active_at) * 1e9)
            start: object = getattr(self.span, "start_time", None)  # the SDK's span has it
            if isinstance(start, int):
                end_time = max(end_time, start)
            ended = self.active_at
        duration = ended - self._started
        span = self.span
        summary = self.summary
        try:
            attributes = summary.attributes(self.sent_model)
            if self.request.prompt_chars is not None:
                self._estimate(attributes)
            if self._first_chunk is not None:  # set with the rest: one set_attributes call
                attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self._first_chunk
            if at_exit:
                attributes[_open_calls.ENDED_AT_EXIT] = True
            if self._instruments.capture_content:
                output = summary.output_messages()
                if output:
                    _content.put_json(attributes, GEN_AI_OUTPUT_MESSAGES, output)
            set_span_attributes(span, attributes)
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.report("provider.response_attributes", exc)
        if error is not None:
            _failopen.record_error(span, error)
        try:
            span.end(end_time)
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.report("provider.end_span", exc)
        metrics = self._instruments.metrics
        if metrics is not None:
            try:
                model = summary.model
                start = self.request.attributes
                key = (
                    start[GEN_AI_OPERATION_NAME],
                    start[GEN_AI_PROVIDER_NAME],
                    self.sent_model,  # the model sent: as on the span
                    model,
                    start.get(SERVER_ADDRESS),
                )
                metrics.record_call(
                    key,
                    duration,
                    summary.input_tokens,
                    summary.output_tokens,
                    type(error).__name__
                    if error is not None and _failopen.is_failure(error)
                    else None,
                )
            except Exception as exc:  # noqa: BLE001 - fail-open
                _failopen.report("metrics.record", exc)

    def end_at_exit(self) -> None:
        """End the span of a call still open at exit (nothing when it has ended).

        The span is marked ``agentmesh.call.ended_at_exit`` and keeps what was known: the
        tokens and cost of what was read (estimated when the stream reported no usage) and the
        time to first chunk. It ends when the call was last seen active (its last chunk read,
        else its stream handed over), so that the time the application went on without reading
        does not count; a call that never got that far ends now.
        """
        self.finish(at_exit=True)

    def sends_trace_headers(self) -> bool:
        """Whether this call's request carries our trace headers.

        Not to public model APIs unless configured
        (:mod:`agentmesh.instrumentation._provider_hosts`).

        Returns:
            ``True`` when the headers should be injected.
        """
        if self._instruments.propagate_to_public_providers:
            return True
        return not is_public_provider(self.request.attributes.get(SERVER_ADDRESS))

    def _estimate(self, attributes: dict[str, AttributeValue]) -> None:
        # A stream that reported no usage: estimate it from what was read.
        chars = self.request.prompt_chars
        if chars is None or GEN_AI_USAGE_OUTPUT_TOKENS in attributes:
            return
        chunks: object = getattr(self.summary, "content_chunks", 0)
        if isinstance(chunks, int) and chunks > 0:  # something was read to count
            attributes.update(
                estimate_stream_usage(self.sent_model, self.summary.model, chars, chunks)
            )

    def _finish_guest(self) -> None:
        try:
            if self.span.is_recording():
                attributes = self.summary.attributes(self.sent_model)
                own = {k: v for k, v in attributes.items() if k.startswith(_OWN_PREFIX)}
                if own:
                    self.span.set_attributes(own)
        except Exception as exc:  # noqa: BLE001 - fail-open
            _failopen.report("provider.guest_attributes", exc)


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
    if parent is not INVALID_SPAN and _dedupe.peer_span(parent):
        own = {k: v for k, v in request.attributes.items() if k.startswith(_OWN_PREFIX)}
        if own:
            parent.set_attributes(own)
        return ProviderCall(parent, request, summary, instruments, guest=True)
    span = start_span(
        instruments.tracer, request.span_name, SpanKind.CLIENT, request.attributes, current
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
        _failopen.report("context.detach", exc)


def with_trace_headers(
    kwargs: dict[str, object], span: Span | None = None, context: Context | None = None
) -> dict[str, object]:
    """Return the call's keyword arguments with W3C trace context and baggage headers added.

    Headers the application set itself win over the injected ones.

    Args:
        kwargs: The keyword arguments of the SDK method.
        span: The span the headers name (the current span when ``None``); only read with the
            default propagators.
        context: The context whose baggage is sent (the current one when ``None``); only read
            with the default propagators.

    Returns:
        New keyword arguments (or the same when there is nothing to add).
    """
    carrier: dict[str, str] = {}
    if _default_propagation():
        _inject_default(carrier, span, context)
    else:
        propagate.inject(carrier)
    if not carrier:
        return kwargs
    existing = kwargs.get("extra_headers")
    if existing is None:
        return {**kwargs, "extra_headers": carrier}
    if not isinstance(existing, Mapping):
        return kwargs
    merged: dict[object, object] = {}
    merged.update(carrier)
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


def _inject_default(
    carrier: dict[str, str], span: Span | None = None, context: Context | None = None
) -> None:
    # What TraceContextTextMapPropagator and W3CBaggagePropagator would write (same headers).
    if context is None:
        context = otel_context.get_current()
    if span is None:
        span = trace.get_current_span()
    span_context = span.get_span_context()
    if span_context.is_valid:
        carrier["traceparent"] = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
            f"-{span_context.trace_flags:02x}"
        )
        if span_context.trace_state:
            carrier["tracestate"] = span_context.trace_state.to_header()
    if baggage.get_all(context):
        _BAGGAGE.inject(carrier, context)
