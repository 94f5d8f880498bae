"""Flow runs: one ``invoke_workflow {flow}`` span per flow kickoff.

``Flow.kickoff_async`` is wrapped: ``kickoff`` (which runs it with ``asyncio.run``, in a thread
of its own when a loop is already running, copying the context) and ``akickoff`` go through
it. The workflow is named after the flow (its ``name``, else its class), carries the run id
(from baggage, else a new one, put into baggage for everything the flow calls) and, as
``gen_ai.conversation.id``, the flow's state id (``inputs["id"]`` when the kickoff restores
one): the id CrewAI persists and resumes a flow's state under.

CrewAI's own machinery built as flows (the ``AgentExecutor`` behind ``Agent.kickoff``, the
memory's encoding and recall flows: flow classes defined inside ``crewai`` other than
``Flow`` itself) gets no spans: what it calls nests under the span around it.

A streaming kickoff (``stream=True``) runs a non-streaming kickoff that gets the span. A
kickoff made at the top level of a running flow (CrewAI restoring from a checkpoint) is not a
new run; a flow kicked off from inside a method of another flow is a nested workflow of the
same run.

``Flow.resume_async`` (and ``resume``, which runs it) is wrapped too: a flow paused for human
feedback (its kickoff returned ``HumanFeedbackPending``; its workflow span says
``agentmesh.run.paused``) and resumed later, often in another
process (``Flow.from_pending(flow_id)``), is a new run of its own, with its own workflow span
and the same state id as ``gen_ai.conversation.id``; when the paused kickoff ran in this process,
``agentmesh.resume.from_run_id`` names its run (the last 1,024 paused flows are remembered).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core import new_run_id
from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_RESUME_FROM_RUN_ID,
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_PAUSED,
    AGENTMESH_RUN_RESUMED,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation._paused_runs import PausedRuns
from agentmesh.instrumentation.crewai._bound import async_method_scoped
from agentmesh.instrumentation.crewai._flow_state import (
    FlowExecution,
    current_flow,
    current_flow_step,
    hide_flow,
)
from agentmesh.instrumentation.crewai._names import text_or_none
from agentmesh.instrumentation.crewai._workflow import FRAMEWORK
from agentmesh.instrumentation.run_context import current_run_id, with_run_id

__all__ = [
    "PAUSED_ERROR",
    "flow_kickoff_wrapper",
    "flow_name",
    "flow_resume_wrapper",
    "is_crewai_machinery",
]

_CREWAI_PACKAGE: Final = "crewai"
_PUBLIC_FLOW_CLASS: Final = "Flow"

PAUSED_ERROR: Final = "HumanFeedbackPending"
"""CrewAI's exception for a flow pausing for human feedback: control flow, not a failure."""

_PAUSED = PausedRuns()
"""The flows paused in this process, by state id."""


def flow_name(flow: object) -> str:
    """Return a flow's name: its ``name`` when set, else its class name (as CrewAI does).

    Args:
        flow: A CrewAI flow.

    Returns:
        The name.
    """
    name: object = getattr(flow, "name", None)
    return name if isinstance(name, str) and name else type(flow).__name__


def is_crewai_machinery(flow: object) -> bool:
    """Tell CrewAI's internal flows (an agent's executor, memory) from the application's.

    Args:
        flow: A CrewAI flow.

    Returns:
        Whether its class is defined inside ``crewai`` (other than the public ``Flow``).
    """
    cls = type(flow)
    module = cls.__module__
    inside = module == _CREWAI_PACKAGE or module.startswith(f"{_CREWAI_PACKAGE}.")
    return inside and cls.__name__ != _PUBLIC_FLOW_CLASS


def _conversation_id(flow: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    inputs: object = args[0] if args else kwargs.get("inputs")
    if isinstance(inputs, Mapping):
        restored = text_or_none(cast("Mapping[str, object]", inputs).get("id"))
        if restored is not None:
            return restored
    return text_or_none(getattr(flow, "flow_id", None))


@dataclass(frozen=True, slots=True)
class _Hidden:
    """A CrewAI-internal flow: no span, and its methods are no steps of the flow around it."""

    context: Context

    def finish(self, result: object, error: BaseException | None) -> None:
        """Nothing to end."""


@dataclass(frozen=True, slots=True)
class _FlowRun:
    span: Span
    context: Context
    run_id: str

    def finish(self, result: object, error: BaseException | None) -> None:
        if error is not None and type(error).__name__ != PAUSED_ERROR:
            _failopen.record_error(self.span, error)
        paused = error if error is not None else result
        if type(paused).__name__ == PAUSED_ERROR:  # returned (or raised) by a paused flow
            with _failopen.guarded("crewai.flow_paused"):
                self.span.set_attribute(AGENTMESH_RUN_PAUSED, True)
            state_id = text_or_none(getattr(getattr(paused, "context", None), "flow_id", None))
            if state_id is not None:
                _PAUSED.paused(state_id, self.run_id)
        _failopen.end_span(self.span)


def _begin(
    tracer: Tracer, flow: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _FlowRun | _Hidden | None:
    if is_crewai_machinery(flow):
        return _Hidden(hide_flow(otel_context.get_current()))
    if getattr(flow, "stream", False) is True:
        return None  # the non-streaming kickoff it runs gets the span
    if current_flow() is not None and current_flow_step() is None:
        return None  # a kickoff at the top level of a running flow: not a new run
    return _start_run(tracer, flow, _conversation_id(flow, args, kwargs), {})


def _begin_resume(tracer: Tracer, flow: object) -> _FlowRun | _Hidden | None:
    if is_crewai_machinery(flow):
        return _Hidden(hide_flow(otel_context.get_current()))
    if current_flow() is not None and current_flow_step() is None:
        return None  # inside a run already: nothing new begins
    state_id = text_or_none(getattr(flow, "flow_id", None))
    paused_run = _PAUSED.resumed(state_id) if state_id is not None else None
    extra: dict[str, AttributeValue] = {AGENTMESH_RUN_RESUMED: True}
    if paused_run is not None:
        extra[AGENTMESH_RESUME_FROM_RUN_ID] = paused_run
    return _start_run(tracer, flow, state_id, extra)


def _start_run(
    tracer: Tracer,
    flow: object,
    conversation_id: str | None,
    extra: Mapping[str, AttributeValue],
) -> _FlowRun:
    name = flow_name(flow)
    run_id = current_run_id() or new_run_id()
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.INVOKE_WORKFLOW,
        GEN_AI_WORKFLOW_NAME: name,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
        AGENTMESH_RUN_ID: run_id,
    }
    if conversation_id is not None:
        attributes[GEN_AI_CONVERSATION_ID] = conversation_id
    attributes.update(extra)
    span = tracer.start_span(
        f"{Operation.INVOKE_WORKFLOW} {name}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    execution = FlowExecution(flow, name, run_id, conversation_id)
    context = trace.set_span_in_context(span, otel_context.get_current())
    context = with_run_id(run_id, execution.into(context))
    return _FlowRun(span, context, run_id)


def flow_kickoff_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``Flow.kickoff_async``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_method_scoped(
        "crewai.start_flow",
        lambda flow, args, kwargs: _begin(tracer, flow, args, kwargs),
    )


def flow_resume_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``Flow.resume_async``: a resumed flow is a run of its own.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_method_scoped(
        "crewai.resume_flow", lambda flow, _args, _kwargs: _begin_resume(tracer, flow)
    )
