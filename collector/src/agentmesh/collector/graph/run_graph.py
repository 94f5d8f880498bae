"""The execution graph of one run: its agents, their handoffs and what their LLM calls cost.

A :class:`RunGraph` is an immutable snapshot; the
:class:`~agentmesh.collector.graph.builder.GraphBuilder` makes a new one each time spans of the
trace arrive.

**Lanes.** Agents of one run may work at the same time (parallel LangGraph branches,
``asyncio.gather`` of two agent steps); their spans, ordered by start, interleave without any
work passing between them. :class:`AgentLanes` therefore reads the invocations as *lanes* of
sequential work: an invocation follows one that **ended before it started** (or the agent
whose span encloses it, which called it), never a concurrent sibling. The agent sequence
(:class:`AgentVisit`) and the inferred handoffs follow the lanes.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "INFERRED",
    "AgentInvocation",
    "AgentLanes",
    "AgentNode",
    "AgentVisit",
    "HandoffEdge",
    "RunGraph",
]

INFERRED: Final = "inferred"
"""``HandoffEdge.kind`` of a handoff deduced from the order of agent spans."""

_CANDIDATES: Final = 32
"""Most ended invocations weighed as the one an invocation follows (bounds a wide fan-in)."""


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
        caller: The span of its nearest ancestor that is an agent span (the agent that called
            it), when there is one and the spans between them have arrived.
        source: The agent its span says handed it the work (``gen_ai.agent.handoff.source``),
            when recorded.
    """

    agent: str
    span_id: str
    start_ns: int
    end_ns: int
    caller: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class AgentVisit:
    """Consecutive invocations of the same agent in one lane, collapsed into one step of the run.

    Attributes:
        agent: The agent's name.
        span_ids: Its spans in this visit, by start time.
        start_ns: When the first of them started.
        lane: The lane (see :class:`AgentLanes`) the visit belongs to, numbered from 0 in the
            order lanes began: visits of one lane ran one after another, visits of different
            lanes may have run at the same time.
        previous: Index, in the run's visits, of the visit before this one in its lane (the
            agent that handed over to this one); -1 for the first visit of a lane.
    """

    agent: str
    span_ids: tuple[str, ...]
    start_ns: int
    lane: int = 0
    previous: int = -1


_UNMADE: Final = AgentVisit("", (), 0)
"""Stands for a visit :meth:`AgentLanes.visits` has not made yet."""


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
        handoffs: Handoffs by the receiving span's start time: the explicit ones when any
            span records one, else the ones inferred from the lanes (an agent handing over to
            the next one in its lane, or to the first one of a lane it started).
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
        visits: The agent sequence of every lane, by start time, when the builder computed
            it (``None`` otherwise: :meth:`agent_sequence` then derives it from
            ``invocations``); not compared.
        generation: How many snapshots of this trace the builder made before this one;
            not compared.
        visits_changed_from: First index of ``visits`` that may differ from the previous
            snapshot's (0 when unknown), so rules can look only at the new tail; visits
            before it keep their agent, lane and previous visit (a lane's last one may gain
            spans); not compared.
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
        """Return the agents in the order they ran, lane by lane, consecutive repeats collapsed.

        Returns:
            One :class:`AgentVisit` per change of agent within a lane, by start time (see
            :class:`AgentLanes`).

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
        invocations = sorted(self.invocations, key=lambda each: (each.start_ns, each.span_id))
        lanes = AgentLanes()
        for invocation in invocations:
            lanes.add(invocation)
        lanes.sweep(invocations, 0)
        return list(lanes.visits())


class AgentLanes:
    """Reads a run's agent invocations as lanes of sequential work, incrementally.

    Invocations are placed in start order. Each one *follows* an invocation that ended before
    it started and that no invocation ended between (an immediate predecessor; at most 32 of
    them are weighed), or its caller (the agent span enclosing it, see
    :attr:`AgentInvocation.caller`). Among those that are still the last of their lane, it
    joins the lane of the first by:

    1. the agent its span says handed it the work (an explicit handoff source);
    2. its caller (delegation);
    3. the same agent as itself (a branch looping on itself goes on in its own lane);
    4. the one that ended last.

    When none is the last of its lane (a fan-out: a sibling took the lane already) or there
    is none (the first invocations, concurrent workers), it begins a new lane. A concurrent
    sibling, which had not ended when the invocation started, is never followed: two workers
    of an ``asyncio.gather`` make two lanes, whose spans interleave by start without any
    handoff between them.

    Within a lane, consecutive invocations of one agent are one :class:`AgentVisit`; an
    inferred :class:`HandoffEdge` joins each visit to the one before it in its lane, and the
    first visit of a lane to the invocation it followed (when another agent ran it).

    The result depends only on the set of invocations, not on the order they were added in.
    Adding one costs O(log n); :meth:`sweep` redoes only the invocations from a given
    position on, undoing what the previous sweep made of them first.

    Attributes:
        handoffs: The inferred handoffs, by the receiving span's start.

    Example:
        >>> a = [AgentInvocation("a", f"a{i}", 10 * i, 10 * i + 9) for i in range(3)]
        >>> b = [AgentInvocation("b", f"b{i}", 10 * i + 1, 10 * i + 10) for i in range(3)]
        >>> invocations = sorted([*a, *b], key=lambda each: each.start_ns)
        >>> lanes = AgentLanes()
        >>> for invocation in invocations:
        ...     lanes.add(invocation)
        >>> lanes.sweep(invocations, 0)
        0
        >>> [(v.agent, v.lane, v.span_ids) for v in lanes.visits()]
        [('a', 0, ('a0', 'a1', 'a2')), ('b', 1, ('b0', 'b1', 'b2'))]
        >>> lanes.handoffs
        []
    """

    __slots__ = (
        "_agents",
        "_before",
        "_end_ids",
        "_ends",
        "_invocation",
        "_lane_count",
        "_lane_of",
        "_lanes",
        "_made",
        "_previous",
        "_spans",
        "_stale",
        "_starts",
        "_swept",
        "_tail",
        "_visit_of",
        "handoffs",
    )

    def __init__(self) -> None:
        # Every invocation by (end, span): ends and spans apart (no tuple per invocation).
        self._ends: list[int] = []
        self._end_ids: list[str] = []
        self._swept: list[str] = []  # the invocations placed, in order
        self._invocation: dict[str, AgentInvocation] = {}  # as placed
        self._lane_of: dict[str, int] = {}
        self._before: dict[str, str | None] = {}  # the previous invocation in its lane
        self._tail: dict[int, str] = {}  # the last invocation of each lane
        self._lane_count = 0
        # Visits, by start: agent, spans, lane, previous visit of the lane, start.
        self._visit_of: dict[str, int] = {}
        self._agents: list[str] = []
        self._spans: list[list[str]] = []
        self._lanes: list[int] = []
        self._previous: list[int] = []
        self._starts: list[int] = []
        self._made: list[AgentVisit] = []
        self._stale: set[int] = set()  # visits whose spans changed since visits() made them
        self.handoffs: list[HandoffEdge] = []

    def __len__(self) -> int:
        return len(self._agents)

    def add(self, invocation: AgentInvocation) -> None:
        """Make an invocation known; :meth:`sweep` from its position then places it.

        Args:
            invocation: The invocation (each span once).
        """
        ends = self._ends
        end_ns = invocation.end_ns
        low = bisect.bisect_left(ends, end_ns)
        position = bisect.bisect_left(
            self._end_ids, invocation.span_id, low, bisect.bisect_right(ends, end_ns, low)
        )
        ends.insert(position, end_ns)
        self._end_ids.insert(position, invocation.span_id)

    def sweep(self, invocations: Sequence[AgentInvocation], start: int) -> int:
        """Place ``invocations[start:]`` again.

        Args:
            invocations: Every invocation added, by ``(start_ns, span_id)``; those before
                ``start`` must be the ones the previous sweeps placed, unchanged.
            start: The first position that is new or changed (a caller that became known).

        Returns:
            The first visit that may differ from before the sweep (see
            :attr:`RunGraph.visits_changed_from`).
        """
        swept = self._swept
        for span_id in reversed(swept[start:]):
            self._undo(span_id)
        del swept[start:]
        changed = len(self._agents)
        if start > 0:  # that invocation's visit may go on with the next one
            changed = min(changed, self._visit_of[swept[start - 1]])
        for invocation in invocations[start:]:
            self._place(invocation)
            swept.append(invocation.span_id)
        return changed

    def visits(self) -> tuple[AgentVisit, ...]:
        """Return the visits, by start.

        Returns:
            One :class:`AgentVisit` per run of one agent within a lane.
        """
        made = self._made
        for index in self._stale:
            made[index] = AgentVisit(
                self._agents[index],
                tuple(self._spans[index]),
                self._starts[index],
                self._lanes[index],
                self._previous[index],
            )
        self._stale.clear()
        return tuple(made)

    def _place(self, invocation: AgentInvocation) -> None:
        span_id = invocation.span_id
        ends = self._ends
        ids = self._end_ids
        placed = self._invocation  # exactly those before it, by (start, span)
        # Immediate predecessors: ended before it started, and nothing ran entirely between.
        candidates: list[AgentInvocation] = []
        latest_start: int | None = None
        j = bisect.bisect_right(ends, invocation.start_ns)
        while j > 0 and len(candidates) < _CANDIDATES:
            j -= 1
            other = placed.get(ids[j])
            if other is None:
                continue  # no longer than a point, and not before it
            if latest_start is not None and ends[j] <= latest_start:
                break  # this one (and every earlier one) ended before another began
            candidates.append(other)
            if latest_start is None or other.start_ns > latest_start:
                latest_start = other.start_ns
        caller = invocation.caller
        if caller is not None and caller in placed and all(c.span_id != caller for c in candidates):
            candidates.append(placed[caller])
        tail = self._tail
        lane_of = self._lane_of
        best: AgentInvocation | None = None
        best_rank: tuple[bool, bool, bool, int, int, str] | None = None
        origin: AgentInvocation | None = None
        origin_rank: tuple[bool, bool, bool, int, int, str] | None = None
        if len(candidates) == 1:  # sequential work: nothing to weigh
            origin = candidates[0]
            if tail[lane_of[origin.span_id]] == origin.span_id:
                best = origin
            candidates = []
        for other in candidates:
            rank = (
                other.agent == invocation.source,
                other.span_id == caller,
                other.agent == invocation.agent,
                other.end_ns,
                other.start_ns,
                other.span_id,
            )
            if origin_rank is None or rank > origin_rank:
                origin, origin_rank = other, rank
            if tail[lane_of[other.span_id]] == other.span_id and (
                best_rank is None or rank > best_rank
            ):
                best, best_rank = other, rank
        placed[span_id] = invocation
        if best is not None:  # go on in its lane
            lane = lane_of[best.span_id]
            lane_of[span_id] = lane
            self._before[span_id] = best.span_id
            tail[lane] = span_id
            visit = self._visit_of[best.span_id]
            if self._agents[visit] == invocation.agent:
                self._spans[visit].append(span_id)
                self._visit_of[span_id] = visit
                self._stale.add(visit)
                return
            self._new_visit(invocation, lane, visit, best.agent)
            return
        lane = self._lane_count  # a lane of its own
        self._lane_count += 1
        lane_of[span_id] = lane
        self._before[span_id] = None
        tail[lane] = span_id
        source = None if origin is None or origin.agent == invocation.agent else origin.agent
        self._new_visit(invocation, lane, -1, source)

    def _new_visit(
        self, invocation: AgentInvocation, lane: int, previous: int, source: str | None
    ) -> None:
        index = len(self._agents)
        self._visit_of[invocation.span_id] = index
        self._agents.append(invocation.agent)
        self._spans.append([invocation.span_id])
        self._lanes.append(lane)
        self._previous.append(previous)
        self._starts.append(invocation.start_ns)
        self._made.append(_UNMADE)  # made by visits()
        self._stale.add(index)
        if source is not None:
            self.handoffs.append(
                HandoffEdge(
                    seq=len(self.handoffs),
                    source=source,
                    target=invocation.agent,
                    span_id=invocation.span_id,
                    start_ns=invocation.start_ns,
                    kind=INFERRED,
                )
            )

    def _undo(self, span_id: str) -> None:
        """Take back the placement of the last invocation placed."""
        del self._invocation[span_id]
        lane = self._lane_of.pop(span_id)
        before = self._before.pop(span_id)
        if before is None:  # it began the newest lane
            del self._tail[lane]
            self._lane_count -= 1
        else:
            self._tail[lane] = before
        visit = self._visit_of.pop(span_id)
        spans = self._spans[visit]
        spans.pop()
        if spans:
            self._stale.add(visit)
            return
        # It began the newest visit (and its handoff, if any).
        del self._agents[visit:], self._spans[visit:], self._lanes[visit:]
        del self._previous[visit:], self._starts[visit:], self._made[visit:]
        self._stale.discard(visit)
        handoffs = self.handoffs
        if handoffs and handoffs[-1].span_id == span_id:
            handoffs.pop()
