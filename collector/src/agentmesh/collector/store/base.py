"""The storage interface of the collector, and the rows it reads back.

Every backend implements :class:`SpanStore`; one contract test suite runs against each. All
writes are idempotent: a re-delivered span is stored once, a graph write replaces that trace's
graph, a detection is stored once by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, Self

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.run_graph import AgentNode, HandoffEdge, RunGraph
from agentmesh.collector.model import SpanRecord

__all__ = [
    "MARKER_NAME",
    "RUN_STATES",
    "CostGroup",
    "CostRow",
    "Pruned",
    "RunStateName",
    "RunSummary",
    "SpanStore",
    "StoredGraph",
    "run_state",
]

MARKER_NAME: Final = "agentmesh.step.start"
"""The name of a start marker: the zero-length span exported when a step starts (carrying
``agentmesh.step.started``), which is no part of a run's graph."""

RunStateName = Literal["live", "paused", "resumed", "failed", "interrupted", "complete"]
"""A run's state as run lists name it: ``paused`` (it stopped to wait for input and no stored
run continues it: waiting), ``resumed`` (it paused, failed or was interrupted, and a later run
continued it), ``failed`` (its root span ended in error and no stored run continues it),
``interrupted`` (its root span was interrupted: Ctrl-C, a cancelled task, ``SystemExit``; not
a failure, and no stored run continues it), else ``complete`` (its root span ended), else
``live``."""
RUN_STATES: tuple[RunStateName, ...] = (
    "live",
    "paused",
    "resumed",
    "failed",
    "interrupted",
    "complete",
)
"""Every :data:`RunStateName`."""


def run_state(
    *, complete: bool, paused: bool, failed: bool, resumptions: int, interrupted: bool = False
) -> RunStateName:
    """Name a run's state (:data:`RunStateName`) from what is stored of it.

    Args:
        complete: Whether its root span arrived.
        paused: Whether it stopped to wait for input.
        failed: Whether its root span ended in error.
        resumptions: How many stored runs continue it.
        interrupted: Whether its root span was interrupted (and did not fail).

    Returns:
        The state.

    Example:
        >>> run_state(complete=True, paused=False, failed=True, resumptions=0)
        'failed'
        >>> run_state(complete=True, paused=False, failed=True, resumptions=1)
        'resumed'
    """
    if paused or failed or interrupted:  # not finished, unless a run continued it
        if resumptions:
            return "resumed"
        return "paused" if paused else "failed" if failed else "interrupted"
    return "complete" if complete else "live"


CostGroup = Literal["agent", "model"]
"""What :meth:`SpanStore.costs` groups LLM calls by."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run, as listed by :meth:`SpanStore.runs`.

    Attributes:
        trace_id: The trace.
        run_id: ``agentmesh.run.id`` (or the trace id).
        workflow_name: ``gen_ai.workflow.name``, when known.
        service_name: ``service.name`` of the run's root process, when known.
        start_ns: Earliest span start.
        end_ns: Latest span end.
        agents: Names of its agents, sorted.
        handoffs: Number of handoffs.
        span_count: Spans in the run's graph.
        llm_calls: LLM calls.
        input_tokens: Their input tokens.
        output_tokens: Their output tokens.
        cost_usd: Their cost in US dollars.
        complete: Whether the root span has arrived.
        detections: Detections stored for the trace.
        paused: Whether the run stopped to wait for input (``agentmesh.run.paused``): a
            complete run that is paused is not finished.
        resumed_from: The run this one continues, when it is a resumed run.
        conversation_id: The conversation the run belongs to (``gen_ai.conversation.id``).
        resumed: Whether the run continues its conversation where the previous run left off.
        resumptions: How many stored runs continue this one (their ``resumed_from`` is its
            run id): a paused run with none is still waiting for input.
        error: Why the run failed (its root span ended in error), else ``None``: see
            :attr:`RunGraph.error <agentmesh.collector.graph.run_graph.RunGraph.error>`.
        interrupted: What interrupted the run (its root span: ``KeyboardInterrupt``,
            ``CancelledError``, ``SystemExit``), else ``None``.
    """

    trace_id: str
    run_id: str
    workflow_name: str | None
    service_name: str | None
    start_ns: int
    end_ns: int
    agents: tuple[str, ...]
    handoffs: int
    span_count: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    complete: bool
    detections: int
    paused: bool = False
    resumed_from: str | None = None
    conversation_id: str | None = None
    resumed: bool = False
    resumptions: int = 0
    error: str | None = None
    interrupted: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the run failed: its root span ended in error."""
        return self.error is not None

    @property
    def state(self) -> RunStateName:
        """The run's state, as run lists name it (:data:`RunStateName`)."""
        return run_state(
            complete=self.complete,
            paused=self.paused,
            failed=self.failed,
            resumptions=self.resumptions,
            interrupted=self.interrupted is not None,
        )


@dataclass(frozen=True, slots=True)
class Pruned:
    """What pruning deleted (:meth:`SpanStore.prune`).

    Attributes:
        runs: Runs deleted: each trace's graph rows (run, agents, handoffs).
        spans: Spans deleted.
        detections: Detections deleted.
    """

    runs: int = 0
    spans: int = 0
    detections: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.runs + other.runs,
            self.spans + other.spans,
            self.detections + other.detections,
        )

    def __bool__(self) -> bool:
        return bool(self.runs or self.spans or self.detections)


@dataclass(frozen=True, slots=True)
class StoredGraph:
    """A run's graph as stored.

    Attributes:
        run: The run's summary.
        agents: Its agents, by name.
        handoffs: Its handoffs, by sequence number.
    """

    run: RunSummary
    agents: list[AgentNode]
    handoffs: list[HandoffEdge]


@dataclass(frozen=True, slots=True)
class CostRow:
    """LLM usage of one agent or one model over a time window, as :meth:`SpanStore.costs` sums it.

    Attributes:
        key: The agent's name, or the model (``gen_ai.response.model``, else
            ``gen_ai.request.model``); ``None`` for the calls made outside any agent (by
            agent), or whose model was not recorded (by model).
        llm_calls: LLM calls.
        input_tokens: Their input tokens.
        output_tokens: Their output tokens.
        cost_usd: Their cost in US dollars.
    """

    key: str | None
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class SpanStore(Protocol):
    """Async storage of spans, run graphs and detections.

    Methods raise :class:`~agentmesh.core.errors.StoreError` when the backend fails or the store
    is closed. Time windows are half-open, ``since_ns <= start < until_ns``, on the run's start
    (its earliest span); a bound left ``None`` is open.
    """

    async def open(self) -> Self:
        """Connect (and create or migrate the schema) now rather than on first use.

        Opening an open store does nothing.

        Returns:
            The store.
        """
        ...

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        """Store spans; spans already stored (same trace and span id) are skipped.

        Args:
            spans: The spans.

        Returns:
            How many were new.
        """
        ...

    async def write_graph(self, graph: RunGraph) -> None:
        """Store a run's graph, replacing what was stored for that trace.

        Args:
            graph: The graph.
        """
        ...

    async def write_detection(self, detection: Detection) -> bool:
        """Store a detection unless one with its id is stored already.

        Args:
            detection: The detection.

        Returns:
            Whether it was new.
        """
        ...

    async def count_spans(self) -> int:
        """Count every stored span.

        Returns:
            The count.
        """
        ...

    async def spans(self, trace_id: str, *, limit: int | None = None) -> list[SpanRecord]:
        """Read a trace's spans.

        Args:
            trace_id: The trace.
            limit: Only the first ``limit`` of them; all when ``None``.

        Returns:
            Its spans by start time (then span id); empty when unknown.
        """
        ...

    async def spans_of(self, trace_ids: Sequence[str]) -> dict[str, list[SpanRecord]]:
        """Read several traces' spans in one query (exports read thousands of runs).

        Args:
            trace_ids: The traces.

        Returns:
            Each trace's spans by start time (then span id); a trace with no span is absent.
        """
        ...

    async def traces_with_spans(self, trace_ids: Sequence[str]) -> set[str]:
        """Say which of these traces have spans stored, start markers aside; cheaply.

        The pipeline asks it once per store write about the runs it graphed for the first
        time, before storing their spans: stored spans mean the run began elsewhere (the
        collector before a restart, another collector sharing the store) and its graph must
        be completed from the store. Start markers (:data:`MARKER_NAME`) do not count: they
        are no part of a graph, and a run's markers often arrive before its first step ends.
        Memory and PostgreSQL (one probe of the spans' key per trace) answer exactly. DuckDB,
        whose file has one writing process, answers from memory: the traces of the file's
        last rows when first asked (``PREVIOUS_SPANS`` rows, the newest ``PREVIOUS_TRACES``
        traces; read once) and the last ``PREVIOUS_TRACES`` traces it began to store since; a
        trace whose spans are all older than both is not reported.

        Args:
            trace_ids: The traces.

        Returns:
            Those with at least one stored span that is not a start marker.
        """
        ...

    async def runs(
        self,
        limit: int | None = None,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        state: RunStateName | None = None,
        conversation_id: str | None = None,
        after: tuple[int, str] | None = None,
        workflow_name: str | None = None,
    ) -> list[RunSummary]:
        """List runs, latest start first (then by trace id).

        Args:
            limit: Most runs returned; all when ``None``.
            since_ns: Only runs that started at or after this time.
            until_ns: Only runs that started before this time.
            state: Only runs in this state (``paused``: the runs waiting for input, paused
                and not resumed by a stored run).
            conversation_id: Only the runs of this conversation (exactly).
            after: Only the runs listed after this ``(start_ns, trace_id)``: the last run of a
                page, for the next page (exact when several runs started in one nanosecond).
            workflow_name: Only the runs of this workflow (``gen_ai.workflow.name``, exactly).

        Returns:
            The run summaries.
        """
        ...

    async def find_runs(self, prefix: str, *, limit: int) -> list[RunSummary]:
        """Find runs by the start of their run id (any case) or trace id.

        Args:
            prefix: What the run id (compared in lower case) or the trace id starts with, in
                lower case.
            limit: Most runs returned; runs whose run id or trace id is ``prefix`` itself come
                first, then the latest started.

        Returns:
            The matching runs' summaries, latest start first.
        """
        ...

    async def resumptions(self, run_id: str, *, limit: int) -> list[RunSummary]:
        """Find the runs that continue a run (their ``resumed_from`` is its run id).

        Args:
            run_id: The run they continue (exactly).
            limit: Most runs returned; the latest started first.

        Returns:
            Their summaries, latest start first.
        """
        ...

    async def previous_run(self, conversation_id: str, *, before_ns: int) -> RunSummary | None:
        """Find the run of a conversation that started last before a time.

        The collector links a resumed run that does not name the run it continues (its pause
        happened in another process) to this run.

        Args:
            conversation_id: The conversation (``gen_ai.conversation.id``), exactly.
            before_ns: Only runs that started strictly before this (Unix ns).

        Returns:
            Its summary, or ``None`` when the conversation has no run before then.
        """
        ...

    async def costs(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        group_by: CostGroup = "agent",
    ) -> list[CostRow]:
        """Sum the LLM calls of the runs that started in a time window, by agent or by model.

        By agent, the sums come from the stored graphs, and the calls made outside any agent
        are one row keyed ``None`` (when there are some); by model, from the stored ``chat``
        spans of those runs (``None``: no model recorded). Either way the rows add up to the
        runs' totals.

        Args:
            since_ns: Only runs that started at or after this time.
            until_ns: Only runs that started before this time.
            group_by: ``agent`` or ``model``.

        Returns:
            One row per agent or model, highest cost first (then by key, ``None`` last).
        """
        ...

    async def graph(self, trace_id: str) -> StoredGraph | None:
        """Read a run's graph.

        Args:
            trace_id: The trace.

        Returns:
            The stored graph, or ``None`` when none was written.
        """
        ...

    async def graphs_of(self, trace_ids: Sequence[str]) -> dict[str, StoredGraph]:
        """Read several runs' graphs in one read (exports read thousands of runs).

        Args:
            trace_ids: The traces.

        Returns:
            Each trace's graph, as :meth:`graph` reads it; a trace without one is absent.
        """
        ...

    async def detections(
        self,
        trace_id: str | None = None,
        *,
        since_ns: int | None = None,
        detection_type: str | None = None,
        limit: int | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[Detection]:
        """Read detections, oldest first (then by id).

        Args:
            trace_id: Only this trace's; every trace's when ``None``.
            since_ns: Only those detected at or after this time (Unix nanoseconds).
            detection_type: Only those of this type (``handoff_loop``...).
            limit: Only the newest ``limit`` of them (still returned oldest first).
            before: Only those ordered before this ``(detected_at_ns, id)``: the oldest of a
                page, for the page before it (``(ns, "")``: every detection before ``ns``).

        Returns:
            The detections.
        """
        ...

    async def prune(self, before_ns: int, *, limit: int) -> Pruned:
        """Delete what ended before a time: whole runs, and the leftovers of traces with no run.

        A run whose newest graph ended before ``before_ns`` (a paused run: when it paused) is
        deleted with its spans, graph rows and detections: a run is never kept in part. Spans
        and detections of traces that have no run graph (the collector stopped before
        graphing them) go when they ended (were detected) before ``before_ns``.

        Args:
            before_ns: The cut-off (Unix nanoseconds).
            limit: Most runs deleted by this call, the earliest started first: call again
                while it deletes ``limit`` runs (each call is one transaction, so writes
                interleave). The leftovers of traces with no run are deleted by the call that
                deletes fewer runs than ``limit``.

        Returns:
            What was deleted.
        """
        ...

    async def close(self) -> None:
        """Release the backend; later calls raise ``StoreError``. Closing twice is harmless."""
        ...
