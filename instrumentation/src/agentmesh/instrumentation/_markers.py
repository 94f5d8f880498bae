"""Start markers: the collector learns that a step began while it still runs.

A span is exported when it ends; a step that hangs never ends, so the collector would never
hear of it. :class:`StepMarkerProcessor` therefore exports, the moment one of our step spans
starts (``invoke_workflow``, ``invoke_agent``, ``invoke_node``, ``execute_tool`` from an
AgentMesh instrumentor, or from plain code's ``workflow()`` and ``agent()``), a zero-length
marker span named ``agentmesh.step.start``, child of the step, carrying
``agentmesh.step.started`` (the step's span id), the step's name (``gen_ai.agent.name``,
``gen_ai.node.name`` or ``gen_ai.tool.name``), the run id, the task class and the workflow
name. It carries no ``gen_ai.operation.name``: it is no step itself.

The marker is built as a finished ``ReadableSpan`` and handed to the ``on_end`` of the span
processors the step span itself goes through (the tracer provider's), so the same batch
processors and exporters deliver it, like any span. It never goes through ``on_start``, so it
cannot be marked in turn. Any other span (model calls, foreign spans) costs one set look-up
on its instrumentation scope; a step a few microseconds. Fail-open: an error is logged and the
step runs unmarked.

OTLP groups a batch's spans by instrumentation scope (the scope seen first goes first), so a
step's marker could reach the collector after the calls made in the step: :func:`markers_first`,
applied by AgentMesh's exporter to each batch, puts the batch's markers ahead of its other
spans, so the collector knows whose calls follow.

Example:
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> exporter = InMemorySpanExporter()
    >>> provider = TracerProvider()
    >>> provider.add_span_processor(StepMarkerProcessor())
    >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
    >>> tracer = provider.get_tracer("agentmesh.instrumentation.langgraph")
    >>> step = tracer.start_span(
    ...     "invoke_agent writer",
    ...     attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "writer"},
    ... )
    >>> [(s.name, s.attributes["gen_ai.agent.name"]) for s in exporter.get_finished_spans()]
    [('agentmesh.step.start', 'writer')]
    >>> step.end()
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from typing import Final, cast

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import INVALID_SPAN_ID, SpanContext, SpanKind
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_TASK_CLASS,
    AGENTMESH_STEP_STARTED,
    GEN_AI_AGENT_NAME,
    GEN_AI_NODE_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen

__all__ = [
    "MARKER_NAME",
    "MARKER_SCOPE",
    "PLAIN_STEPS_SCOPE",
    "STEP_OPERATIONS",
    "STEP_SCOPES",
    "StepMarkerProcessor",
    "markers_first",
]

MARKER_NAME: Final = "agentmesh.step.start"
"""Name of a start marker span."""

MARKER_SCOPE: Final = "agentmesh.instrumentation.markers"
"""Instrumentation scope of start markers."""

STEP_OPERATIONS: Final = frozenset(
    {
        Operation.INVOKE_WORKFLOW,
        Operation.INVOKE_AGENT,
        Operation.INVOKE_NODE,
        Operation.EXECUTE_TOOL,
    }
)
"""Operations whose spans get a start marker."""

PLAIN_STEPS_SCOPE: Final = "agentmesh.instrumentation.steps"
"""Instrumentation scope of plain code's ``workflow()`` / ``agent()`` step spans."""

STEP_SCOPES: Final = frozenset(
    {"agentmesh.instrumentation.langgraph", "agentmesh.instrumentation.crewai", PLAIN_STEPS_SCOPE}
)
"""Instrumentation scopes whose step spans get a start marker: our framework instrumentors and
the ``workflow()`` / ``agent()`` steps of plain code (:mod:`agentmesh.instrumentation.steps`)."""

_NAME_BY_OPERATION: Final[Mapping[str, str]] = {
    Operation.INVOKE_AGENT: GEN_AI_AGENT_NAME,
    Operation.INVOKE_NODE: GEN_AI_NODE_NAME,
    Operation.EXECUTE_TOOL: GEN_AI_TOOL_NAME,
}
_SCOPE: Final = InstrumentationScope(MARKER_SCOPE)
_COPIED: Final = (GEN_AI_WORKFLOW_NAME, AGENTMESH_RUN_ID, AGENTMESH_RUN_TASK_CLASS)
_FROM_BAGGAGE: Final = (AGENTMESH_RUN_ID, AGENTMESH_RUN_TASK_CLASS)


class StepMarkerProcessor(SpanProcessor):
    """Export a start marker when an AgentMesh step span starts (never raises)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Export the marker of a starting step span; ignore every other span.

        Args:
            span: The starting span.
            parent_context: Its parent context (baggage supplies a missing run id).
        """
        try:
            scope = span.instrumentation_scope  # model calls and foreign spans stop here
            if scope is None or scope.name not in STEP_SCOPES:
                return
            attributes = _attributes_of(span)
            if attributes.get(GEN_AI_OPERATION_NAME) not in STEP_OPERATIONS:
                return
            if getattr(self._local, "busy", False):
                return  # a processor reacting to a marker started a step span: no recursion
            self._local.busy = True
            try:
                self._mark(span, attributes, parent_context)
            finally:
                self._local.busy = False
        except Exception as exc:  # noqa: BLE001 - fail-open: the step runs unmarked
            _failopen.report("step_marker", exc)

    def _mark(
        self,
        span: Span,
        attributes: Mapping[str, object],
        parent_context: Context | None,
    ) -> None:
        processor: object = getattr(span, "_span_processor", None)
        step = span.get_span_context()
        if not isinstance(processor, SpanProcessor) or not step.is_valid:
            return  # not an SDK span built by a tracer provider: nothing to hand the marker to
        marker = ReadableSpan(
            name=MARKER_NAME,
            context=SpanContext(
                step.trace_id,
                _span_id(),
                is_remote=False,
                trace_flags=step.trace_flags,
                trace_state=step.trace_state,
            ),
            parent=step,
            resource=span.resource,
            attributes=_marker_attributes(span, step.span_id, attributes, parent_context),
            kind=SpanKind.INTERNAL,
            start_time=span.start_time,
            end_time=span.start_time,
            instrumentation_scope=_SCOPE,
        )
        processor.on_end(marker)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do when a span ends.

        Args:
            span: The finished span.
        """

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here (markers are handed on at once).

        Args:
            timeout_millis: Ignored.

        Returns:
            Always ``True``.
        """
        return True


def _attributes_of(span: Span) -> Mapping[str, object]:
    """The span's attributes; read straight from the SDK's dict when it has one (no lock)."""
    bounded: object = getattr(span, "_attributes", None)
    plain: object = getattr(bounded, "_dict", None)
    if isinstance(plain, dict):
        return cast("dict[str, object]", plain)
    return span.attributes or {}


def _span_id() -> int:
    span_id = random.getrandbits(64)
    while span_id == INVALID_SPAN_ID:
        span_id = random.getrandbits(64)
    return span_id


def _marker_attributes(
    span: Span, span_id: int, attributes: Mapping[str, object], parent_context: Context | None
) -> dict[str, AttributeValue]:
    marker: dict[str, AttributeValue] = {AGENTMESH_STEP_STARTED: format(span_id, "016x")}
    name_key = _NAME_BY_OPERATION.get(str(attributes.get(GEN_AI_OPERATION_NAME)))
    if name_key is not None:
        name = attributes.get(name_key)
        # a step without its name attribute is named by its span, as the collector does
        marker[name_key] = name if isinstance(name, str) and name else span.name
    for key in _COPIED:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            marker[key] = value
    missing = [key for key in _FROM_BAGGAGE if key not in marker]
    if missing:
        entries = baggage.get_all(parent_context)
        for key in missing:
            value = entries.get(key)
            if isinstance(value, str) and value:
                marker[key] = value
    return marker


def markers_first(spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
    """Move a batch's start markers ahead of its other spans, each in its own order.

    A marker's moment is its step's start, before anything the step did. An OTLP exporter
    groups a batch by instrumentation scope, in the order the scopes first appear; a batch
    beginning with a model call would send every call of the batch before every marker, and
    the collector would meet a call before the step it belongs to.

    Args:
        spans: A batch of finished spans, in the order they ended.

    Returns:
        ``spans`` itself when no marker follows another span, else a new list: the markers,
        then the other spans.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> call = TracerProvider().get_tracer("agentmesh.instrumentation.openai").start_span("c")
        >>> marker = ReadableSpan(name=MARKER_NAME, instrumentation_scope=_SCOPE)
        >>> [span.name for span in markers_first([call, marker])]
        ['agentmesh.step.start', 'c']
    """
    seen_other = False
    for span in spans:
        scope = span.instrumentation_scope
        if scope is not None and scope.name == MARKER_SCOPE:
            if seen_other:
                break
        else:
            seen_other = True
    else:
        return spans  # no marker after another span: nothing to move
    markers: list[ReadableSpan] = []
    others: list[ReadableSpan] = []
    for span in spans:
        scope = span.instrumentation_scope
        (markers if scope is not None and scope.name == MARKER_SCOPE else others).append(span)
    return markers + others
