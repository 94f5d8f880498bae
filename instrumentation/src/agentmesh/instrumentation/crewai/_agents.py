"""Agent spans: one ``invoke_agent {role}`` span per agent executing a task, with handoffs.

``Agent.execute_task`` / ``Agent.aexecute_task`` are wrapped: CrewAI calls them for every task
of a crew and, through the delegation tools, for work delegated to a coworker. The span carries
the handoff that brought the work:

- ``delegation``: announced by a delegation tool (see :mod:`._delegation`);
- ``task_context``: the task starts from the outputs of earlier tasks (its ``context``), from
  the agent of the latest of those tasks.

The handoff carries the digest and size of what crossed (with content capture on, the content
itself, capped) and the digest of what the receiving agent actually got
(``agentmesh.handoff.context.received_digest``), computed apart at each end so that context lost
on the way shows as two different digests; and, when ``AGENTMESH_CHECKPOINT_URL`` names a store,
the id of a handoff checkpoint of what crossed, written in the background
(:mod:`agentmesh.instrumentation.checkpoints`):

- ``delegation``: sent, what the delegation tool passed on (``{"task", "context"}``); received,
  the coworker's task description and context;
- ``task_context``: sent, the outputs the context's tasks produced, joined as CrewAI joins
  them; received, the context text the agent was given (after CrewAI's ``pre_step`` hooks).
  Not compared for an asynchronous task, or when a conditional task precedes it (CrewAI then
  builds the context from other outputs).

A re-entry for the same agent and task (CrewAI's retry after an error) is not a new step.
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

from agentmesh.core.semconv import (
    AGENTMESH_CREWAI_TASK_ID,
    AGENTMESH_CREWAI_TASK_NAME,
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_HANDOFF_RECEIVED_DIGEST,
    AGENTMESH_RUN_ID,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.checkpoints import checkpoint_handoff
from agentmesh.instrumentation.crewai._bound import async_method_scoped, sync_method_scoped
from agentmesh.instrumentation.crewai._crossing import crossing_attributes
from agentmesh.instrumentation.crewai._execution import (
    AgentStep,
    CrewExecution,
    PendingHandoff,
    current_execution,
    current_step,
    pending_handoff,
)
from agentmesh.instrumentation.crewai._names import role_of, text_or_none
from agentmesh.instrumentation.crewai._workflow import FRAMEWORK
from agentmesh.instrumentation.handoff import context_digest
from agentmesh.instrumentation.run_context import current_run_id

__all__ = ["aexecute_task_wrapper", "execute_task_wrapper"]

_DIVIDERS: Final = "\n\n----------\n\n"
"""What CrewAI puts between task outputs when it joins them into a context."""


@dataclass(frozen=True, slots=True)
class _AgentRun:
    span: Span
    context: Context
    execution: CrewExecution | None
    role: str
    top_level: bool

    def finish(self, result: object, error: BaseException | None) -> None:
        if error is not None:
            _failopen.record_error(self.span, error)
        elif self.top_level and self.execution is not None:
            with _failopen.guarded("crewai.task_finished"):
                self.execution.task_finished(self.role)
        _failopen.end_span(self.span)


def _arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[object, object]:
    task: object = args[0] if args else kwargs.get("task")
    context: object = args[1] if len(args) > 1 else kwargs.get("context")
    return task, context


def _agent_of_output(task: object) -> str | None:
    return text_or_none(getattr(getattr(task, "output", None), "agent", None))


def _earlier_tasks(task: object, execution: CrewExecution | None) -> list[object] | None:
    """Return the crew's tasks before ``task``; ``None`` when the crew's tasks are unknown."""
    tasks: object = getattr(execution.crew, "tasks", None) if execution is not None else None
    if not isinstance(tasks, list):
        return None
    earlier: list[object] = []
    for candidate in cast("list[object]", tasks):
        if candidate is task:
            return earlier
        earlier.append(candidate)
    return []  # not a task of this crew (work given by other means): nothing earlier


def _context_source(task: object, execution: CrewExecution | None) -> str | None:
    """Return the role of the agent whose output the task starts from.

    That is the agent of the latest task, in the crew's order, among the tasks whose outputs
    make the context: the task's explicit ``context`` list, else the crew's tasks before it.
    When the crew's tasks are unknown, the agent that finished a task of the crew last.
    """
    explicit: object = getattr(task, "context", None)
    candidates = (
        cast("list[object]", explicit)
        if isinstance(explicit, list)
        else _earlier_tasks(task, execution)
    )
    if candidates is None:
        return execution.last_task_agent() if execution is not None else None
    for earlier in reversed(candidates):
        role = _agent_of_output(earlier)
        if role is not None:
            return role
    return None


def _dividers() -> str:
    try:
        from crewai.utilities.formatter import DIVIDERS
    except ImportError:
        return _DIVIDERS
    return DIVIDERS


def _produced_context(task: object, execution: CrewExecution | None) -> str | None:
    """The context the task's context tasks produced, joined as CrewAI joins their outputs.

    ``None`` when it cannot be told for sure (the crew's tasks unknown, an asynchronous task,
    a conditional task before it, an output without text).
    """
    if getattr(task, "async_execution", False) is True:
        return None  # CrewAI gives it the latest synchronous output only
    explicit: object = getattr(task, "context", None)
    producers = (
        cast("list[object]", explicit)
        if isinstance(explicit, list)
        else _earlier_tasks(task, execution)
    )
    if producers is None:
        return None
    outputs: list[str] = []
    for producer in producers:
        if hasattr(producer, "condition"):
            return None  # a conditional task: a skipped one still adds an output
        output: object = getattr(producer, "output", None)
        if output is None:
            continue
        raw: object = getattr(output, "raw", None)
        if not isinstance(raw, str):
            return None
        outputs.append(raw)
    return _dividers().join(outputs)


def _task_context_crossing(
    task: object, context: str, execution: CrewExecution | None, capture_content: bool
) -> tuple[dict[str, AttributeValue], str]:
    """The attributes of what crossed, and the context their digest is of."""
    crossed = crossing_attributes(context, capture_content=capture_content)
    produced = _produced_context(task, execution)
    if produced is None:
        return crossed, context
    sent = context_digest(produced)
    crossed[AGENTMESH_HANDOFF_CONTEXT_DIGEST] = sent.digest
    crossed[AGENTMESH_HANDOFF_CONTEXT_SIZE] = sent.size
    crossed[AGENTMESH_HANDOFF_RECEIVED_DIGEST] = context_digest(context).digest
    return crossed, produced


def _delegation_received(task: object, context: object) -> str:
    description: object = getattr(task, "description", None)
    return context_digest({"task": description, "context": context}).digest


def _handoff(
    target: str,
    task: object,
    context: object,
    execution: CrewExecution | None,
    capture_content: bool,
) -> tuple[dict[str, AttributeValue], object]:
    """The handoff's attributes, and the context their digest is of."""
    pending = pending_handoff()
    received: dict[str, AttributeValue] = {}
    if pending is None:
        if not isinstance(context, str) or not context:
            return {}, None
        source = _context_source(task, execution)
        if source is None:
            return {}, None
        crossed, sent = _task_context_crossing(task, context, execution, capture_content)
        pending = PendingHandoff(source, "task_context", crossed, sent)
    elif pending.kind == "delegation":
        received[AGENTMESH_HANDOFF_RECEIVED_DIGEST] = _delegation_received(task, context)
    attributes: dict[str, AttributeValue] = {
        GEN_AI_AGENT_HANDOFF_SOURCE_NAME: pending.source,
        GEN_AI_AGENT_HANDOFF_TARGET_NAME: target,
        AGENTMESH_HANDOFF_KIND: pending.kind,
        **pending.crossed,
        **received,
    }
    return attributes, pending.context


def _checkpoint(
    span: Span, run_id: str, context: object, handoff: Mapping[str, AttributeValue]
) -> dict[str, AttributeValue]:
    """Queue a handoff checkpoint of the context that crossed."""
    digest = handoff.get(AGENTMESH_HANDOFF_CONTEXT_DIGEST)
    if not isinstance(digest, str):
        return {}
    return checkpoint_handoff(
        span,
        run_id,
        context,
        source=str(handoff[GEN_AI_AGENT_HANDOFF_SOURCE_NAME]),
        target=str(handoff[GEN_AI_AGENT_HANDOFF_TARGET_NAME]),
        digest=digest,
        handoff_kind=str(handoff[AGENTMESH_HANDOFF_KIND]),
    )


def _begin(
    tracer: Tracer,
    capture_content: bool,
    agent: object,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> _AgentRun | None:
    task, context = _arguments(args, kwargs)
    enclosing = current_step()
    if (
        enclosing is not None
        and enclosing.agent_ref == id(agent)
        and enclosing.task_ref == id(task)
    ):
        return None  # CrewAI retrying the same step
    role = role_of(agent)
    execution = current_execution()
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.INVOKE_AGENT,
        GEN_AI_AGENT_NAME: role,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
    }
    agent_id = text_or_none(getattr(agent, "id", None))
    if agent_id is not None:
        attributes[GEN_AI_AGENT_ID] = agent_id
    task_name = text_or_none(getattr(task, "name", None))
    if task_name is not None:
        attributes[AGENTMESH_CREWAI_TASK_NAME] = task_name
    task_id = text_or_none(getattr(task, "id", None))
    if task_id is not None:
        attributes[AGENTMESH_CREWAI_TASK_ID] = task_id
    if execution is not None:
        attributes[GEN_AI_WORKFLOW_NAME] = execution.name
    run_id = current_run_id()
    if run_id is not None:
        attributes[AGENTMESH_RUN_ID] = run_id
    handoff, crossed = _handoff(role, task, context, execution, capture_content)
    attributes.update(handoff)
    span = tracer.start_span(
        f"{Operation.INVOKE_AGENT} {role}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    if handoff:
        checkpoint_run = run_id if run_id is not None else execution.run_id if execution else None
        if checkpoint_run is not None:
            saved = _failopen.safe_call(
                "crewai.handoff_checkpoint", _checkpoint, span, checkpoint_run, crossed, handoff
            )
            if saved:
                handoff.update(saved)
        span.add_event(EVENT_HANDOFF, handoff)
    step = AgentStep(role, id(agent), id(task))
    new_context = step.into(trace.set_span_in_context(span, otel_context.get_current()))
    return _AgentRun(span, new_context, execution, role, top_level=enclosing is None)


def execute_task_wrapper(tracer: Tracer, capture_content: bool) -> Wrapper:
    """Build the wrapper of ``Agent.execute_task``.

    Args:
        tracer: The tracer spans are started with.
        capture_content: Record the context that crossed a handoff (capped).

    Returns:
        A wrapt wrapper.
    """
    return sync_method_scoped(
        "crewai.start_agent",
        lambda agent, args, kwargs: _begin(tracer, capture_content, agent, args, kwargs),
    )


def aexecute_task_wrapper(tracer: Tracer, capture_content: bool) -> Wrapper:
    """Build the wrapper of ``Agent.aexecute_task``.

    Args:
        tracer: The tracer spans are started with.
        capture_content: Record the context that crossed a handoff (capped).

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_method_scoped(
        "crewai.start_agent",
        lambda agent, args, kwargs: _begin(tracer, capture_content, agent, args, kwargs),
    )
