"""Agents without a crew: one ``invoke_agent {role}`` span per ``Agent.kickoff``.

``Agent.kickoff``, ``Agent.kickoff_async`` and ``Agent.akickoff`` are wrapped. The span nests
under whatever is current (a flow method's step, a tool, nothing) and carries the innermost
crew's or flow's name as ``gen_ai.workflow.name`` when there is one. Outside any run it starts
one: a new run id, put into baggage for everything the agent calls. The agent's LLM calls and
tools run inside it, so their spans are its children.

Called from a running event loop (inside a flow method, for instance), CrewAI's ``kickoff``
returns the coroutine of ``kickoff_async`` for the caller to await: the span then ends when
that coroutine does. One kickoff calling another of the same agent (``akickoff`` →
``kickoff_async``) is one span.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core import new_run_id
from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_RUN_ID,
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.crewai._bound import async_method_scoped
from agentmesh.instrumentation.crewai._execution import (
    AgentStep,
    current_step,
    current_workflow_name,
)
from agentmesh.instrumentation.crewai._names import role_of, text_or_none
from agentmesh.instrumentation.crewai._workflow import FRAMEWORK
from agentmesh.instrumentation.run_context import current_run_id, with_run_id

__all__ = ["async_kickoff_wrapper", "kickoff_wrapper"]

_KICKOFF_TASK_REF: Final = 0
"""The task identity of a kickoff step (no task: ``id()`` of an object is never 0)."""


@dataclass(frozen=True, slots=True)
class _KickoffRun:
    span: Span
    context: Context

    def finish(self, result: object, error: BaseException | None) -> None:
        if error is not None:
            _failopen.record_error(self.span, error)
        _failopen.end_span(self.span)


def _begin(
    tracer: Tracer, agent: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _KickoffRun | None:
    enclosing = current_step()
    if (
        enclosing is not None
        and enclosing.agent_ref == id(agent)
        and enclosing.task_ref == _KICKOFF_TASK_REF
    ):
        return None  # one kickoff going through another of the same agent
    role = role_of(agent)
    run_id = current_run_id()
    starts_run = run_id is None
    if run_id is None:
        run_id = new_run_id()
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.INVOKE_AGENT,
        GEN_AI_AGENT_NAME: role,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
        AGENTMESH_RUN_ID: run_id,
    }
    agent_id = text_or_none(getattr(agent, "id", None))
    if agent_id is not None:
        attributes[GEN_AI_AGENT_ID] = agent_id
    workflow = current_workflow_name()
    if workflow is not None:
        attributes[GEN_AI_WORKFLOW_NAME] = workflow
    span = tracer.start_span(
        f"{Operation.INVOKE_AGENT} {role}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    context = trace.set_span_in_context(span, otel_context.get_current())
    context = AgentStep(role, id(agent), _KICKOFF_TASK_REF).into(context)
    if starts_run:
        context = with_run_id(run_id, context)
    return _KickoffRun(span, context)


async def _finish_when_awaited(coroutine: Coroutine[Any, Any, Any], run: _KickoffRun) -> Any:
    try:
        with attached(run.context):
            result = await coroutine
    except BaseException as exc:
        run.finish(None, exc)
        raise
    run.finish(result, None)
    return result


def kickoff_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``Agent.kickoff``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper (returning a coroutine when CrewAI's ``kickoff`` does).
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        run = _failopen.safe_call("crewai.start_kickoff", _begin, tracer, instance, args, kwargs)
        if run is None:
            return wrapped(*args, **kwargs)
        try:
            with attached(run.context):
                result = wrapped(*args, **kwargs)
        except BaseException as exc:
            run.finish(None, exc)
            raise
        if inspect.iscoroutine(result):  # inside a running loop: the caller awaits it
            return _finish_when_awaited(result, run)
        run.finish(result, None)
        return result

    return wrapper


def async_kickoff_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``Agent.kickoff_async`` and ``Agent.akickoff``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_method_scoped(
        "crewai.start_kickoff",
        lambda agent, args, kwargs: _begin(tracer, agent, args, kwargs),
    )
