"""State of one flow run, carried in the context: which method triggered which, what crossed.

A flow kickoff puts a :class:`FlowExecution` into the OpenTelemetry context next to its
workflow span; each method step puts a :class:`FlowStep`. CrewAI finds the listeners of a
finished method (or of a router's outcome) and then runs each: the execution remembers, per
listener, the trigger that fired it (:meth:`FlowExecution.triggered`), and the run of the
listener announces an :class:`Inbound` handoff (source, kind, what was passed on) that the
listener's step span takes. Nothing here imports CrewAI.

Example:
    >>> run = FlowExecution(object(), "ReviewFlow", "r1", None)
    >>> run.router_finished("classify", "approved")
    >>> run.triggered("approved", ["publish"])
    >>> run.triggered("draft", ["classify"])
    >>> run.take_source("publish"), run.take_source("classify"), run.take_source("x")
    (('classify', 'conditional'), ('draft', 'edge'), None)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agentmesh.instrumentation.crewai._execution import outside_agent_steps, with_workflow_name

__all__ = [
    "FlowExecution",
    "FlowHandoffKind",
    "FlowStep",
    "Inbound",
    "current_flow",
    "current_flow_step",
    "current_inbound",
    "hide_flow",
    "with_inbound",
]

FlowHandoffKind = Literal["edge", "conditional"]
"""How control crossed between flow methods: ``@listen`` on a method, or a router's outcome."""

_FLOW_KEY: Final = otel_context.create_key("agentmesh.crewai.flow")
_FLOW_STEP_KEY: Final = otel_context.create_key("agentmesh.crewai.flow_step")
_INBOUND_KEY: Final = otel_context.create_key("agentmesh.crewai.flow_inbound")


class FlowExecution:
    """State shared by the method steps of one flow kickoff (thread-safe).

    Args:
        flow: The flow object.
        name: The flow (workflow) name.
        run_id: The run id of the execution.
        conversation_id: The flow's state id, when it has one.
    """

    def __init__(self, flow: object, name: str, run_id: str, conversation_id: str | None) -> None:
        self.flow = flow
        self.name = name
        self.run_id = run_id
        self.conversation_id = conversation_id
        self._lock = threading.Lock()
        self._routers: dict[str, str] = {}  # outcome -> router that returned it
        self._sources: dict[str, tuple[str, FlowHandoffKind]] = {}  # listener -> trigger

    def router_finished(self, router: str, outcome: str) -> None:
        """Record that a router returned ``outcome`` (its listeners' trigger).

        Args:
            router: The router method.
            outcome: What it returned, as text.
        """
        with self._lock:
            self._routers[outcome] = router

    def triggered(self, trigger: str, listeners: Iterable[str]) -> None:
        """Record that ``trigger`` (a method, or a router's outcome) fired ``listeners``.

        Args:
            trigger: The method name or router outcome CrewAI looked listeners up for.
            listeners: The methods it fired.
        """
        with self._lock:
            router = self._routers.get(trigger)
            source: tuple[str, FlowHandoffKind] = (
                (router, "conditional") if router is not None else (trigger, "edge")
            )
            for listener in listeners:
                self._sources[listener] = source

    def take_source(self, listener: str) -> tuple[str, FlowHandoffKind] | None:
        """Return (and forget) what fired ``listener``, if known.

        Args:
            listener: The listener about to run.

        Returns:
            The source method and how control crossed.
        """
        with self._lock:
            return self._sources.pop(listener, None)

    def into(self, context: Context) -> Context:
        """Return ``context`` carrying this execution (no step, no agent step yet).

        Args:
            context: The context to extend.

        Returns:
            The new context.
        """
        context = outside_agent_steps(with_workflow_name(self.name, context))
        context = otel_context.set_value(_FLOW_STEP_KEY, None, context)
        context = otel_context.set_value(_INBOUND_KEY, None, context)
        return otel_context.set_value(_FLOW_KEY, self, context)


@dataclass(frozen=True, slots=True)
class FlowStep:
    """The flow method step the current code runs in.

    Attributes:
        execution: The flow run it belongs to.
        method: The method's name.
    """

    execution: FlowExecution
    method: str

    def into(self, context: Context) -> Context:
        """Return ``context`` carrying this step (and no inbound handoff).

        Args:
            context: The context to extend.

        Returns:
            The new context.
        """
        context = otel_context.set_value(_INBOUND_KEY, None, context)
        return otel_context.set_value(_FLOW_STEP_KEY, self, context)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A handoff to the flow method about to run.

    Attributes:
        target: The method that receives it.
        source: The method it came from (for a router's outcome, the router).
        kind: How control crossed.
        payload: What CrewAI passes on to the method (the source's output or the outcome).
    """

    target: str
    source: str
    kind: FlowHandoffKind
    payload: object


def current_flow(context: Context | None = None) -> FlowExecution | None:
    """Return the flow run the current code runs in, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The execution.
    """
    value = otel_context.get_value(_FLOW_KEY, context)
    return value if isinstance(value, FlowExecution) else None


def current_flow_step(context: Context | None = None) -> FlowStep | None:
    """Return the flow method step the current code runs in, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The step.
    """
    value = otel_context.get_value(_FLOW_STEP_KEY, context)
    return value if isinstance(value, FlowStep) else None


def current_inbound(context: Context | None = None) -> Inbound | None:
    """Return the handoff announced for the method about to run, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The handoff.
    """
    value = otel_context.get_value(_INBOUND_KEY, context)
    return value if isinstance(value, Inbound) else None


def with_inbound(inbound: Inbound, context: Context | None = None) -> Context:
    """Return a context announcing ``inbound`` to the method about to run.

    Args:
        inbound: The handoff.
        context: The context to extend; the current one by default.

    Returns:
        The new context.
    """
    return otel_context.set_value(_INBOUND_KEY, inbound, context)


def hide_flow(context: Context) -> Context:
    """Return ``context`` outside any flow (for CrewAI's own flows: their methods are no steps).

    Args:
        context: The context to clear.

    Returns:
        The new context.
    """
    context = otel_context.set_value(_FLOW_KEY, None, context)
    context = otel_context.set_value(_FLOW_STEP_KEY, None, context)
    return otel_context.set_value(_INBOUND_KEY, None, context)
