"""Rebuild each run's execution graph from spans that arrive in any order and in any batches.

The builder keeps a compact record of every span of a live trace (ids, timing and the few
attributes the graph needs, not the whole span) and derives a fresh :class:`RunGraph` whenever
the trace changes. Deriving from the whole trace each time is what makes arrival order
irrelevant: a ``chat`` span that arrives before its agent span is attributed to that agent as
soon as the agent span (and every span between them) is known. Memory is bounded by the number
of live traces; the least recently updated trace is evicted first.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import pairwise

from agentmesh.collector.graph.run_graph import (
    INFERRED,
    AgentInvocation,
    AgentNode,
    HandoffEdge,
    RunGraph,
)
from agentmesh.collector.model import SpanRecord
from agentmesh.core import semconv
from agentmesh.core.errors import CollectorError

__all__ = ["GraphBuilder"]

_UNSPECIFIED_KIND = "unspecified"


@dataclass(frozen=True, slots=True)
class _Handoff:
    source: str
    target: str
    kind: str
    digest: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class _Node:
    """What the graph needs of one span."""

    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    operation: str | None
    agent: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    handoff: _Handoff | None
    run_id: str | None
    workflow_name: str | None
    framework: str | None
    service_name: str | None

    @classmethod
    def of(cls, span: SpanRecord) -> _Node:
        operation = span.operation
        agent: str | None = None
        handoff: _Handoff | None = None
        if operation == semconv.Operation.INVOKE_AGENT:
            agent = span.str_attr(semconv.GEN_AI_AGENT_NAME) or span.name
            source = span.str_attr(semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME)
            if source is not None:
                handoff = _Handoff(
                    source=source,
                    target=span.str_attr(semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME) or agent,
                    kind=span.str_attr(semconv.AGENTMESH_HANDOFF_KIND) or _UNSPECIFIED_KIND,
                    digest=span.str_attr(semconv.AGENTMESH_HANDOFF_CONTEXT_DIGEST),
                    size=span.int_attr(semconv.AGENTMESH_HANDOFF_CONTEXT_SIZE),
                )
        is_chat = operation == semconv.Operation.CHAT
        return cls(
            span_id=span.span_id,
            parent_id=span.parent_span_id,
            start_ns=span.start_ns,
            end_ns=span.end_ns,
            operation=operation,
            agent=agent,
            input_tokens=(span.int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) or 0) if is_chat else 0,
            output_tokens=(span.int_attr(semconv.GEN_AI_USAGE_OUTPUT_TOKENS) or 0)
            if is_chat
            else 0,
            cost_usd=(span.float_attr(semconv.AGENTMESH_COST_USD) or 0.0) if is_chat else 0.0,
            handoff=handoff,
            run_id=span.str_attr(semconv.AGENTMESH_RUN_ID),
            workflow_name=span.str_attr(semconv.GEN_AI_WORKFLOW_NAME),
            framework=span.str_attr(semconv.AGENTMESH_FRAMEWORK),
            service_name=span.service_name,
        )

    @property
    def rank(self) -> tuple[int, int, str]:
        """Which span's run-level attributes win: workflow span, then root, then earliest."""
        if self.operation == semconv.Operation.INVOKE_WORKFLOW:
            level = 0
        elif self.parent_id is None:
            level = 1
        else:
            level = 2
        return (level, self.start_ns, self.span_id)


@dataclass(slots=True)
class _Trace:
    trace_id: str
    nodes: dict[str, _Node] = field(default_factory=lambda: {})
    graph: RunGraph | None = None


class GraphBuilder:
    """Keeps the live graph of every recent trace.

    Args:
        max_traces: Traces kept in memory; adding spans of a new trace beyond this evicts the
            least recently updated one (counted in :attr:`evicted`).

    Raises:
        CollectorError: ``max_traces`` is below 1.

    Example:
        >>> from agentmesh.collector.testing import SpanFactory
        >>> f = SpanFactory()
        >>> root = f.workflow("research", run_id="run-1")
        >>> agent = f.agent("researcher", parent=root)
        >>> chat = f.chat(parent=agent, input_tokens=10, output_tokens=2, cost_usd=0.01)
        >>> builder = GraphBuilder()
        >>> builder.add([chat]) == {f.trace_id}
        True
        >>> builder.get(f.trace_id).agents
        {}
        >>> _ = builder.add([agent, root])
        >>> graph = builder.get(f.trace_id)
        >>> graph.agents["researcher"].input_tokens, graph.run_id, graph.complete
        (10, 'run-1', True)
    """

    def __init__(self, max_traces: int = 10_000) -> None:
        if max_traces < 1:
            raise CollectorError(f"max_traces must be at least 1, got {max_traces}")
        self._max_traces = max_traces
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._evicted = 0

    @property
    def max_traces(self) -> int:
        """How many traces are kept."""
        return self._max_traces

    @property
    def evicted(self) -> int:
        """How many traces were evicted to respect :attr:`max_traces`."""
        return self._evicted

    def __len__(self) -> int:
        return len(self._traces)

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._traces

    def add(self, spans: Iterable[SpanRecord]) -> set[str]:
        """Add spans (of any traces, in any order; re-delivered spans are harmless).

        Args:
            spans: The spans.

        Returns:
            The trace ids whose graph changed and is still held.
        """
        by_trace: dict[str, list[SpanRecord]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        changed: set[str] = set()
        for trace_id, group in by_trace.items():
            trace = self._touch(trace_id)
            dirty = False
            for span in group:
                node = _Node.of(span)
                if trace.nodes.get(node.span_id) != node:
                    trace.nodes[node.span_id] = node
                    dirty = True
            if dirty or trace.graph is None:
                trace.graph = _build(trace)
                changed.add(trace_id)
        return {trace_id for trace_id in changed if trace_id in self._traces}

    def get(self, trace_id: str) -> RunGraph | None:
        """Return the current graph of a trace.

        Args:
            trace_id: The trace (32 hex digits).

        Returns:
            The graph, or ``None`` when the trace is unknown or was evicted.
        """
        trace = self._traces.get(trace_id)
        return None if trace is None else trace.graph

    def discard(self, trace_id: str) -> bool:
        """Forget a trace.

        Args:
            trace_id: The trace.

        Returns:
            Whether it was held.
        """
        return self._traces.pop(trace_id, None) is not None

    def _touch(self, trace_id: str) -> _Trace:
        trace = self._traces.get(trace_id)
        if trace is not None:
            self._traces.move_to_end(trace_id)
            return trace
        while len(self._traces) >= self._max_traces:
            self._traces.popitem(last=False)
            self._evicted += 1
        trace = _Trace(trace_id)
        self._traces[trace_id] = trace
        return trace


@dataclass(slots=True)
class _AgentTotals:
    span_ids: list[str] = field(default_factory=lambda: [])
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    costs: list[float] = field(default_factory=lambda: [])


def _build(trace: _Trace) -> RunGraph:
    nodes = trace.nodes
    invocations = sorted(
        (
            AgentInvocation(node.agent, node.span_id, node.start_ns, node.end_ns)
            for node in nodes.values()
            if node.agent is not None
        ),
        key=lambda inv: (inv.start_ns, inv.span_id),
    )
    totals: dict[str, _AgentTotals] = {}
    for inv in invocations:
        totals.setdefault(inv.agent, _AgentTotals()).span_ids.append(inv.span_id)

    llm_calls = input_tokens = output_tokens = 0
    costs: list[float] = []  # summed with fsum: the same total whatever the arrival order
    meta: dict[str, tuple[tuple[int, int, str], str]] = {}
    for node in nodes.values():
        for key, value in (
            ("run_id", node.run_id),
            ("workflow_name", node.workflow_name),
            ("framework", node.framework),
            ("service_name", node.service_name),
        ):
            if value is not None and (key not in meta or node.rank < meta[key][0]):
                meta[key] = (node.rank, value)
        if node.operation != semconv.Operation.CHAT:
            continue
        llm_calls += 1
        input_tokens += node.input_tokens
        output_tokens += node.output_tokens
        costs.append(node.cost_usd)
        owner = _owner(node, nodes)
        if owner is not None and owner.agent is not None:
            agent = totals[owner.agent]
            agent.llm_calls += 1
            agent.input_tokens += node.input_tokens
            agent.output_tokens += node.output_tokens
            agent.costs.append(node.cost_usd)

    graph = RunGraph(
        trace_id=trace.trace_id,
        run_id=meta["run_id"][1] if "run_id" in meta else trace.trace_id,
        workflow_name=meta["workflow_name"][1] if "workflow_name" in meta else None,
        service_name=meta["service_name"][1] if "service_name" in meta else None,
        framework=meta["framework"][1] if "framework" in meta else None,
        start_ns=min(node.start_ns for node in nodes.values()) if nodes else 0,
        end_ns=max(node.end_ns for node in nodes.values()) if nodes else 0,
        agents={
            name: AgentNode(
                name=name,
                invocations=len(agent.span_ids),
                span_ids=tuple(agent.span_ids),
                llm_calls=agent.llm_calls,
                input_tokens=agent.input_tokens,
                output_tokens=agent.output_tokens,
                cost_usd=math.fsum(agent.costs),
            )
            for name, agent in totals.items()
        },
        invocations=tuple(invocations),
        span_count=len(nodes),
        llm_calls=llm_calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=math.fsum(costs),
        complete=any(node.parent_id is None for node in nodes.values()),
    )
    return replace(graph, handoffs=_handoffs(graph, nodes))


def _owner(node: _Node, nodes: dict[str, _Node]) -> _Node | None:
    """The nearest ``invoke_agent`` ancestor, or ``None`` if the chain is not known (yet)."""
    parent_id = node.parent_id
    for _ in range(len(nodes)):  # bounds the walk even if ids form a cycle
        if parent_id is None:
            return None
        parent = nodes.get(parent_id)
        if parent is None:
            return None
        if parent.agent is not None:
            return parent
        parent_id = parent.parent_id
    return None


def _handoffs(graph: RunGraph, nodes: dict[str, _Node]) -> list[HandoffEdge]:
    explicit: list[HandoffEdge] = []
    for inv in graph.invocations:
        handoff = nodes[inv.span_id].handoff
        if handoff is not None:
            explicit.append(
                HandoffEdge(
                    seq=len(explicit),
                    source=handoff.source,
                    target=handoff.target,
                    span_id=inv.span_id,
                    start_ns=inv.start_ns,
                    kind=handoff.kind,
                    context_digest=handoff.digest,
                    context_size=handoff.size,
                )
            )
    if explicit:
        return explicit
    visits = graph.agent_sequence()
    return [
        HandoffEdge(
            seq=index,
            source=previous.agent,
            target=visit.agent,
            span_id=visit.span_ids[0],
            start_ns=visit.start_ns,
            kind=INFERRED,
        )
        for index, (previous, visit) in enumerate(pairwise(visits))
    ]
