"""Rebuild each run's execution graph from spans that arrive in any order and in any batches.

The builder keeps a compact record of every span of a live trace (ids, timing and the few
attributes the graph needs, not the whole span) and derives a fresh :class:`RunGraph` whenever
the trace changes. Deriving from the whole trace each time is what makes arrival order
irrelevant: a ``chat`` span that arrives before its agent span is attributed to that agent as
soon as the agent span (and every span between them) is known. Memory is bounded by the number
of live traces; the least recently updated trace is evicted first.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from agentmesh.collector.graph.failure import (
    failed_step,
    failed_tool,
    inner_tool,
    later_failure,
    run_failure,
)
from agentmesh.collector.graph.node import GraphNode, graph_node
from agentmesh.collector.graph.run_graph import (
    AgentInvocation,
    AgentLanes,
    AgentNode,
    HandoffEdge,
    RunGraph,
)
from agentmesh.collector.model import SpanRecord
from agentmesh.core import semconv
from agentmesh.core.errors import CollectorError

__all__ = ["MAX_WORKFLOW_LABELS", "NO_WORKFLOW", "OTHER_WORKFLOWS", "GraphBuilder"]

MAX_WORKFLOW_LABELS: Final = 200
"""Distinct workflow names :attr:`GraphBuilder.runs_by_workflow` counts apart."""

NO_WORKFLOW: Final = "(none)"
"""The workflow label of runs whose spans named no workflow (``gen_ai.workflow.name``)."""

OTHER_WORKFLOWS: Final = "(other)"
"""The workflow label of runs past :data:`MAX_WORKFLOW_LABELS` distinct workflow names."""


@dataclass(slots=True)
class _AgentTotals:
    span_keys: list[tuple[int, str]] = field(default_factory=lambda: [])
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    costs: list[float] = field(default_factory=lambda: [])
    node: AgentNode | None = None  # cached until the agent changes


class _Trace:
    """The incremental state of one trace's graph.

    Adding a span costs O(log n) plus the work the span causes (a chat span waits, keyed by
    its missing ancestor, until its chain to an agent is known; so does an agent span for its
    caller, the agent span enclosing it). A snapshot recomputes only the handoffs and the
    lanes of agent visits (:class:`AgentLanes`) from the earliest invocation inserted, or
    whose caller became known, since the previous snapshot (the suffix), and only the agents
    that changed.
    """

    __slots__ = (
        "agents",
        "callers_pending",
        "complete",
        "costs",
        "dirty",
        "dirty_from",
        "end_ns",
        "ended",
        "explicit",
        "failed_step",
        "failed_tools",
        "generation",
        "graph",
        "input_tokens",
        "inv",
        "inv_keys",
        "lanes",
        "llm_calls",
        "meta",
        "nodes",
        "output_tokens",
        "paused",
        "pending",
        "resumed",
        "root",
        "start_ns",
        "touched",
        "trace_id",
    )

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.touched = 0.0  # monotonic seconds of the last spans added
        self.nodes: dict[str, GraphNode] = {}
        self.graph: RunGraph | None = None
        self.generation = 0
        self.ended = False  # the builder counted the run as finished (kept across rebuilds)
        self._reset()

    def _reset(self) -> None:
        self.inv: list[AgentInvocation] = []
        self.inv_keys: list[tuple[int, str]] = []
        self.agents: dict[str, _AgentTotals] = {}
        self.pending: dict[str, list[GraphNode]] = {}
        self.meta: dict[str, tuple[tuple[int, int, str], str]] = {}
        self.llm_calls = self.input_tokens = self.output_tokens = 0
        self.costs: list[float] = []  # summed with fsum: the same total in any order
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.complete = False
        self.root: GraphNode | None = None  # the root span, once it arrived
        self.failed_step: GraphNode | None = None  # the failed step a failed run names
        self.failed_tools: list[GraphNode] = []  # to name the tool a failed step failed through
        self.paused = False
        self.resumed = False
        self.explicit: list[HandoffEdge] = []
        self.lanes = AgentLanes()  # agent visits and inferred handoffs
        self.callers_pending: dict[str, list[str]] = {}  # missing span -> agent spans below
        self.dirty_from = 0
        self.dirty = True

    def add(self, node: GraphNode) -> bool:
        """Add or replace a span; return whether anything changed."""
        old = self.nodes.get(node.span_id)
        if old == node:
            return False
        self.nodes[node.span_id] = node
        if old is not None:  # a span re-sent with other content: start over (rare)
            self._reset()
            for each in self.nodes.values():
                self._apply(each)
            return True
        self._apply(node)
        return True

    def _apply(self, node: GraphNode) -> None:
        self.dirty = True
        if self.start_ns is None or node.start_ns < self.start_ns:
            self.start_ns = node.start_ns
        if self.end_ns is None or node.end_ns > self.end_ns:
            self.end_ns = node.end_ns
        if node.parent_id is None:
            self.complete = True
            if self.root is None or node.error:  # of several roots, one in error fails the run
                self.root = node
        if failed_step(node):
            self.failed_step = later_failure(self.failed_step, node)
            if failed_tool(node):
                self.failed_tools.append(node)
        if node.paused:
            self.paused = True
        if node.resumed:
            self.resumed = True
        meta = self.meta
        for key, value in (
            ("run_id", node.run_id),
            ("workflow_name", node.workflow_name),
            ("framework", node.framework),
            ("service_name", node.service_name),
            ("resumed_from", node.resumed_from),
            ("conversation_id", node.conversation_id),
        ):
            if value is not None and (key not in meta or node.rank < meta[key][0]):
                meta[key] = (node.rank, value)
        if node.agent is not None:
            key = (node.start_ns, node.span_id)
            position = bisect.bisect_left(self.inv_keys, key)
            invocation = AgentInvocation(
                node.agent,
                node.span_id,
                node.start_ns,
                node.end_ns,
                self._caller(node.span_id, node.parent_id),
                None if node.handoff is None else node.handoff.source,
            )
            self.inv_keys.insert(position, key)
            self.inv.insert(position, invocation)
            self.lanes.add(invocation)
            self.dirty_from = min(self.dirty_from, position)
            totals = self.agents.setdefault(node.agent, _AgentTotals())
            bisect.insort(totals.span_keys, key)
            totals.node = None
        if node.operation == semconv.Operation.CHAT:
            self.llm_calls += 1
            self.input_tokens += node.input_tokens
            self.output_tokens += node.output_tokens
            self.costs.append(node.cost_usd)
            self._attribute(node, node.parent_id)
        waiting = self.pending.pop(node.span_id, None)
        if waiting is not None:
            for chat in waiting:
                self._attribute(chat, node.span_id)
        below = self.callers_pending.pop(node.span_id, None)
        if below is not None:
            self._found_callers(node, below)

    def _caller(self, span_id: str, parent_id: str | None) -> str | None:
        """The nearest agent ancestor of an agent span, or wait for a missing span between."""
        nodes = self.nodes
        for _ in range(len(nodes)):  # bounds the walk even if ids form a cycle
            if parent_id is None:
                return None
            parent = nodes.get(parent_id)
            if parent is None:
                self.callers_pending.setdefault(parent_id, []).append(span_id)
                return None
            if parent.agent is not None:
                return parent_id
            parent_id = parent.parent_id
        return None

    def _found_callers(self, node: GraphNode, below: list[str]) -> None:
        """Walk on from a span that agent spans below it waited for; redo those that changed."""
        for span_id in below:
            caller = (
                node.span_id if node.agent is not None else self._caller(span_id, node.parent_id)
            )
            if caller is None:  # still unknown, or none: as it was
                continue
            waiting = self.nodes[span_id]
            position = bisect.bisect_left(self.inv_keys, (waiting.start_ns, span_id))
            invocation = self.inv[position]
            if invocation.caller != caller:
                self.inv[position] = replace(invocation, caller=caller)
                self.dirty_from = min(self.dirty_from, position)

    def _attribute(self, chat: GraphNode, parent_id: str | None) -> None:
        """Roll a chat span up to its nearest agent ancestor, or wait for a missing one."""
        nodes = self.nodes
        for _ in range(len(nodes)):  # bounds the walk even if ids form a cycle
            if parent_id is None:
                return
            parent = nodes.get(parent_id)
            if parent is None:
                self.pending.setdefault(parent_id, []).append(chat)
                return
            if parent.agent is not None:
                totals = self.agents[parent.agent]
                totals.llm_calls += 1
                totals.input_tokens += chat.input_tokens
                totals.output_tokens += chat.output_tokens
                totals.costs.append(chat.cost_usd)
                totals.node = None
                return
            parent_id = parent.parent_id

    def snapshot(self) -> RunGraph:
        """The current graph (made again only when something changed)."""
        if not self.dirty and self.graph is not None:
            return self.graph
        start = min(self.dirty_from, len(self.inv))
        changed_from = self._update_handoffs(start)
        meta = self.meta
        agents: dict[str, AgentNode] = {}
        for name, totals in self.agents.items():
            if totals.node is None:
                totals.node = AgentNode(
                    name=name,
                    invocations=len(totals.span_keys),
                    span_ids=tuple(key[1] for key in totals.span_keys),
                    llm_calls=totals.llm_calls,
                    input_tokens=totals.input_tokens,
                    output_tokens=totals.output_tokens,
                    cost_usd=math.fsum(totals.costs),
                )
            agents[name] = totals.node
        graph = RunGraph(
            trace_id=self.trace_id,
            run_id=meta["run_id"][1] if "run_id" in meta else self.trace_id,
            workflow_name=meta["workflow_name"][1] if "workflow_name" in meta else None,
            service_name=meta["service_name"][1] if "service_name" in meta else None,
            framework=meta["framework"][1] if "framework" in meta else None,
            start_ns=self.start_ns or 0,
            end_ns=self.end_ns or 0,
            agents=agents,
            handoffs=list(self.explicit) if self.explicit else list(self.lanes.handoffs),
            invocations=tuple(self.inv),
            span_count=len(self.nodes),
            llm_calls=self.llm_calls,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=math.fsum(self.costs),
            complete=self.complete,
            paused=self.paused,
            resumed_from=meta["resumed_from"][1] if "resumed_from" in meta else None,
            conversation_id=meta["conversation_id"][1] if "conversation_id" in meta else None,
            resumed=self.resumed or "resumed_from" in meta,
            error=None if self.root is None else self._failure(self.root),
            interrupted=None if self.root is None else self.root.interrupted,
            visits=self.lanes.visits(),
            generation=self.generation,
            visits_changed_from=changed_from,
        )
        self.generation += 1
        self.graph = graph
        self.dirty = False
        self.dirty_from = len(self.inv)
        return graph

    def _failure(self, root: GraphNode) -> str | None:
        step = self.failed_step
        return run_failure(root, step, inner_tool(step, self.failed_tools, self.nodes))

    def _update_handoffs(self, start: int) -> int:
        """Recompute handoffs and visits from invocation ``start`` on.

        Returns:
            The first visit that may differ from the previous snapshot's.
        """
        inv = self.inv
        nodes = self.nodes
        # Explicit handoffs, in the order of the receiving spans.
        if start >= len(inv):  # no new invocation: handoffs and visits are unchanged
            return len(self.lanes)
        keep = bisect.bisect_left(
            self.explicit, self.inv_keys[start], key=lambda e: (e.start_ns, e.span_id)
        )
        del self.explicit[keep:]
        for invocation in inv[start:]:
            node = nodes[invocation.span_id]
            handoff = node.handoff
            if handoff is not None:
                self.explicit.append(
                    HandoffEdge(
                        seq=len(self.explicit),
                        source=handoff.source,
                        target=handoff.target,
                        span_id=invocation.span_id,
                        start_ns=invocation.start_ns,
                        kind=handoff.kind,
                        context_digest=handoff.digest,
                        context_size=handoff.size,
                        checkpoint_id=node.checkpoint_id,
                    )
                )
        # Visits and inferred handoffs: the lanes from `start` on.
        return self.lanes.sweep(inv, start)


_LEFT_IDS = 100_000
"""Ids of traces that left memory remembered to recognise late spans (≈ 10 MB)."""


class GraphBuilder:
    """Keeps the live graph of every recent trace.

    A trace leaves memory in one of three ways, each counted:

    - **retired**: complete (its root span arrived) and untouched for ``complete_linger_seconds``
      (room for late spans);
    - **expired**: never completed and untouched for ``idle_timeout_seconds``;
    - **evicted**: the least recently updated trace, when adding a new one would exceed
      ``max_traces``.

    Spans that arrive for a trace after it left memory are *late*: they are counted and not
    graphed here (a graph built from them alone would replace the stored one with a fragment);
    :meth:`take_late_traces` names their traces, so that the pipeline rebuilds those graphs from
    the store (:class:`~agentmesh.collector.late_graphs.LateGraphs`). The last 100,000 traces
    that left are remembered.

    Retirement and expiry happen in :meth:`expire`, which the pipeline calls once per cycle.

    Args:
        max_traces: Traces kept in memory.
        complete_linger_seconds: How long a complete trace stays for late spans.
        idle_timeout_seconds: How long an incomplete trace may go without new spans.
        clock: Monotonic seconds (tests pass their own).

    Raises:
        CollectorError: A bound is out of range.

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

    def __init__(
        self,
        max_traces: int = 10_000,
        *,
        complete_linger_seconds: float = 30.0,
        idle_timeout_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_traces < 1:
            raise CollectorError(f"max_traces must be at least 1, got {max_traces}")
        if complete_linger_seconds < 0 or idle_timeout_seconds < complete_linger_seconds:
            raise CollectorError(
                "need 0 <= complete_linger_seconds <= idle_timeout_seconds, got "
                f"{complete_linger_seconds} and {idle_timeout_seconds}"
            )
        self._max_traces = max_traces
        self._linger = complete_linger_seconds
        self._idle = idle_timeout_seconds
        self._clock = clock
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._left_ids: OrderedDict[str, None] = OrderedDict()
        self._left_since: list[str] = []
        self._late_traces: set[str] = set()
        self._evicted = 0
        self._retired = 0
        self._expired = 0
        self._late_spans = 0
        self._runs_finished = 0
        self._runs_failed = 0
        self._by_workflow: dict[str, list[int]] = {}
        self._workflow_names = 0

    @property
    def runs_finished(self) -> int:
        """How many runs' root spans arrived (each run counted once, failed or not)."""
        return self._runs_finished

    @property
    def runs_failed(self) -> int:
        """How many of those runs failed: their root span ended in error."""
        return self._runs_failed

    @property
    def runs_by_workflow(self) -> dict[str, tuple[int, int]]:
        """Runs finished and failed, by the workflow each run's spans named when it ended.

        A run whose spans named no workflow by then counts under :data:`NO_WORKFLOW`; past
        :data:`MAX_WORKFLOW_LABELS` distinct names, further ones count under
        :data:`OTHER_WORKFLOWS` (a bound on the metric's series).

        Returns:
            ``{workflow: (finished, failed)}``, a copy.
        """
        return {name: (counts[0], counts[1]) for name, counts in self._by_workflow.items()}

    def _count_run(self, trace: _Trace) -> None:
        failed = trace.root is not None and trace.root.error
        self._runs_finished += 1
        self._runs_failed += failed
        meta = trace.meta.get("workflow_name")
        name = str(meta[1]) if meta is not None else NO_WORKFLOW
        by_workflow = self._by_workflow
        counts = by_workflow.get(name)
        if counts is None:
            if meta is not None:  # a new name: counted apart while there is room
                if self._workflow_names < MAX_WORKFLOW_LABELS:
                    self._workflow_names += 1
                else:
                    name = OTHER_WORKFLOWS
            counts = by_workflow.setdefault(name, [0, 0])
        counts[0] += 1
        counts[1] += failed

    @property
    def retired(self) -> int:
        """How many complete traces left memory after their linger time."""
        return self._retired

    @property
    def expired(self) -> int:
        """How many incomplete traces left memory after the idle timeout."""
        return self._expired

    @property
    def late_spans(self) -> int:
        """Spans that arrived for a trace after it left memory (not graphed here)."""
        return self._late_spans

    def take_late_traces(self) -> set[str]:
        """The traces that received late spans since the last call.

        A trace evicted by :meth:`add_nodes` right after that same call changed it counts too:
        its new spans never made it into a graph.

        Returns:
            Their ids (the caller rebuilds their graphs once those spans are stored).
        """
        late, self._late_traces = self._late_traces, set()
        return late

    def take_left_traces(self) -> list[str]:
        """The traces that left memory (retired, expired or evicted) since the last call.

        Returns:
            Their ids, oldest first (the caller stores a graph it still holds for them).
        """
        left, self._left_since = self._left_since, []
        return left

    def expire(self) -> list[str]:
        """Retire complete traces past their linger time and expire idle incomplete ones.

        Cheap to call often: it scans from the least recently updated trace and stops at the
        first one younger than the linger time.

        Returns:
            The trace ids that left memory.
        """
        now = self._clock()
        gone: list[str] = []
        traces = self._traces
        for trace_id, trace in traces.items():
            age = now - trace.touched
            if age < self._linger:
                break
            if trace.complete:
                self._retired += 1
            elif age >= self._idle:
                self._expired += 1
            else:
                continue  # a long run still in progress
            self._remember_left(trace_id)
            gone.append(trace_id)
        for trace_id in gone:
            del traces[trace_id]
        return gone

    def _remember_left(self, trace_id: str) -> None:
        left = self._left_ids
        left[trace_id] = None
        while len(left) > _LEFT_IDS:
            left.popitem(last=False)
        since = self._left_since
        since.append(trace_id)
        if len(since) > 2 * _LEFT_IDS:  # nobody takes them: keep the newest
            del since[:_LEFT_IDS]

    def merge_stored(self, nodes: Iterable[GraphNode]) -> set[str]:
        """Add to held traces the spans of theirs that were stored before this builder met them.

        A run whose first spans went to the collector before a restart, or to another one
        sharing the store, reaches this builder in part; with its stored spans merged in, its
        graph is the whole run's. Spans already held change nothing, spans of traces not held
        (they left memory since: late) are ignored, and a run whose root span is among the
        stored ones is not counted as finished again (the collector it reached counted it).

        Args:
            nodes: The stored spans, as graph nodes.

        Returns:
            The held traces whose graph changed.
        """
        traces = self._traces
        changed: set[str] = set()
        for node in nodes:
            trace = traces.get(node.trace_id)
            if trace is not None and node.started is None and trace.add(node):
                changed.add(node.trace_id)
        for trace_id in changed:
            trace = traces[trace_id]
            trace.ended = trace.ended or trace.complete
        return changed

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
        return self.add_nodes([graph_node(span) for span in spans])

    def add_nodes(self, nodes: Iterable[GraphNode]) -> set[str]:
        """Add spans already reduced to graph nodes (see :func:`graph_node`).

        Args:
            nodes: The nodes, of any traces, in any order.

        Returns:
            The trace ids whose graph changed and is still held.
        """
        by_trace: dict[str, list[GraphNode]] = {}
        left = self._left_ids
        for node in nodes:
            if node.started is not None:  # a start marker: not a step of the graph
                continue
            if left and node.trace_id in left:
                self._late_spans += 1
                if len(self._late_traces) < _LEFT_IDS:
                    self._late_traces.add(node.trace_id)
                continue
            group = by_trace.get(node.trace_id)
            if group is None:
                by_trace[node.trace_id] = [node]
            else:
                group.append(node)
        changed: set[str] = set()
        for trace_id, group in by_trace.items():
            trace = self._touch(trace_id)
            dirty = trace.graph is None
            add = trace.add
            for node in group:
                dirty = add(node) or dirty
            if dirty:
                changed.add(trace_id)
                if trace.complete and not trace.ended:  # its root span arrived: count it once
                    trace.ended = True
                    self._count_run(trace)
        traces = self._traces
        held = {trace_id for trace_id in changed if trace_id in traces}
        if len(held) < len(changed):  # evicted by later traces of the same call: rebuild them
            self._late_traces.update(changed - held)
        return held

    def get(self, trace_id: str) -> RunGraph | None:
        """Return the current graph of a trace.

        Args:
            trace_id: The trace (32 hex digits).

        Returns:
            The graph, or ``None`` when the trace is unknown or was evicted.
        """
        trace = self._traces.get(trace_id)
        return None if trace is None else trace.snapshot()

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
            trace.touched = self._clock()
            return trace
        while len(self._traces) >= self._max_traces:
            evicted, _ = self._traces.popitem(last=False)
            self._remember_left(evicted)
            self._evicted += 1
        trace = _Trace(trace_id)
        trace.touched = self._clock()
        self._traces[trace_id] = trace
        return trace
