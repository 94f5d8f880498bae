"""Workflow and agent steps for plain code: one run, with its agents, without a framework.

LangGraph and CrewAI runs get their workflow and agent spans from the framework. Plain code
(a planner and a solver calling the ``openai`` SDK) has none to give: every LLM call would be a
trace, and so a run, of its own. :func:`workflow` opens the run (an ``invoke_workflow`` span, the
run id in baggage) and :func:`agent` a step of one agent (an ``invoke_agent`` span); the LLM
calls made inside become children of the step, so the collector rebuilds one graph with its
agents, the handoffs between them (from the order the agents ran) and their costs::

    with workflow("compare-databases"):
        with agent("planner"):
            plan = client.chat.completions.create(...)
        with agent("solver"):
            answer = client.chat.completions.create(...)

    @agent("critic")
    async def critique(text: str) -> str: ...

Both are context managers and decorators of functions and coroutines. They are fail-open:
without a tracer provider the spans do nothing, a failure of ours is logged, and the
application's own exceptions go through untouched (recorded on the span first). As a
framework's step does, each step exports a start marker as it begins (so the collector sees a
step that hangs, and knows whose LLM calls follow while the step still runs), and an agent step
of a run the collector stopped raises :class:`~agentmesh.core.errors.RunStoppedError` instead of
starting.

Example:
    >>> with workflow("demo", run_id="run-1") as run_id:
    ...     with agent("planner"):
    ...         current_run_id()
    'run-1'
    >>> run_id
    'run-1'
"""

from __future__ import annotations

from types import TracebackType
from typing import Final, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, TracerProvider

from agentmesh.core.errors import RunStoppedError
from agentmesh.core.ids import new_run_id
from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_RUN_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation._decorate import DecoratingScope
from agentmesh.instrumentation._failopen import guarded, record_error, safe_call
from agentmesh.instrumentation._markers import PLAIN_STEPS_SCOPE
from agentmesh.instrumentation.control import check_current_run
from agentmesh.instrumentation.run_context import current_run_id, with_run_id

__all__ = ["StepScope", "agent", "workflow"]

FRAMEWORK: Final = "python"
"""``agentmesh.framework`` of the runs plain code declares."""
_SCOPE: Final = PLAIN_STEPS_SCOPE  # one of the scopes whose steps get a start marker

_P = ParamSpec("_P")
_R = TypeVar("_R")


class StepScope(DecoratingScope):
    """A workflow or agent step: a span around a block (``with``) or each call (decorator).

    Args:
        operation: ``invoke_workflow`` or ``invoke_agent``.
        name: The workflow's or the agent's name.
        run_id: The run id of a workflow (the current run's, or a new one, by default).
        tracer_provider: Where the spans go; the global provider by default.
    """

    def __init__(
        self,
        operation: str,
        name: str,
        run_id: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.operation = operation
        self.name = name
        self.run_id = run_id
        self.tracer_provider = tracer_provider
        self._open: list[tuple[Span | None, object | None]] = []

    def __enter__(self) -> str | None:
        span, token, run_id = None, None, None
        with guarded(f"steps.{self.operation}.start"):
            span, token, run_id = self._start()
        self._open.append((span, token))
        if self.operation == Operation.INVOKE_AGENT:
            try:  # as a framework's step: a run the collector stopped goes no further
                check_current_run()
            except RunStoppedError as exc:
                self.__exit__(type(exc), exc, exc.__traceback__)
                raise
        return run_id

    def _start(self) -> tuple[Span, object, str | None]:
        current = otel_context.get_current()
        attributes: dict[str, str] = {GEN_AI_OPERATION_NAME: self.operation}
        run_id = current_run_id(current)
        if self.operation == Operation.INVOKE_WORKFLOW:
            run_id = self.run_id or run_id or new_run_id()
            current = with_run_id(run_id, current)
            attributes |= {
                GEN_AI_WORKFLOW_NAME: self.name,
                AGENTMESH_FRAMEWORK: FRAMEWORK,
                AGENTMESH_RUN_ID: run_id,
            }
        else:
            attributes[GEN_AI_AGENT_NAME] = self.name
        span = trace.get_tracer(_SCOPE, tracer_provider=self.tracer_provider).start_span(
            f"{self.operation} {self.name}",
            context=current,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span, current))
        return span, token, run_id

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span, token = self._open.pop() if self._open else (None, None)
        if token is not None:
            safe_call("steps.detach", otel_context.detach, token)  # pyright: ignore[reportArgumentType]
        if span is not None:
            with guarded("steps.end"):
                if exc is not None:
                    record_error(span, exc)
                span.end()

    def fresh(self) -> StepScope:
        """A new scope of the same step, for one call of a decorated function.

        Returns:
            The scope.
        """
        return StepScope(self.operation, self.name, self.run_id, self.tracer_provider)


def workflow(
    name: str, *, run_id: str | None = None, tracer_provider: TracerProvider | None = None
) -> StepScope:
    """Run a block (or each call of a function) as one AgentMesh run of plain code.

    Args:
        name: The workflow's name (``gen_ai.workflow.name``).
        run_id: The run id; the current run's, or a new one, by default.
        tracer_provider: Where the span goes; the global provider by default.

    Returns:
        A scope usable as ``with workflow(...) as run_id:`` or ``@workflow(...)``.
    """
    return StepScope(Operation.INVOKE_WORKFLOW, name, run_id, tracer_provider)


def agent(name: str, *, tracer_provider: TracerProvider | None = None) -> StepScope:
    """Run a block (or each call of a function) as a step of one agent.

    The collector counts the LLM calls made inside as the agent's, and infers a handoff each
    time one agent's step follows another's.

    Args:
        name: The agent's name (``gen_ai.agent.name``).
        tracer_provider: Where the span goes; the global provider by default.

    Returns:
        A scope usable as ``with agent(...):`` or ``@agent(...)``.
    """
    return StepScope(Operation.INVOKE_AGENT, name, None, tracer_provider)
