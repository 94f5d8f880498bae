"""The hot shared state of the collectors: what a live dashboard reads without a database.

:class:`HotState` is the interface (Redis for several collectors, memory for tests); a
:class:`RunState` is the latest state of one run, made from its graph by
:meth:`RunState.from_graph`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.run_graph import RunGraph

__all__ = ["DetectionSubscription", "HotState", "RepublishesRuns", "RunState", "RunStatus"]

RunStatus = Literal["running", "complete", "paused", "failed", "interrupted"]
"""``complete`` once the run's root span has arrived; ``failed`` when that span ended in error;
``interrupted`` when it was stopped without failing (Ctrl-C, a cancelled task);
``paused`` once a span of the run says it stopped to wait for input (``agentmesh.run.paused``),
complete or not."""


def _status(graph: RunGraph) -> RunStatus:
    if graph.paused:
        return "paused"
    if graph.failed:
        return "failed"
    if graph.interrupted is not None:
        return "interrupted"
    return "complete" if graph.complete else "running"


@dataclass(frozen=True, slots=True)
class RunState:
    """The latest state of one run.

    Attributes:
        trace_id: The trace.
        run_id: ``agentmesh.run.id`` (or the trace id).
        workflow_name: ``gen_ai.workflow.name``, when known.
        status: ``running``, ``complete``, ``failed``, ``interrupted`` or ``paused``.
        agents: Its agents' names, sorted.
        handoffs: Handoffs so far.
        span_count: Spans so far.
        llm_calls: LLM calls so far.
        input_tokens: Their input tokens.
        output_tokens: Their output tokens.
        cost_usd: Their cost in US dollars.
        last_span_ns: End of its latest span.
        seen_ns: When a collector last updated it (wall clock), the live index's order.
        conversation_id: The conversation it belongs to (``gen_ai.conversation.id``: the
            LangGraph thread, the CrewAI flow state), when known.
        resumed_from: The run it continues, when it resumes one.
    """

    trace_id: str
    run_id: str
    workflow_name: str | None
    status: RunStatus
    agents: tuple[str, ...]
    handoffs: int
    span_count: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    last_span_ns: int
    seen_ns: int
    conversation_id: str | None = None
    resumed_from: str | None = None

    @classmethod
    def from_graph(cls, graph: RunGraph, seen_ns: int | None = None) -> RunState:
        """Summarise a run's graph.

        Args:
            graph: The graph.
            seen_ns: When it was updated; now by default.

        Returns:
            The state.

        Example:
            >>> from agentmesh.collector.graph.run_graph import RunGraph
            >>> state = RunState.from_graph(RunGraph("t" * 32, "run-1", complete=True), 5)
            >>> state.status, state.seen_ns
            ('complete', 5)
        """
        return cls(
            trace_id=graph.trace_id,
            run_id=graph.run_id,
            workflow_name=graph.workflow_name,
            status=_status(graph),
            agents=tuple(sorted(graph.agents)),
            handoffs=len(graph.handoffs),
            span_count=graph.span_count,
            llm_calls=graph.llm_calls,
            input_tokens=graph.input_tokens,
            output_tokens=graph.output_tokens,
            cost_usd=graph.cost_usd,
            last_span_ns=graph.end_ns,
            seen_ns=time.time_ns() if seen_ns is None else seen_ns,
            conversation_id=graph.conversation_id,
            resumed_from=graph.resumed_from,
        )


class DetectionSubscription(Protocol):
    """Detections published after the subscription was entered, as an async iterator.

    Use it as ``async with hot_state.subscribe_detections() as detections: async for d in
    detections: …``; leaving unsubscribes.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Detection]: ...


class HotState(Protocol):
    """Live run index, latest state per run, and detection pub/sub, shared by collectors.

    Methods raise :class:`~agentmesh.core.errors.StoreError` when the backend fails; wrap the
    backend in :class:`~agentmesh.collector.hot_state.fail_open.FailOpenHotState` where a
    failure must not stop the caller.
    """

    async def open(self) -> Self:
        """Connect (and check the backend answers).

        Returns:
            The hot state.
        """
        ...

    async def update_run(self, state: RunState) -> None:
        """Record a run's latest state and move it to the top of the live index.

        A complete run is kept for the finished-run time to live, a running one for the idle
        time to live after its last update.

        Args:
            state: The state.
        """
        ...

    async def run(self, trace_id: str) -> RunState | None:
        """Read a run's latest state.

        Args:
            trace_id: The trace.

        Returns:
            The state, or ``None`` when unknown or expired.
        """
        ...

    async def live_runs(self, limit: int | None = None) -> list[RunState]:
        """List the runs in the live index, most recently updated first.

        Args:
            limit: Most runs returned; all when ``None``.

        Returns:
            Their states.
        """
        ...

    async def publish_detection(self, detection: Detection) -> int:
        """Publish a detection to every subscriber (of every collector).

        Args:
            detection: The detection.

        Returns:
            How many subscribers received it.
        """
        ...

    def subscribe_detections(self) -> DetectionSubscription:
        """Subscribe to detections published from now on.

        Returns:
            The subscription (enter it to start receiving).
        """
        ...

    async def close(self) -> None:
        """Release the connections; closing twice is harmless."""
        ...


@runtime_checkable
class RepublishesRuns(Protocol):
    """A hot state that can write a run state late, as if it had been written on time.

    :class:`~agentmesh.collector.hot_state.fail_open.FailOpenHotState` re-publishes through
    it the states it kept while the backend failed (and through ``update_run`` otherwise).
    """

    async def republish_run(self, state: RunState, *, age_seconds: float) -> None:
        """Record a run state given ``age_seconds`` ago, whose update could not be made then.

        It is kept for what is left of its time to live; one that would have expired
        meanwhile removes the run, as its time to live would have.

        Args:
            state: The state.
            age_seconds: How long ago the state was given.
        """
        ...
