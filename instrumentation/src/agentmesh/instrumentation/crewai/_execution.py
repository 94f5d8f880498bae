"""State of one crew execution and of the agent step running now, carried in the context.

A crew kickoff puts a :class:`CrewExecution` into the OpenTelemetry context next to its
workflow span; each agent step puts an :class:`AgentStep`; a delegation tool puts a
:class:`PendingHandoff` for the coworker it is about to run. CrewAI copies the context into
the threads it starts (``execute_async``, timeouts, parallel tool calls), so every step finds
them. Nothing here imports CrewAI.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

__all__ = [
    "AgentStep",
    "CrewExecution",
    "HandoffKind",
    "PendingHandoff",
    "current_execution",
    "current_step",
    "current_workflow_name",
    "outside_agent_steps",
    "pending_handoff",
    "with_pending_handoff",
    "with_workflow_name",
]

HandoffKind = Literal["delegation", "task_context"]
"""How work crossed between CrewAI agents: a delegation tool, or a task output as context."""

_EXECUTION_KEY: Final = otel_context.create_key("agentmesh.crewai.execution")
_STEP_KEY: Final = otel_context.create_key("agentmesh.crewai.step")
_PENDING_KEY: Final = otel_context.create_key("agentmesh.crewai.pending_handoff")
_WORKFLOW_NAME_KEY: Final = otel_context.create_key("agentmesh.crewai.workflow_name")


class CrewExecution:
    """State shared by the steps of one crew kickoff (thread-safe).

    Args:
        crew: The crew object (a nested kickoff of the same crew is not a new execution).
        name: The crew (workflow) name.
        run_id: The run id of the execution.

    Example:
        >>> run = CrewExecution(object(), "crew", "r1")
        >>> run.last_task_agent() is None
        True
        >>> run.task_finished("Researcher")
        >>> run.last_task_agent()
        'Researcher'
    """

    def __init__(self, crew: object, name: str, run_id: str) -> None:
        self.crew = crew
        self.name = name
        self.run_id = run_id
        self._lock = threading.Lock()
        self._last: str | None = None

    def runs(self, crew: object) -> bool:
        """Tell whether this is an execution of ``crew``.

        Args:
            crew: A crew object.

        Returns:
            Whether it is the crew this execution runs.
        """
        return crew is self.crew

    def last_task_agent(self) -> str | None:
        """Return the agent that finished the latest top-level task, if any.

        Returns:
            Its role.
        """
        with self._lock:
            return self._last

    def task_finished(self, role: str) -> None:
        """Record that an agent finished a task of the crew (not a delegated one).

        Args:
            role: The agent's role.
        """
        with self._lock:
            self._last = role

    def into(self, context: Context) -> Context:
        """Return ``context`` carrying this execution.

        Args:
            context: The context to extend.

        Returns:
            The new context.
        """
        context = with_workflow_name(self.name, context)
        return otel_context.set_value(_EXECUTION_KEY, self, context)


@dataclass(frozen=True, slots=True)
class AgentStep:
    """The agent step (an agent executing a task) the current code runs in.

    Attributes:
        role: The agent's role.
        agent_ref: Identity of the agent object.
        task_ref: Identity of the task object.
    """

    role: str
    agent_ref: int
    task_ref: int

    def into(self, context: Context) -> Context:
        """Return ``context`` carrying this step (and no pending handoff).

        Args:
            context: The context to extend.

        Returns:
            The new context.
        """
        context = otel_context.set_value(_STEP_KEY, self, context)
        return otel_context.set_value(_PENDING_KEY, None, context)


@dataclass(frozen=True, slots=True)
class PendingHandoff:
    """A handoff announced by a delegation tool, taken by the next agent step that starts.

    Attributes:
        source: Role of the delegating agent.
        kind: How the work crosses.
        crossed: Attributes of the context that crosses (digest, size, content when captured).
        context: The context whose digest ``crossed`` carries (for a handoff checkpoint).
    """

    source: str
    kind: HandoffKind
    crossed: Mapping[str, AttributeValue]
    context: object = None


def current_execution(context: Context | None = None) -> CrewExecution | None:
    """Return the crew execution the current code runs in, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The execution, or ``None`` outside any instrumented kickoff.
    """
    value = otel_context.get_value(_EXECUTION_KEY, context)
    return value if isinstance(value, CrewExecution) else None


def current_step(context: Context | None = None) -> AgentStep | None:
    """Return the agent step the current code runs in, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The step, or ``None`` outside any agent step.
    """
    value = otel_context.get_value(_STEP_KEY, context)
    return value if isinstance(value, AgentStep) else None


def pending_handoff(context: Context | None = None) -> PendingHandoff | None:
    """Return the handoff waiting for the next agent step, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The pending handoff.
    """
    value = otel_context.get_value(_PENDING_KEY, context)
    return value if isinstance(value, PendingHandoff) else None


def with_pending_handoff(handoff: PendingHandoff, context: Context | None = None) -> Context:
    """Return a context announcing ``handoff`` to the next agent step.

    Args:
        handoff: The handoff.
        context: The context to extend; the current one by default.

    Returns:
        The new context.
    """
    return otel_context.set_value(_PENDING_KEY, handoff, context)


def with_workflow_name(name: str, context: Context | None = None) -> Context:
    """Return a context naming the innermost workflow (crew or flow) its code runs in.

    Args:
        name: The workflow name.
        context: The context to extend; the current one by default.

    Returns:
        The new context.
    """
    return otel_context.set_value(_WORKFLOW_NAME_KEY, name, context)


def current_workflow_name(context: Context | None = None) -> str | None:
    """Return the name of the innermost crew or flow the current code runs in, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The workflow name.
    """
    value = otel_context.get_value(_WORKFLOW_NAME_KEY, context)
    return value if isinstance(value, str) else None


def outside_agent_steps(context: Context) -> Context:
    """Return ``context`` without an agent step or a pending handoff (a flow starting).

    Args:
        context: The context to clear.

    Returns:
        The new context.
    """
    context = otel_context.set_value(_STEP_KEY, None, context)
    return otel_context.set_value(_PENDING_KEY, None, context)
