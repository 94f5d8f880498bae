"""Workflow spans: one ``invoke_workflow {crew name}`` span per crew kickoff.

``Crew.kickoff`` and ``Crew.akickoff`` are wrapped (``kickoff_async`` and ``kickoff_for_each``
go through ``kickoff``). A streaming kickoff (``stream=True``) returns at once and runs a
non-streaming kickoff in a thread that copies the context: that inner kickoff gets the span.
A kickoff of the same crew inside its own execution (checkpoint restore) is not a new run. With
task checkpoints on, the outermost kickoff's span names their store
(``agentmesh.handoff.checkpoint.store_url``, password masked).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core import new_run_id
from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL,
    AGENTMESH_RESUME_CHECKPOINT_ID,
    AGENTMESH_RESUME_FROM_RUN_ID,
    AGENTMESH_RUN_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.crewai._bound import async_method_scoped, sync_method_scoped
from agentmesh.instrumentation.crewai._execution import CrewExecution, current_execution
from agentmesh.instrumentation.crewai._task_checkpoints import attach_task_checkpoints
from agentmesh.instrumentation.run_context import current_run_id, with_run_id

__all__ = ["FRAMEWORK", "akickoff_wrapper", "kickoff_wrapper"]

FRAMEWORK: Final = "crewai"
_DEFAULT_CREW_NAME: Final = "crew"


@dataclass(frozen=True, slots=True)
class _Kickoff:
    span: Span
    context: Context
    checkpoints: AbstractContextManager[object] | None = None

    def finish(self, result: object, error: BaseException | None) -> None:
        if self.checkpoints is not None:
            _failopen.safe_call(
                "crewai.task_checkpoints", self.checkpoints.__exit__, None, None, None
            )
        if error is not None:
            _failopen.record_error(self.span, error)
        _failopen.end_span(self.span)


def _begin(tracer: Tracer, crew: object) -> _Kickoff | None:
    if getattr(crew, "stream", False) is True:
        return None  # the non-streaming kickoff it runs in a thread gets the span
    execution = current_execution()
    if execution is not None and execution.runs(crew):
        return None
    name_value = getattr(crew, "name", None)
    name = name_value if isinstance(name_value, str) and name_value else _DEFAULT_CREW_NAME
    run_id = current_run_id() or new_run_id()
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.INVOKE_WORKFLOW,
        GEN_AI_WORKFLOW_NAME: name,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
        AGENTMESH_RUN_ID: run_id,
    }
    checkpoints = None
    if execution is None:  # the outermost kickoff: task checkpoints and resume
        attached = _failopen.safe_call(
            "crewai.task_checkpoints", attach_task_checkpoints, crew, run_id
        )
        if attached is not None:
            checkpoints, target, store_url = attached
            if store_url is not None:
                attributes[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] = store_url
            if target is not None:
                attributes[AGENTMESH_RESUME_FROM_RUN_ID] = target.run_id
                if target.checkpoint_id is not None:
                    attributes[AGENTMESH_RESUME_CHECKPOINT_ID] = target.checkpoint_id
    span = tracer.start_span(
        f"{Operation.INVOKE_WORKFLOW} {name}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    context = trace.set_span_in_context(span, otel_context.get_current())
    context = with_run_id(run_id, CrewExecution(crew, name, run_id).into(context))
    return _Kickoff(span, context, checkpoints)


def kickoff_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``Crew.kickoff``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper.
    """
    return sync_method_scoped("crewai.start_workflow", lambda crew, _a, _k: _begin(tracer, crew))


def akickoff_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``Crew.akickoff`` (native async kickoff).

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_method_scoped("crewai.start_workflow", lambda crew, _a, _k: _begin(tracer, crew))
