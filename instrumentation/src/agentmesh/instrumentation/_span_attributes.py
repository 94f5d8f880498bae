"""Put the attributes of a provider span on it without the SDK checking them a second time.

The OpenTelemetry SDK checks and copies every attribute value it is given
(``BoundedAttributes`` cleaning): about a microsecond an attribute, a large share of what a
provider span costs. The attributes of our provider spans are built by us and are already of the
types the SDK stores unchanged (``str``, ``bool``, ``int``, ``float``, tuples of strings), so
when the span is the SDK's own they are written straight into its attribute dict.

This reaches into SDK internals, so it is guarded and always has a public-API fallback:

- The fast path needs the exact SDK classes (``opentelemetry.sdk.trace.Tracer`` / ``_Span``,
  ``BoundedAttributes``) with the private fields it uses (checked when the module is loaded, on
  a probe span), no limit on attribute value length, room under the attribute count limit, and
  values of exactly the types above. Anything else goes through ``set_attributes``.
- At span start, a sampler or span processor could read the attributes passed to
  ``start_span``. The span is therefore started without them, then filled, only when the
  tracer's sampler is one of the SDK's built-in samplers (none of them reads attributes) and
  every span processor is one known to ignore attributes at start; otherwise the attributes are
  passed to ``start_span`` as usual.

The result is the same span either way (same attributes, same values); a test checks both paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple, cast

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core.log import get_logger

__all__ = ["fast_path_available", "set_span_attributes", "start_span"]

_log = get_logger(__name__)

_SCALARS: Final = frozenset({str, bool, int, float})


_PROCESSORS: Final = frozenset(
    {
        "opentelemetry.sdk.trace.export.SimpleSpanProcessor",
        "opentelemetry.sdk.trace.export.BatchSpanProcessor",
        "agentmesh.instrumentation._baggage_processor.BaggageSpanProcessor",
        "agentmesh.instrumentation._processor.BoundedSpanProcessor",
    }
)
"""Span processors whose ``on_start`` reads no attribute the fast start would leave out.

The baggage processor stamps baggage entries a span has not set: started empty, the span gets
them first, then ours on top; the one key both write (the run id) holds the same baggage value.
"""

_DELEGATES: Final = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


class _Sdk(NamedTuple):
    tracer: type
    span: type
    bounded: type
    multi: type
    samplers: frozenset[type]


def _load() -> _Sdk | None:
    """The SDK classes the fast path relies on, or ``None`` when they are not as expected."""
    try:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.trace import (
            SynchronousMultiSpanProcessor,
            TracerProvider,
            _Span,  # pyright: ignore[reportPrivateUsage]
            sampling,
        )
        from opentelemetry.sdk.trace import Tracer as SdkTracer

        # Explicit settings: the probe must not depend on OTEL_* variables.
        provider = TracerProvider(sampler=sampling.ALWAYS_ON, shutdown_on_exit=False)
        probe = provider.get_tracer("agentmesh.probe").start_span("probe")
        fields = cast("dict[str, object]", vars(probe))
        bounded = fields.get("_attributes")
        ok = (
            type(probe) is _Span
            and type(bounded) is BoundedAttributes
            and {"_lock", "_end_time"} <= fields.keys()
            and {"_dict", "_immutable", "maxlen", "max_value_len"}
            <= cast("dict[str, object]", vars(bounded)).keys()
            and {"span_processor", "sampler"}
            <= cast("dict[str, object]", vars(provider.get_tracer("agentmesh.probe"))).keys()
        )
        probe.end()
        if not ok:
            return None
        samplers: frozenset[type] = frozenset(
            {
                sampling.StaticSampler,
                sampling.TraceIdRatioBased,
                sampling.ParentBased,
                sampling.ParentBasedTraceIdRatio,
            }
        )
        return _Sdk(SdkTracer, _Span, BoundedAttributes, SynchronousMultiSpanProcessor, samplers)
    except Exception as exc:  # noqa: BLE001 - another SDK: the public API only
        _log.debug("agentmesh.span_fast_path_unavailable", error=str(exc))
        return None


_loaded: list[_Sdk | None] = []  # [the SDK's classes, or None], once loaded
_samplers_seen: dict[int, tuple[object, bool]] = {}
_tracer_seen: list[object] = [None, None, False]  # [tracer, its processor tuple, fast start?]


def _sdk() -> _Sdk | None:
    if not _loaded:
        _loaded.append(_load())
    return _loaded[0]


def fast_path_available() -> bool:
    """Whether the installed SDK is one the fast path knows (see the module docstring).

    Returns:
        True when the SDK's classes and fields are the expected ones.
    """
    return _sdk() is not None


def _clean(attributes: Mapping[str, AttributeValue]) -> bool:
    scalars = _SCALARS
    for value in attributes.values():
        if type(value) in scalars:
            continue
        if type(value) is not tuple:
            return False
        for item in cast("tuple[object, ...]", value):
            if type(item) is not str:
                return False
    return True


def _sampler_known(sampler: object, samplers: frozenset[type]) -> bool:
    seen = _samplers_seen.get(id(sampler))
    if seen is not None and seen[0] is sampler:
        return seen[1]
    known = type(sampler) in samplers
    if known and hasattr(sampler, "_root"):  # a parent-based sampler: its delegates too
        delegates = [getattr(sampler, name, None) for name in _DELEGATES]
        known = all(type(d) in samplers and not hasattr(d, "_root") for d in delegates)
    if len(_samplers_seen) >= 64:
        _samplers_seen.clear()
    _samplers_seen[id(sampler)] = (sampler, known)
    return known


def _processor_name(processor: object) -> str:
    return f"{type(processor).__module__}.{type(processor).__qualname__}"


def _start_empty(tracer: Tracer) -> bool:
    """Whether spans of ``tracer`` may start without attributes and be filled right after."""
    sdk = _loaded[0] if _loaded else _sdk()
    if sdk is None or type(tracer) is not sdk.tracer:
        return False
    sdk_tracer: Any = tracer  # the SDK's own Tracer (exact type): its fields were probed
    processor: object = sdk_tracer.span_processor
    if type(processor) is not sdk.multi:
        return False
    processors: object = getattr(processor, "_span_processors", None)
    seen = _tracer_seen
    if seen[0] is tracer and seen[1] is processors:  # the sampler of a tracer never changes
        return seen[2] is True
    known = isinstance(processors, tuple) and all(
        _processor_name(p) in _PROCESSORS for p in cast("tuple[object, ...]", processors)
    )
    known = known and _sampler_known(sdk_tracer.sampler, sdk.samplers)
    seen[:] = [tracer, processors, known]
    return known


def _fill(span: Span, attributes: Mapping[str, AttributeValue]) -> bool:
    """Write clean attributes into an SDK span's attribute dict; ``False``: not done."""
    sdk = _loaded[0] if _loaded else _sdk()
    if sdk is None or type(span) is not sdk.span:
        return False
    sdk_span: Any = span  # the SDK's own span (exact type): its fields were probed
    bounded: Any = sdk_span._attributes
    if (
        type(bounded) is not sdk.bounded
        or bounded.max_value_len is not None
        or bounded._immutable is not False
    ):
        return False
    stored: object = bounded._dict
    maxlen: object = bounded.maxlen
    if type(stored) is not dict or (maxlen is not None and type(maxlen) is not int):
        return False
    target = cast("dict[str, AttributeValue]", stored)
    with sdk_span._lock:
        if sdk_span._end_time is not None:
            return False  # ended: the public API warns and drops them
        if maxlen is not None and len(target) + len(attributes) > maxlen:
            return False  # the limit may drop some: let the SDK decide which
        target.update(attributes)
    return True


def start_span(
    tracer: Tracer,
    name: str,
    kind: SpanKind,
    attributes: dict[str, AttributeValue],
    context: Context | None,
) -> Span:
    """Start a span with ``attributes``, the SDK's checks skipped when that is safe.

    Args:
        tracer: The tracer.
        name: Span name.
        kind: Span kind.
        attributes: Attributes known at start (not modified).
        context: The parent context.

    Returns:
        The started span, with the attributes.
    """
    if _start_empty(tracer) and _clean(attributes):
        span = tracer.start_span(name, context=context, kind=kind)
        if not _fill(span, attributes):
            span.set_attributes(attributes)
        return span
    return tracer.start_span(name, context=context, kind=kind, attributes=attributes)


def set_span_attributes(span: Span, attributes: dict[str, AttributeValue]) -> None:
    """``span.set_attributes(attributes)``, the SDK's checks skipped when that is safe.

    Args:
        span: The span.
        attributes: The attributes (not modified).
    """
    if not (_clean(attributes) and _fill(span, attributes)):
        span.set_attributes(attributes)
