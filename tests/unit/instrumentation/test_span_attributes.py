"""Provider-span attributes written past the SDK's checks: the same span as the public API's.

The fast path (``agentmesh.instrumentation._span_attributes``) applies only to the SDK's own
tracer, samplers and span processors; every other setup goes through ``start_span`` /
``set_attributes``. Each test compares with what the public API gives, or shows that a
sampler, processor or limit saw exactly what the public API would have shown it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes, AttributeValue

from agentmesh.instrumentation import _span_attributes
from agentmesh.instrumentation._baggage_processor import BaggageSpanProcessor
from agentmesh.instrumentation.run_context import with_run_id

START: dict[str, AttributeValue] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "server.port": 443,
    "gen_ai.request.stream": False,
    "gen_ai.request.temperature": 0.2,
}
END: dict[str, AttributeValue] = {
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.usage.output_tokens": 5,
    "agentmesh.cost.usd": 6.6e-06,
}


class _SeeingSampler(Sampler):
    """A sampler of our own: it records the attributes it is shown."""

    def __init__(self) -> None:
        self.seen: list[dict[str, object]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "seeing"


class _SeeingProcessor(SpanProcessor):
    """A span processor of our own: it records the attributes a span has when it starts."""

    def __init__(self) -> None:
        self.seen: list[dict[str, object]] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.seen.append(dict(span.attributes or {}))

    def on_end(self, span: ReadableSpan) -> None:
        del span


def _provider(
    sampler: Sampler | None = None, limits: SpanLimits | None = None
) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, span_limits=limits, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _one_call(provider: TracerProvider, context: Context | None = None) -> None:
    tracer = provider.get_tracer("agentmesh.test")
    span = _span_attributes.start_span(tracer, "chat gpt-4o-mini", SpanKind.CLIENT, START, context)
    _span_attributes.set_span_attributes(span, END)
    span.end()


def _public_call(provider: TracerProvider, context: Context | None = None) -> None:
    tracer = provider.get_tracer("agentmesh.test")
    span = tracer.start_span("chat gpt-4o-mini", context, SpanKind.CLIENT, START)
    span.set_attributes(END)
    span.end()


def _attributes(exporter: InMemorySpanExporter) -> dict[str, object]:
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


def test_the_installed_sdk_takes_the_fast_path() -> None:
    assert _span_attributes.fast_path_available()
    provider, exporter = _provider()
    tracer = provider.get_tracer("agentmesh.test")
    assert _span_attributes._start_empty(tracer)  # pyright: ignore[reportPrivateUsage]

    _one_call(provider)

    assert _attributes(exporter) == {**START, **END}


@pytest.mark.parametrize(
    "sampler", [ALWAYS_ON, ParentBased(ALWAYS_ON), TraceIdRatioBased(1.0)], ids=str
)
def test_fast_and_public_paths_give_the_same_span(sampler: Sampler) -> None:
    fast_provider, fast = _provider(sampler)
    public_provider, public = _provider(sampler)

    _one_call(fast_provider)
    _public_call(public_provider)

    (fast_span,) = fast.get_finished_spans()
    (public_span,) = public.get_finished_spans()
    assert dict(fast_span.attributes or {}) == dict(public_span.attributes or {})
    assert fast_span.name == public_span.name
    assert fast_span.kind is public_span.kind is SpanKind.CLIENT


def test_a_sampler_of_our_own_sees_the_start_attributes() -> None:
    sampler = _SeeingSampler()
    provider, exporter = _provider(sampler)

    _one_call(provider)

    assert sampler.seen == [START]  # public path: the sampler was shown them
    assert _attributes(exporter) == {**START, **END}


def test_a_processor_of_our_own_sees_the_start_attributes() -> None:
    provider, exporter = _provider()
    processor = _SeeingProcessor()
    provider.add_span_processor(processor)

    _one_call(provider)

    assert processor.seen == [START]
    assert _attributes(exporter) == {**START, **END}


def test_the_baggage_processor_keeps_the_fast_path_and_its_entries() -> None:
    provider, exporter = _provider()
    provider.add_span_processor(BaggageSpanProcessor())
    assert _span_attributes._start_empty(provider.get_tracer("x"))  # pyright: ignore[reportPrivateUsage]

    _one_call(provider, with_run_id("run-7"))

    assert _attributes(exporter) == {**START, "agentmesh.run.id": "run-7", **END}


def test_an_attribute_count_limit_is_applied_by_the_sdk() -> None:
    fast_provider, fast = _provider(limits=SpanLimits(max_span_attributes=6))
    public_provider, public = _provider(limits=SpanLimits(max_span_attributes=6))

    _one_call(fast_provider)
    _public_call(public_provider)

    assert _attributes(fast) == _attributes(public)
    assert len(_attributes(fast)) == 6


def test_a_value_length_limit_is_applied_by_the_sdk() -> None:
    provider, exporter = _provider(limits=SpanLimits(max_span_attribute_length=3))

    _one_call(provider)

    assert _attributes(exporter)["gen_ai.operation.name"] == "cha"


def test_values_the_sdk_would_convert_go_through_it() -> None:
    provider, exporter = _provider()
    span = provider.get_tracer("x").start_span("s")

    _span_attributes.set_span_attributes(span, {"reasons": ["stop", "length"], "n": 1})
    span.end()

    assert _attributes(exporter) == {"reasons": ("stop", "length"), "n": 1}


def test_attributes_after_the_end_are_dropped_as_the_sdk_does() -> None:
    provider, exporter = _provider()
    span = provider.get_tracer("x").start_span("s")
    span.end()

    _span_attributes.set_span_attributes(span, {"late": 1})

    assert _attributes(exporter) == {}


def test_an_unsampled_span_takes_the_attributes_without_error() -> None:
    provider, exporter = _provider(ALWAYS_OFF)

    _one_call(provider)

    assert exporter.get_finished_spans() == ()


def test_without_the_fast_path_the_public_api_gives_the_same_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_span_attributes, "_loaded", [None])  # an SDK we do not know
    assert not _span_attributes.fast_path_available()
    provider, exporter = _provider()
    processor = _SeeingProcessor()
    provider.add_span_processor(processor)

    _one_call(provider)

    assert processor.seen == [START]
    assert _attributes(exporter) == {**START, **END}


def test_the_given_dicts_are_not_modified() -> None:
    provider, _ = _provider()
    start, end = dict(START), dict(END)

    tracer = provider.get_tracer("x")
    span = _span_attributes.start_span(tracer, "s", SpanKind.CLIENT, start, None)
    _span_attributes.set_span_attributes(span, end)
    span.set_attribute("later", 1)
    span.end()

    assert (start, end) == (START, END)


def test_a_processor_added_later_switches_the_tracer_to_the_public_path() -> None:
    provider, exporter = _provider()
    tracer = provider.get_tracer("agentmesh.test")
    _one_call(provider)
    assert _span_attributes._start_empty(tracer)  # pyright: ignore[reportPrivateUsage]
    processor = _SeeingProcessor()

    provider.add_span_processor(processor)
    _one_call(provider)

    assert not _span_attributes._start_empty(tracer)  # pyright: ignore[reportPrivateUsage]
    assert processor.seen == [START]
    assert [dict(s.attributes or {}) for s in exporter.get_finished_spans()] == [
        {**START, **END},
        {**START, **END},
    ]
