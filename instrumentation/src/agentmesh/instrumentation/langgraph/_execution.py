"""One workflow execution: its name, run id, and who ran last (for handoffs).

The execution travels in the OpenTelemetry context next to the workflow span, so every node
of the run finds it, in whatever thread or asyncio task LangGraph runs the node. Nothing here
imports LangGraph.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, Literal

from opentelemetry import context as otel_context
from opentelemetry.context import Context

__all__ = ["HandoffKind", "HandoffSource", "WorkflowExecution", "current_execution"]

HandoffKind = Literal["edge", "command"]
"""How work crossed from one agent to the next: a graph edge, or a ``Command(goto=…)``."""

_EXECUTION_KEY: Final = otel_context.create_key("agentmesh.langgraph.execution")


@dataclass(frozen=True, slots=True)
class HandoffSource:
    """The agent that ran last before a node started.

    Attributes:
        name: The agent (node) name.
        kind: ``command`` when it returned a ``Command`` with a ``goto``, else ``edge``.
    """

    name: str
    kind: HandoffKind


class WorkflowExecution:
    """State shared by the nodes of one outermost graph execution (thread-safe).

    Args:
        name: The graph (workflow) name.
        run_id: The run id of the execution.

    Example:
        >>> run = WorkflowExecution("g", "r1")
        >>> run.last_agent() is None
        True
        >>> run.agent_finished("supervisor", "command")
        >>> run.last_agent()
        HandoffSource(name='supervisor', kind='command')
    """

    def __init__(self, name: str, run_id: str) -> None:
        self.name = name
        self.run_id = run_id
        self._lock = threading.Lock()
        self._last: HandoffSource | None = None

    def last_agent(self) -> HandoffSource | None:
        """Return the agent that finished most recently, if any.

        Returns:
            The source of a handoff to the node starting now.
        """
        with self._lock:
            return self._last

    def agent_finished(self, name: str, kind: HandoffKind) -> None:
        """Record that an agent node finished.

        Args:
            name: The node.
            kind: How it hands over to the next one.
        """
        with self._lock:
            self._last = HandoffSource(name, kind)

    def into(self, context: Context) -> Context:
        """Return ``context`` carrying this execution.

        Args:
            context: The context to extend.

        Returns:
            The new context.
        """
        return otel_context.set_value(_EXECUTION_KEY, self, context)


def current_execution(context: Context | None = None) -> WorkflowExecution | None:
    """Return the workflow execution the current code runs in, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The execution, or ``None`` outside any instrumented graph run.
    """
    value = otel_context.get_value(_EXECUTION_KEY, context)
    return value if isinstance(value, WorkflowExecution) else None
