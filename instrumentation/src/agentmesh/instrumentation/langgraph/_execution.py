"""One workflow execution: its name, run id, and the handoffs waiting for their target node.

The execution travels in the OpenTelemetry context next to the workflow span, so every node
of the run finds it, in whatever thread or asyncio task LangGraph runs the node. A node that
finishes registers where its work goes (:class:`Outbound`: target, kind, and for a ``Send``
the packet); the target node, when it starts in a later superstep, takes the handoffs meant
for it. A subgraph (or a graph invoked by a node) gets an execution of its own, nested in
its parent's. Nothing here imports LangGraph.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final, Literal

from opentelemetry import context as otel_context
from opentelemetry.context import Context

__all__ = [
    "HandoffKind",
    "HandoffSource",
    "Outbound",
    "WorkflowExecution",
    "current_execution",
]

HandoffKind = Literal["edge", "conditional", "command", "send"]
"""How work crossed: a plain edge, a conditional edge, ``Command(goto=…)``, or a ``Send``."""

_EXECUTION_KEY: Final = otel_context.create_key("agentmesh.langgraph.execution")
_NO_PACKET: Final = object()


@dataclass(frozen=True, slots=True)
class HandoffSource:
    """An agent that handed work to the node starting now.

    Attributes:
        name: The source agent (node) name.
        kind: How the work crossed.
    """

    name: str
    kind: HandoffKind


@dataclass(frozen=True, slots=True)
class Outbound:
    """Where a finished node sends work.

    Attributes:
        target: The node that will receive it.
        kind: How it crosses.
        packet: For a ``Send``, the packet's argument (the state the target starts from).
    """

    target: str
    kind: HandoffKind
    packet: object = field(default=_NO_PACKET, compare=False)

    @property
    def is_send(self) -> bool:
        """Whether this is a ``Send`` packet (one task per packet)."""
        return self.packet is not _NO_PACKET


@dataclass(slots=True)
class _Pending:
    source: str
    step: int
    outbound: Outbound


class WorkflowExecution:
    """State shared by the nodes of one graph execution (thread-safe).

    Args:
        name: The graph (workflow) name.
        run_id: The run id of the execution (a subgraph inherits its parent's).
        conversation_id: The thread id, when the run has one.
        task_class: The task class of the run, when known.
        depth: 0 for the outermost graph, 1 for a subgraph of it, and so on.

    Example:
        >>> run = WorkflowExecution("g", "r1")
        >>> run.handoffs_to("worker", step=2) == []
        True
        >>> run.node_finished("supervisor", 1, [Outbound("worker", "conditional")])
        >>> run.handoffs_to("worker", step=2)
        [HandoffSource(name='supervisor', kind='conditional')]
        >>> run.handoffs_to("worker", step=2)  # taken once
        []
    """

    def __init__(
        self,
        name: str,
        run_id: str,
        *,
        conversation_id: str | None = None,
        task_class: str | None = None,
        depth: int = 0,
    ) -> None:
        self.name = name
        self.run_id = run_id
        self.conversation_id = conversation_id
        self.task_class = task_class
        self.depth = depth
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._interrupted = False

    @property
    def interrupted(self) -> bool:
        """Whether a node of this execution stopped at an interrupt."""
        with self._lock:
            return self._interrupted

    def mark_interrupted(self) -> None:
        """Record that a node stopped at an interrupt."""
        with self._lock:
            self._interrupted = True

    def node_finished(self, source: str, step: int, outbound: list[Outbound]) -> None:
        """Record where a finished node sends its work.

        Args:
            source: The agent the work comes from.
            step: The superstep it ran in.
            outbound: Its targets.
        """
        if not outbound:
            return
        with self._lock:
            self._pending.extend(_Pending(source, step, o) for o in outbound)

    def handoffs_to(
        self, target: str, *, step: int | None, is_send: bool = False, packet: object = None
    ) -> list[HandoffSource]:
        """Take the handoffs that the node starting now receives.

        A node started by a ``Send`` receives the one packet it runs with (matched by
        identity, then by equality); any other node receives every handoff waiting for it.

        Args:
            target: The node starting now.
            step: Its superstep; only handoffs from earlier steps are taken.
            is_send: Whether a ``Send`` started the node.
            packet: The node's input, when a ``Send`` started it.

        Returns:
            The sources, in the order they finished; empty when none.
        """
        with self._lock:
            ready = [
                p
                for p in self._pending
                if p.outbound.target == target
                and (step is None or p.step < step)
                and p.outbound.is_send == is_send
            ]
            if is_send:
                ready = _match_packet(ready, packet)
            for pending in ready:
                self._pending.remove(pending)
        return [HandoffSource(p.source, p.outbound.kind) for p in ready]

    def into(self, context: Context) -> Context:
        """Return ``context`` carrying this execution.

        Args:
            context: The context to extend.

        Returns:
            The new context.
        """
        return otel_context.set_value(_EXECUTION_KEY, self, context)


def _match_packet(ready: list[_Pending], packet: object) -> list[_Pending]:
    for pending in ready:
        if pending.outbound.packet is packet:
            return [pending]
    for pending in ready:
        if _equal(pending.outbound.packet, packet):
            return [pending]
    return ready[:1]


def _equal(left: object, right: object) -> bool:
    try:
        return bool(left == right)
    except Exception:  # noqa: BLE001 - a state whose __eq__ fails simply does not match
        return False


def current_execution(context: Context | None = None) -> WorkflowExecution | None:
    """Return the workflow execution the current code runs in, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The innermost execution, or ``None`` outside any instrumented graph run.
    """
    value = otel_context.get_value(_EXECUTION_KEY, context)
    return value if isinstance(value, WorkflowExecution) else None
