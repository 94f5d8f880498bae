"""Test helpers that ship with the collector: build contract spans and OTLP requests.

:class:`SpanFactory` makes the workflow, agent and chat spans the instrumentation writes, with
ids and a clock that advance on their own, so detector and graph tests read like the run they
describe. :func:`to_otlp_request` turns spans back into an OTLP export request, for tests that
talk to a receiver.

Example:
    >>> f = SpanFactory()
    >>> root = f.workflow("research", run_id="run-1")
    >>> supervisor = f.agent("supervisor", parent=root)
    >>> researcher = f.agent("researcher", parent=root, handoff_from="supervisor")
    >>> researcher.str_attr(semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME)
    'supervisor'
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Generic, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import CycleView, Detector
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.graph.node import graph_node
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.model import (
    SERVICE_NAME,
    AttributeValue,
    SpanKind,
    SpanRecord,
    StatusCode,
)
from agentmesh.core import semconv

__all__ = [
    "DetectorFeed",
    "ManualClock",
    "SpanFactory",
    "cycle_of",
    "failed",
    "graph_of",
    "handoff_received",
    "routed_call_attributes",
    "to_otlp_request",
    "with_attributes",
]

_SCOPE = "agentmesh.collector.testing"
_KINDS: dict[SpanKind, Span.SpanKind.ValueType] = {
    "unspecified": Span.SPAN_KIND_UNSPECIFIED,
    "internal": Span.SPAN_KIND_INTERNAL,
    "server": Span.SPAN_KIND_SERVER,
    "client": Span.SPAN_KIND_CLIENT,
    "producer": Span.SPAN_KIND_PRODUCER,
    "consumer": Span.SPAN_KIND_CONSUMER,
}
_STATUSES: dict[StatusCode, Status.StatusCode.ValueType] = {
    "unset": Status.STATUS_CODE_UNSET,
    "ok": Status.STATUS_CODE_OK,
    "error": Status.STATUS_CODE_ERROR,
}


_Time = TypeVar("_Time", int, float)


class ManualClock(Generic[_Time]):
    """A clock that stands still until the test moves it: pass it as a component's ``clock``.

    Args:
        now: The time it reads first (seconds as a float, or Unix nanoseconds as an int, as
            the component's clock returns).

    Example:
        >>> clock = ManualClock(1000.0)
        >>> clock.now += 30
        >>> clock()
        1030.0
    """

    def __init__(self, now: _Time) -> None:
        self.now = now

    def __call__(self) -> _Time:
        """Read the time.

        Returns:
            The time it was last set to.
        """
        return self.now


class SpanFactory:
    """Builds the spans of one trace, following the AgentMesh span contract.

    Each span starts ``step_ns`` after the previous one and lasts ``step_ns // 2`` unless told
    otherwise; span ids count up from 1.

    Args:
        trace_id: The trace (32 hex digits); random by default.
        service_name: ``service.name`` of the spans' resource.
        start_ns: Start of the first span.
        step_ns: Clock advance per span.
    """

    def __init__(
        self,
        trace_id: str | None = None,
        *,
        service_name: str = "test-app",
        start_ns: int = 1_700_000_000_000_000_000,
        step_ns: int = 1_000_000,
    ) -> None:
        self.trace_id = trace_id if trace_id is not None else secrets.token_hex(16)
        self.service_name = service_name
        self._clock = start_ns
        self._step = step_ns
        self._next_id = 1

    def span(
        self,
        name: str,
        *,
        parent: SpanRecord | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        start_ns: int | None = None,
        duration_ns: int | None = None,
        kind: SpanKind = "internal",
        status_code: StatusCode = "unset",
    ) -> SpanRecord:
        """Build any span of the trace.

        Args:
            name: Span name.
            parent: Parent span; ``None`` makes a root span.
            attributes: Span attributes.
            start_ns: Start; by default the factory's clock, which then advances.
            duration_ns: Duration; ``step_ns // 2`` by default.
            kind: Span kind.
            status_code: Span status.

        Returns:
            The span.
        """
        if start_ns is None:
            start_ns = self._clock
            self._clock += self._step
        span_id = f"{self._next_id:016x}"
        self._next_id += 1
        return SpanRecord(
            trace_id=self.trace_id,
            span_id=span_id,
            parent_span_id=None if parent is None else parent.span_id,
            name=name,
            kind=kind,
            start_ns=start_ns,
            end_ns=start_ns + (duration_ns if duration_ns is not None else self._step // 2),
            status_code=status_code,
            attributes=dict(attributes or {}),
            resource_attributes={SERVICE_NAME: self.service_name},
            scope_name=_SCOPE,
            service_name=self.service_name,
        )

    def workflow(
        self, name: str, *, run_id: str | None = None, framework: str = "plain"
    ) -> SpanRecord:
        """Build a root ``invoke_workflow`` span.

        Args:
            name: Workflow name.
            run_id: ``agentmesh.run.id`` (omitted when ``None``).
            framework: ``agentmesh.framework``.

        Returns:
            The span.
        """
        attributes: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_WORKFLOW,
            semconv.GEN_AI_WORKFLOW_NAME: name,
            semconv.AGENTMESH_FRAMEWORK: framework,
        }
        if run_id is not None:
            attributes[semconv.AGENTMESH_RUN_ID] = run_id
        return self.span(f"{semconv.Operation.INVOKE_WORKFLOW} {name}", attributes=attributes)

    def agent(
        self,
        name: str,
        *,
        parent: SpanRecord | None,
        run_id: str | None = None,
        handoff_from: str | None = None,
        handoff_kind: str = "edge",
        context_digest: str | None = None,
        context_size: int | None = None,
        start_ns: int | None = None,
    ) -> SpanRecord:
        """Build an ``invoke_agent`` span, with handoff attributes when ``handoff_from`` is set.

        Args:
            name: Agent name.
            parent: Parent span (usually the workflow span).
            run_id: ``agentmesh.run.id`` (omitted when ``None``).
            handoff_from: Agent that handed over to this one.
            handoff_kind: ``agentmesh.handoff.kind`` of that handoff.
            context_digest: Digest of the context that crossed.
            context_size: Its size in bytes.
            start_ns: Start; by default the factory's clock.

        Returns:
            The span.
        """
        attributes: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_AGENT,
            semconv.GEN_AI_AGENT_NAME: name,
        }
        if run_id is not None:
            attributes[semconv.AGENTMESH_RUN_ID] = run_id
        if handoff_from is not None:
            attributes[semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME] = handoff_from
            attributes[semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME] = name
            attributes[semconv.AGENTMESH_HANDOFF_KIND] = handoff_kind
            if context_digest is not None:
                attributes[semconv.AGENTMESH_HANDOFF_CONTEXT_DIGEST] = context_digest
            if context_size is not None:
                attributes[semconv.AGENTMESH_HANDOFF_CONTEXT_SIZE] = context_size
        return self.span(
            f"{semconv.Operation.INVOKE_AGENT} {name}",
            parent=parent,
            attributes=attributes,
            start_ns=start_ns,
        )

    def chat(
        self,
        *,
        parent: SpanRecord | None,
        model: str = "gpt-4o-mini",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        start_ns: int | None = None,
    ) -> SpanRecord:
        """Build a ``chat`` (LLM call) span.

        Args:
            parent: Parent span (an agent span, or a tool span under one).
            model: Requested and response model.
            input_tokens: ``gen_ai.usage.input_tokens``.
            output_tokens: ``gen_ai.usage.output_tokens``.
            cost_usd: ``agentmesh.cost.usd``.
            start_ns: Start; by default the factory's clock.

        Returns:
            The span.
        """
        return self.span(
            f"{semconv.Operation.CHAT} {model}",
            parent=parent,
            kind="client",
            start_ns=start_ns,
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
                semconv.GEN_AI_REQUEST_MODEL: model,
                semconv.GEN_AI_RESPONSE_MODEL: model,
                semconv.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
                semconv.AGENTMESH_COST_USD: cost_usd,
            },
        )

    def tool(
        self,
        name: str,
        *,
        parent: SpanRecord | None,
        args_digest: str | None = None,
        result_digest: str | None = None,
        error_type: str | None = None,
        start_ns: int | None = None,
        duration_ns: int | None = None,
    ) -> SpanRecord:
        """Build an ``execute_tool`` span, with argument and result digests when given.

        Args:
            name: Tool name.
            parent: Parent span (usually an agent span).
            args_digest: ``agentmesh.tool.call.arguments.digest``.
            result_digest: ``agentmesh.tool.call.result.digest``.
            error_type: When set, the call failed with this ``error.type``.
            start_ns: Start; by default the factory's clock.
            duration_ns: Duration; ``step_ns // 2`` by default.

        Returns:
            The span.
        """
        attributes: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.EXECUTE_TOOL,
            semconv.GEN_AI_TOOL_NAME: name,
        }
        if args_digest is not None:
            attributes[semconv.AGENTMESH_TOOL_ARGUMENTS_DIGEST] = args_digest
        if result_digest is not None:
            attributes[semconv.AGENTMESH_TOOL_RESULT_DIGEST] = result_digest
        if error_type is not None:
            attributes[semconv.ERROR_TYPE] = error_type
        return self.span(
            f"{semconv.Operation.EXECUTE_TOOL} {name}",
            parent=parent,
            attributes=attributes,
            start_ns=start_ns,
            duration_ns=duration_ns,
            status_code="unset" if error_type is None else "error",
        )

    def marker(self, step: SpanRecord) -> SpanRecord:
        """Build the start marker of a step span (a zero-length child exported at its start).

        Args:
            step: An ``invoke_workflow``, ``invoke_agent``, ``invoke_node`` or
                ``execute_tool`` span.

        Returns:
            The marker, starting and ending when the step started.
        """
        attributes: dict[str, AttributeValue] = {semconv.AGENTMESH_STEP_STARTED: step.span_id}
        for name in (
            semconv.GEN_AI_AGENT_NAME,
            semconv.GEN_AI_NODE_NAME,
            semconv.GEN_AI_TOOL_NAME,
            semconv.AGENTMESH_RUN_ID,
            semconv.AGENTMESH_RUN_TASK_CLASS,
            semconv.GEN_AI_WORKFLOW_NAME,
        ):
            value = step.attributes.get(name)
            if value is not None:
                attributes[name] = value
        return self.span(
            "agentmesh.step.start",
            parent=step,
            attributes=attributes,
            start_ns=step.start_ns,
            duration_ns=0,
        )


def to_otlp_request(spans: Iterable[SpanRecord]) -> ExportTraceServiceRequest:
    """Encode spans as an OTLP export request (one resource per service, one scope).

    Args:
        spans: The spans.

    Returns:
        The request, ready for ``TraceServiceStub.Export``.
    """
    by_service: dict[str | None, list[SpanRecord]] = {}
    for span in spans:
        by_service.setdefault(span.service_name, []).append(span)
    request = ExportTraceServiceRequest()
    for group in by_service.values():
        request.resource_spans.append(
            ResourceSpans(
                resource=Resource(attributes=_key_values(group[0].resource_attributes)),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name=group[0].scope_name),
                        spans=[_span(span) for span in group],
                    )
                ],
            )
        )
    return request


def _span(span: SpanRecord) -> Span:
    return Span(
        trace_id=bytes.fromhex(span.trace_id),
        span_id=bytes.fromhex(span.span_id),
        parent_span_id=b"" if span.parent_span_id is None else bytes.fromhex(span.parent_span_id),
        name=span.name,
        kind=_KINDS[span.kind],
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        attributes=_key_values(span.attributes),
        events=[
            Span.Event(
                name=event.name,
                time_unix_nano=event.time_ns,
                attributes=_key_values(event.attributes),
            )
            for event in span.events
        ],
        status=Status(code=_STATUSES[span.status_code], message=span.status_message),
    )


def _key_values(attributes: Mapping[str, AttributeValue]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_any(value)) for key, value in attributes.items()]


def _any(value: AttributeValue) -> AnyValue:
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_any(item) for item in value]))
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def routed_call_attributes(
    chosen: str,
    decision_id: str,
    *,
    task_class: str = "triage",
    requested: str = "gpt-4o",
    mode: str = "enforce",
) -> dict[str, AttributeValue]:
    """The route attributes the instrumentation puts on a model call the router decided.

    Args:
        chosen: The model the router chose.
        decision_id: The decision's id.
        task_class: The call's task class.
        requested: The model the application asked for.
        mode: The routing mode (``off``, ``shadow``, ``enforce``).

    Returns:
        The attributes, to add to a ``chat`` span.
    """
    return {
        semconv.AGENTMESH_ROUTE_DECISION_ID: decision_id,
        semconv.AGENTMESH_ROUTE_POLICY: "utility",
        semconv.AGENTMESH_ROUTE_MODE: mode,
        semconv.AGENTMESH_ROUTE_REQUESTED_MODEL: requested,
        semconv.AGENTMESH_ROUTE_CHOSEN: chosen,
        semconv.AGENTMESH_ROUTE_TASK_CLASS: task_class,
        semconv.AGENTMESH_ROUTE_FEATURES: '{"total_chars":80,"cluster":0}',
    }


def with_attributes(span: SpanRecord, attributes: Mapping[str, AttributeValue]) -> SpanRecord:
    """Return a copy of a span with more (or other) attributes.

    Args:
        span: The span.
        attributes: Attributes to add or replace, for example
            ``{semconv.AGENTMESH_RUN_BUDGET_USD: 0.5}``.

    Returns:
        The new span (same ids and timing).
    """
    return replace(span, attributes={**span.attributes, **attributes})


def failed(
    span: SpanRecord, error_type: str = "RuntimeError", *, http_status: int | None = None
) -> SpanRecord:
    """Return a copy of a span whose status is error.

    Args:
        span: The span.
        error_type: ``error.type``.
        http_status: ``http.response.status_code`` (429 for a rate-limited call).

    Returns:
        The failed span.
    """
    attributes: dict[str, AttributeValue] = {semconv.ERROR_TYPE: error_type}
    if http_status is not None:
        attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = http_status
    return replace(
        span,
        status_code="error",
        status_message=error_type,
        attributes={**span.attributes, **attributes},
    )


def handoff_received(span: SpanRecord, received_digest: str) -> SpanRecord:
    """Return a copy of a handoff span recording the digest of the context received.

    Args:
        span: An agent span built with ``handoff_from``.
        received_digest: ``agentmesh.handoff.context.received_digest``.

    Returns:
        The span.
    """
    return with_attributes(span, {semconv.AGENTMESH_HANDOFF_RECEIVED_DIGEST: received_digest})


def graph_of(spans: Iterable[SpanRecord]) -> RunGraph:
    """Build the graph of one trace's spans, as the collector would.

    Args:
        spans: Spans of a single trace, in any order.

    Returns:
        The trace's graph.

    Raises:
        ValueError: The spans belong to no trace or to several.

    Example:
        >>> f = SpanFactory()
        >>> root = f.workflow("w", run_id="run-1")
        >>> graph_of([root, f.agent("planner", parent=root)]).agents["planner"].invocations
        1
    """
    builder = GraphBuilder()
    changed = builder.add(spans)
    if len(changed) != 1:
        raise ValueError(f"expected the spans of one trace, got {len(changed)} traces")
    graph = builder.get(changed.pop())
    assert graph is not None  # just added, and the builder holds up to 10,000 traces
    return graph


def cycle_of(
    spans: Iterable[SpanRecord], *, now_ns: int | None = None, builder: GraphBuilder | None = None
) -> CycleView:
    """Make the view a pipeline cycle gives detectors, for spans arriving together.

    Args:
        spans: The spans, in arrival order.
        now_ns: The cycle's time; the latest span end by default.
        builder: The graph builder holding earlier spans of the runs; a fresh one by default.

    Returns:
        The cycle: the spans' graph nodes and the graphs they changed.
    """
    nodes = [graph_node(span) for span in spans]
    builder = builder if builder is not None else GraphBuilder()
    graphs = {
        trace_id: graph
        for trace_id in sorted(builder.add_nodes(nodes))
        if (graph := builder.get(trace_id)) is not None
    }
    if now_ns is None:
        now_ns = max((node.end_ns for node in nodes), default=0)
    return CycleView(nodes, graphs, now_ns)


class DetectorFeed:
    """Feeds spans to detectors cycle by cycle, as the pipeline does, on a clock of its own.

    Args:
        detectors: The streaming detectors.
        now_ns: Wall-clock time of the first cycle.

    Example:
        >>> from agentmesh.collector.detectors import ContextLossDetector
        >>> f = SpanFactory()
        >>> root = f.workflow("w")
        >>> a = f.agent("writer", parent=root, handoff_from="planner", context_digest="d1")
        >>> feed = DetectorFeed(ContextLossDetector())
        >>> [d.type for d in feed([handoff_received(a, "d2")])]
        ['context_loss']
    """

    def __init__(self, *detectors: Detector, now_ns: int = 1_700_000_000_000_000_000) -> None:
        self.detectors = detectors
        self.builder = GraphBuilder()
        self.now_ns = now_ns

    def __call__(self, spans: Iterable[SpanRecord], *, advance_ns: int = 0) -> list[Detection]:
        """Run one cycle.

        Args:
            spans: The spans that arrived, in arrival order.
            advance_ns: Time to let pass before the cycle.

        Returns:
            What the detectors reported.
        """
        self.now_ns += advance_ns
        view = cycle_of(spans, now_ns=self.now_ns, builder=self.builder)
        return [found for detector in self.detectors for found in detector.observe(view)]

    def tick(self, advance_ns: int = 0) -> list[Detection]:
        """Let time pass and tick the detectors.

        Args:
            advance_ns: Time to let pass.

        Returns:
            What the detectors reported.
        """
        self.now_ns += advance_ns
        return [found for detector in self.detectors for found in detector.tick(self.now_ns)]
