"""The execution graph of one run: its agents, their handoffs and what their LLM calls cost.

A :class:`RunGraph` is an immutable snapshot; the
:class:`~agentmesh.collector.graph.builder.GraphBuilder` makes a new one each time spans of the
trace arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["INFERRED", "AgentInvocation", "AgentNode", "AgentVisit", "HandoffEdge", "RunGraph"]

INFERRED: Final = "inferred"
"""``HandoffEdge.kind`` of a handoff deduced from the order of agent spans."""


@dataclass(frozen=True, slots=True)
class AgentNode:
    """One agent of a run, with its LLM usage rolled up.

    Attributes:
        name: The agent's name (``gen_ai.agent.name``).
        invocations: How many ``invoke_agent`` spans it has.
        span_ids: Those spans, by start time.
        llm_calls: ``chat`` spans whose nearest agent ancestor is one of its spans.
        input_tokens: Input tokens of those calls.
        output_tokens: Output tokens of those calls.
        cost_usd: Cost of those calls in US dollars.
    """

    name: str
    invocations: int = 0
    span_ids: tuple[str, ...] = ()
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class HandoffEdge:
    """Work passing from one agent to another.

    Attributes:
        seq: Position of the handoff in the run (0 for the first), by the receiving span's start.
        source: The agent that handed over.
        target: The agent that received the work.
        span_id: The receiving agent's span.
        start_ns: When that span started.
        kind: ``edge``, ``command``, ``send``… as the instrumentation recorded it, or
            ``inferred`` when deduced from the order of agent spans.
        context_digest: Digest of the context that crossed, when recorded.
        context_size: Its size in bytes, when recorded.
        checkpoint_id: The checkpoint taken at the handoff (the graph's own LangGraph
            checkpoint, or the instrumentation's handoff checkpoint), when recorded: where a
            failed run can resume.
    """

    seq: int
    source: str
    target: str
    span_id: str
    start_ns: int
    kind: str
    context_digest: str | None = None
    context_size: int | None = None
    checkpoint_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentInvocation:
    """One ``invoke_agent`` span.

    Attributes:
        agent: The agent's name.
        span_id: The span.
        start_ns: When it started.
        end_ns: When it ended.
    """

    agent: str
    span_id: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class AgentVisit:
    """Consecutive invocations of the same agent, collapsed into one step of the run.

    Attributes:
        agent: The agent's name.
        span_ids: Its spans in this visit, by start time.
        start_ns: When the first of them started.
    """

    agent: str
    span_ids: tuple[str, ...]
    start_ns: int


@dataclass(frozen=True, slots=True)
class RunGraph:
    """Snapshot of a run's execution graph, rebuilt from its trace.

    Attributes:
        trace_id: The trace (32 hex digits).
        run_id: ``agentmesh.run.id`` of the run, or the trace id when no span carries one.
        workflow_name: ``gen_ai.workflow.name``, when known.
        service_name: ``service.name`` of the root span's process (or of the earliest span).
        framework: ``agentmesh.framework``, when known.
        start_ns: Earliest span start.
        end_ns: Latest span end.
        agents: Agents by name.
        handoffs: Handoffs by the receiving span's start time.
        invocations: Every agent span, by start time.
        span_count: Spans received for the trace.
        llm_calls: ``chat`` spans in the trace (attributed to an agent or not).
        input_tokens: Their input tokens.
        output_tokens: Their output tokens.
        cost_usd: Their cost in US dollars.
        complete: Whether the root span (no parent) has arrived.
        paused: Whether a span of the run says it stopped to wait for input
            (``agentmesh.run.paused``): a complete run that is paused is not finished.
        resumed_from: The run this one continues (``agentmesh.resume.from_run_id`` of its
            workflow span, else of its root or earliest span), when it is a resumed run.
            A resumed run that does not name it (its pause was seen by another process) is
            linked by the collector to its conversation's previous run when stored.
        conversation_id: The conversation the run belongs to (``gen_ai.conversation.id``: a
            LangGraph thread, a CrewAI flow's state), taken like ``resumed_from``.
        resumed: Whether the run continues its conversation where the previous run left off
            (``agentmesh.run.resumed``, or it names the run it continues).
        error: Why the run failed, when its root span ended in error: the failed step it
            left through and the error type (``step 'writer' failed: RateLimitError``), else
            the root's error type (see :mod:`~agentmesh.collector.graph.failure`); ``None``
            for a run that did not fail (or whose root span has not arrived).
        interrupted: What stopped the run without failing it, when its root span was
            interrupted (``KeyboardInterrupt``, ``CancelledError``, ``SystemExit``: see
            :mod:`~agentmesh.collector.graph.interruption`); ``None`` otherwise.
        visits: The agent sequence, when the builder computed it (``None`` otherwise:
            :meth:`agent_sequence` then derives it from ``invocations``); not compared.
        generation: How many snapshots of this trace the builder made before this one;
            not compared.
        visits_changed_from: First index of ``visits`` that may differ from the previous
            snapshot's (0 when unknown), so rules can look only at the new tail; not compared.
    """

    trace_id: str
    run_id: str
    workflow_name: str | None = None
    service_name: str | None = None
    framework: str | None = None
    start_ns: int = 0
    end_ns: int = 0
    agents: dict[str, AgentNode] = field(default_factory=lambda: {})
    handoffs: list[HandoffEdge] = field(default_factory=lambda: [])
    invocations: tuple[AgentInvocation, ...] = ()
    span_count: int = 0
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    complete: bool = False
    paused: bool = False
    resumed_from: str | None = None
    conversation_id: str | None = None
    resumed: bool = False
    error: str | None = None
    interrupted: str | None = None
    visits: tuple[AgentVisit, ...] | None = field(default=None, compare=False, repr=False)
    generation: int = field(default=0, compare=False)
    visits_changed_from: int = field(default=0, compare=False)

    @property
    def failed(self) -> bool:
        """Whether the run failed: its root span ended in error."""
        return self.error is not None

    @property
    def handoffs_inferred(self) -> bool:
        """Whether the handoffs were deduced from span order (no explicit handoff attributes)."""
        return any(edge.kind == INFERRED for edge in self.handoffs)

    def agent_sequence(self) -> list[AgentVisit]:
        """Return the agents in the order they ran, consecutive repeats collapsed.

        Returns:
            One :class:`AgentVisit` per change of agent.

        Example:
            >>> graph = RunGraph(
            ...     trace_id="t",
            ...     run_id="r",
            ...     invocations=(
            ...         AgentInvocation("supervisor", "s1", 1, 2),
            ...         AgentInvocation("supervisor", "s2", 3, 4),
            ...         AgentInvocation("researcher", "r1", 5, 6),
            ...     ),
            ... )
            >>> [(v.agent, v.span_ids) for v in graph.agent_sequence()]
            [('supervisor', ('s1', 's2')), ('researcher', ('r1',))]
        """
        if self.visits is not None:
            return list(self.visits)
        visits: list[AgentVisit] = []
        for invocation in self.invocations:
            if visits and visits[-1].agent == invocation.agent:
                last = visits[-1]
                visits[-1] = AgentVisit(
                    last.agent, (*last.span_ids, invocation.span_id), last.start_ns
                )
            else:
                visits.append(
                    AgentVisit(invocation.agent, (invocation.span_id,), invocation.start_ns)
                )
        return visits
