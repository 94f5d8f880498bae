"""Flow method steps: one ``invoke_node {method}`` span per flow method execution, handoffs.

CrewAI runs every flow method through ``Flow._execute_method(name, method, *args)``: wrapped,
it gets a step span (``gen_ai.operation.name = invoke_node``, the open GenAI proposal for a
workflow step that is not an agent, with ``gen_ai.node.name``). A crew or an agent kicked off
inside the method runs inside the step, so its spans are the step's children.

Handoffs follow the flow's own wiring. When a method (or a router's outcome) fires listeners,
CrewAI looks them up with ``Flow._find_triggered_methods(trigger, router_only)``: wrapped, it
tells the run which trigger fired which listener. ``Flow._execute_single_listener(name,
payload)`` then runs each listener with what the trigger passes on: wrapped, it announces the
handoff, which the listener's step span takes (source, target, kind ``edge`` for ``@listen``
on a method or ``conditional`` for a router's outcome, and the digest and size of what was
passed on; with content capture on, that itself, capped). A router's step records its outcome,
so the listeners of that outcome get the router as their source.

A method started without a listener lookup (the flow's start methods, a conditional ``@start``
re-run by a router) has no handoff. A method pausing for human feedback is not an error.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_RUN_ID,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
    GEN_AI_NODE_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation._scoped import async_scoped
from agentmesh.instrumentation.crewai._crossing import crossing_attributes
from agentmesh.instrumentation.crewai._flow_state import (
    FlowExecution,
    FlowStep,
    Inbound,
    current_flow,
    current_inbound,
    with_inbound,
)
from agentmesh.instrumentation.crewai._flows import PAUSED_ERROR
from agentmesh.instrumentation.crewai._names import text_or_none
from agentmesh.instrumentation.crewai._workflow import FRAMEWORK

__all__ = ["execute_method_wrapper", "find_triggered_wrapper", "single_listener_wrapper"]


def _is_router(flow: object, method: str) -> bool:
    check: object = getattr(flow, "_is_router", None)  # CrewAI 1.15+
    if callable(check):
        return check(method) is True
    routers: object = getattr(flow, "_routers", None)  # before 1.15: a set of names
    return isinstance(routers, set | frozenset | dict) and method in cast("set[object]", routers)


def _outcome(result: object) -> str | None:
    """The text of a router's outcome from ``_execute_method``'s return value."""
    outcome: object = result
    if isinstance(result, tuple):  # newer releases: (result, finished event id)
        parts = cast("tuple[object, ...]", result)
        outcome = parts[0] if len(parts) == 2 else parts
    if outcome is None:
        return None
    return str(cast("object", outcome.value) if isinstance(outcome, enum.Enum) else outcome)


@dataclass(frozen=True, slots=True)
class _MethodRun:
    span: Span
    context: Context
    execution: FlowExecution
    method: str

    def finish(self, result: object, error: BaseException | None) -> None:
        if error is not None:
            if type(error).__name__ != PAUSED_ERROR:
                _failopen.record_error(self.span, error)
        else:
            with _failopen.guarded("crewai.flow_method_finished"):
                if _is_router(self.execution.flow, self.method):
                    outcome = _outcome(result)
                    if outcome is not None:
                        self.execution.router_finished(self.method, outcome)
        _failopen.end_span(self.span)


def _handoff(inbound: Inbound, capture_content: bool) -> dict[str, AttributeValue]:
    return {
        GEN_AI_AGENT_HANDOFF_SOURCE_NAME: inbound.source,
        GEN_AI_AGENT_HANDOFF_TARGET_NAME: inbound.target,
        AGENTMESH_HANDOFF_KIND: inbound.kind,
        **crossing_attributes(inbound.payload, capture_content=capture_content),
    }


def _start_method(
    tracer: Tracer, capture_content: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> _MethodRun | None:
    execution = current_flow()
    if execution is None:
        return None
    method = text_or_none(args[0] if args else kwargs.get("method_name"))
    if method is None:
        return None
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.INVOKE_NODE,
        GEN_AI_NODE_NAME: method,
        GEN_AI_WORKFLOW_NAME: execution.name,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
        AGENTMESH_RUN_ID: execution.run_id,
    }
    inbound = current_inbound()
    handoff: dict[str, AttributeValue] | None = None
    if inbound is not None and inbound.target == method and inbound.source != method:
        # a failure here costs the handoff, never the span
        handoff = _failopen.safe_call("crewai.flow_handoff", _handoff, inbound, capture_content)
        if handoff is not None:
            attributes.update(handoff)
    span = tracer.start_span(
        f"{Operation.INVOKE_NODE} {method}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    if handoff is not None:
        span.add_event(EVENT_HANDOFF, handoff)
    context = FlowStep(execution, method).into(trace.set_span_in_context(span))
    return _MethodRun(span, context, execution, method)


def execute_method_wrapper(tracer: Tracer, capture_content: bool) -> Wrapper:
    """Build the wrapper of ``Flow._execute_method``.

    Args:
        tracer: The tracer spans are started with.
        capture_content: Record what crossed a handoff (capped).

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_scoped(
        "crewai.start_flow_method",
        lambda args, kwargs: _start_method(tracer, capture_content, args, kwargs),
    )


@dataclass(frozen=True, slots=True)
class _Announced:
    """The run of one listener, with its handoff announced in the context."""

    context: Context

    def finish(self, result: object, error: BaseException | None) -> None:
        """Nothing to end: the listener's step span ends itself."""


def _announce(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _Announced | None:
    execution = current_flow()
    if execution is None:
        return None
    listener = text_or_none(args[0] if args else kwargs.get("listener_name"))
    if listener is None:
        return None
    source = execution.take_source(listener)
    if source is None:
        return None
    payload: object = args[1] if len(args) > 1 else kwargs.get("result")
    return _Announced(with_inbound(Inbound(listener, source[0], source[1], payload)))


def single_listener_wrapper() -> Wrapper:
    """Build the wrapper of ``Flow._execute_single_listener``.

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_scoped("crewai.flow_listener", _announce)


def _record_triggered(args: tuple[Any, ...], kwargs: Mapping[str, Any], found: object) -> None:
    execution = current_flow()
    if execution is None or not isinstance(found, list) or not found:
        return
    trigger = text_or_none(args[0] if args else kwargs.get("trigger_method"))
    if trigger is not None:
        execution.triggered(trigger, [str(name) for name in cast("list[object]", found)])


def find_triggered_wrapper() -> Wrapper:
    """Build the wrapper of ``Flow._find_triggered_methods``.

    Returns:
        A wrapt wrapper.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        found = wrapped(*args, **kwargs)
        _failopen.safe_call("crewai.flow_triggered", _record_triggered, args, kwargs, found)
        return found

    return wrapper
