"""An in-memory :class:`~agentmesh.collector.store.base.SpanStore`, for tests and demos."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import TracebackType
from typing import ClassVar, Self

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.store.base import (
    MARKER_NAME,
    CostGroup,
    CostRow,
    Pruned,
    RunStateName,
    RunSummary,
    StoredGraph,
    run_state,
)
from agentmesh.collector.store.usage import (
    chat_usage,
    check_group_by,
    check_limit,
    check_state,
    in_window,
    sort_cost_rows,
)
from agentmesh.core.errors import StoreError

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps spans, graphs and detections in dictionaries; behaves like the DuckDB store.

    Example:
        >>> import asyncio
        >>> from agentmesh.collector.testing import SpanFactory
        >>> f = SpanFactory()
        >>> span = f.workflow("w")
        >>> async def main() -> tuple[int, int]:
        ...     store = MemoryStore()
        ...     first = await store.write_spans([span])
        ...     again = await store.write_spans([span])
        ...     return first, again
        >>> asyncio.run(main())
        (1, 0)
    """

    in_process: ClassVar[bool] = True
    """The data lives in the collector's process: the collector never probes the store (a
    refused write, say on a full disk, is found by the write itself)."""

    def __init__(self) -> None:
        self._spans: dict[str, dict[str, SpanRecord]] = {}
        self._graphs: dict[str, RunGraph] = {}
        self._detections: dict[str, Detection] = {}
        self._closed = False

    async def open(self) -> Self:
        """Check the store is not closed (there is nothing to connect to).

        Returns:
            The store.
        """
        self._check()
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        """Store spans; spans already stored (same trace and span id) are skipped.

        Args:
            spans: The spans.

        Returns:
            How many were new.
        """
        self._check()
        new = 0
        for span in spans:
            trace = self._spans.setdefault(span.trace_id, {})
            if span.span_id not in trace:
                trace[span.span_id] = span
                new += 1
        return new

    async def write_graph(self, graph: RunGraph) -> None:
        """Store a run's graph, replacing what was stored for that trace.

        Args:
            graph: The graph.
        """
        self._check()
        self._graphs[graph.trace_id] = graph

    async def write_detection(self, detection: Detection) -> bool:
        """Store a detection unless one with its id is stored already.

        Args:
            detection: The detection.

        Returns:
            Whether it was new.
        """
        self._check()
        if detection.id in self._detections:
            return False
        self._detections[detection.id] = detection
        return True

    async def count_spans(self) -> int:
        """Count every stored span.

        Returns:
            The count.
        """
        self._check()
        return sum(len(trace) for trace in self._spans.values())

    async def spans(self, trace_id: str, *, limit: int | None = None) -> list[SpanRecord]:
        """Read a trace's spans.

        Args:
            trace_id: The trace.
            limit: Only the first ``limit`` of them; all when ``None``.

        Returns:
            Its spans by start time (then span id); empty when unknown.
        """
        self._check()
        trace = self._spans.get(trace_id, {})
        ordered = sorted(trace.values(), key=lambda span: (span.start_ns, span.span_id))
        return ordered if limit is None else ordered[:limit]

    async def spans_of(self, trace_ids: Sequence[str]) -> dict[str, list[SpanRecord]]:
        """Read several traces' spans.

        Args:
            trace_ids: The traces.

        Returns:
            Each trace's spans by start time (then span id); a trace with no span is absent.
        """
        self._check()
        found: dict[str, list[SpanRecord]] = {}
        for trace_id in dict.fromkeys(trace_ids):
            trace = self._spans.get(trace_id)
            if trace:
                found[trace_id] = sorted(trace.values(), key=lambda s: (s.start_ns, s.span_id))
        return found

    async def traces_with_spans(self, trace_ids: Sequence[str]) -> set[str]:
        """Say which of these traces have spans stored, start markers aside.

        Args:
            trace_ids: The traces.

        Returns:
            Those with at least one stored span that is not a start marker.
        """
        self._check()
        spans = self._spans
        return {
            trace_id
            for trace_id in trace_ids
            if any(span.name != MARKER_NAME for span in spans.get(trace_id, {}).values())
        }

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
            state: Only runs in this state.
            conversation_id: Only the runs of this conversation (exactly).
            after: Only the runs listed after this ``(start_ns, trace_id)``.
            workflow_name: Only the runs of this workflow (exactly).

        Returns:
            The run summaries.

        Raises:
            StoreError: ``limit`` is below 1, or ``state`` is not a run state.
        """
        self._check()
        check_limit(limit)
        check_state(state)
        graphs = [
            g
            for g in self._window(since_ns, until_ns)
            if (conversation_id is None or g.conversation_id == conversation_id)
            and (workflow_name is None or g.workflow_name == workflow_name)
            and (state is None or self._state(g) == state)
            and (after is None or (-g.start_ns, g.trace_id) > (-after[0], after[1]))
        ]
        graphs.sort(key=lambda g: (-g.start_ns, g.trace_id))
        return [self._summary(graph) for graph in graphs[:limit]]

    async def find_runs(self, prefix: str, *, limit: int) -> list[RunSummary]:
        """Find runs by the start of their run id (any case) or trace id.

        Args:
            prefix: What the run id (compared in lower case) or the trace id starts with, in
                lower case.
            limit: Most runs returned; exact matches first, then the latest started.

        Returns:
            The matching runs' summaries, latest start first.

        Raises:
            StoreError: ``limit`` is below 1.
        """
        self._check()
        check_limit(limit)
        found = [
            summary
            for summary in map(self._summary, self._graphs.values())
            if summary.run_id.lower().startswith(prefix) or summary.trace_id.startswith(prefix)
        ]
        found.sort(key=lambda r: (prefix not in (r.run_id.lower(), r.trace_id), -r.start_ns))
        return sorted(found[:limit], key=lambda r: (-r.start_ns, r.trace_id))

    async def resumptions(self, run_id: str, *, limit: int) -> list[RunSummary]:
        """Find the runs that continue a run.

        Args:
            run_id: The run they continue (exactly).
            limit: Most runs returned; the latest started first.

        Returns:
            Their summaries, latest start first.

        Raises:
            StoreError: ``limit`` is below 1.
        """
        self._check()
        check_limit(limit)
        found = [
            self._summary(graph) for graph in self._graphs.values() if graph.resumed_from == run_id
        ]
        return sorted(found, key=lambda r: (-r.start_ns, r.trace_id))[:limit]

    async def previous_run(self, conversation_id: str, *, before_ns: int) -> RunSummary | None:
        """Find the run of a conversation that started last before a time.

        Args:
            conversation_id: The conversation, exactly.
            before_ns: Only runs that started strictly before this (Unix ns).

        Returns:
            Its summary, or ``None``.
        """
        self._check()
        found = [
            graph
            for graph in self._graphs.values()
            if graph.conversation_id == conversation_id and graph.start_ns < before_ns
        ]
        if not found:
            return None
        return self._summary(max(found, key=lambda g: (g.start_ns, g.trace_id)))

    async def costs(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        group_by: CostGroup = "agent",
    ) -> list[CostRow]:
        """Sum the LLM calls of the runs that started in a time window, by agent or by model.

        Args:
            since_ns: Only runs that started at or after this time.
            until_ns: Only runs that started before this time.
            group_by: ``agent`` (from the stored graphs) or ``model`` (from the chat spans).

        Returns:
            One row per agent or model, highest cost first.

        Raises:
            StoreError: ``group_by`` is neither ``agent`` nor ``model``.
        """
        self._check()
        by_agent = check_group_by(group_by) == "agent"
        counts: dict[str | None, list[int]] = {}
        costs: dict[str | None, list[float]] = {}

        def add(key: str | None, calls: int, tokens_in: int, tokens_out: int, cost: float) -> None:
            total = counts.setdefault(key, [0, 0, 0])
            total[0] += calls
            total[1] += tokens_in
            total[2] += tokens_out
            costs.setdefault(key, []).append(cost)

        for graph in self._window(since_ns, until_ns):
            if by_agent:
                agents = graph.agents.values()
                for agent in agents:
                    add(
                        agent.name,
                        agent.llm_calls,
                        agent.input_tokens,
                        agent.output_tokens,
                        agent.cost_usd,
                    )
                outside = graph.llm_calls - sum(a.llm_calls for a in agents)
                if outside > 0:  # the calls made outside any agent, under no name
                    add(
                        None,
                        outside,
                        graph.input_tokens - sum(a.input_tokens for a in agents),
                        graph.output_tokens - sum(a.output_tokens for a in agents),
                        max(graph.cost_usd - math.fsum(a.cost_usd for a in agents), 0.0),
                    )
                continue
            for span in self._spans.get(graph.trace_id, {}).values():
                usage = chat_usage(span)
                if usage is not None:
                    add(usage.model, 1, usage.input_tokens, usage.output_tokens, usage.cost_usd)
        return sort_cost_rows(
            CostRow(key, total[0], total[1], total[2], math.fsum(costs[key]))
            for key, total in counts.items()
        )

    async def graph(self, trace_id: str) -> StoredGraph | None:
        """Read a run's graph.

        Args:
            trace_id: The trace.

        Returns:
            The stored graph, or ``None`` when none was written.
        """
        self._check()
        graph = self._graphs.get(trace_id)
        if graph is None:
            return None
        return StoredGraph(
            run=self._summary(graph),
            agents=sorted(graph.agents.values(), key=lambda agent: agent.name),
            handoffs=sorted(graph.handoffs, key=lambda edge: edge.seq),
        )

    async def graphs_of(self, trace_ids: Sequence[str]) -> dict[str, StoredGraph]:
        """Read several runs' graphs.

        Args:
            trace_ids: The traces.

        Returns:
            Each trace's graph; a trace without one is absent.
        """
        found: dict[str, StoredGraph] = {}
        for trace_id in dict.fromkeys(trace_ids):
            graph = await self.graph(trace_id)
            if graph is not None:
                found[trace_id] = graph
        self._check()
        return found

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
        self._check()
        found = sorted(
            (
                d
                for d in self._detections.values()
                if (trace_id is None or d.trace_id == trace_id)
                and (since_ns is None or d.detected_at_ns >= since_ns)
                and (detection_type is None or d.type == detection_type)
                and (before is None or (d.detected_at_ns, d.id) < before)
            ),
            key=lambda d: (d.detected_at_ns, d.id),
        )
        return found[-limit:] if limit is not None and limit < len(found) else found

    async def prune(self, before_ns: int, *, limit: int) -> Pruned:
        """Delete what ended before a time: whole runs, and the leftovers of traces with no run.

        Args:
            before_ns: The cut-off (Unix nanoseconds).
            limit: Most runs deleted by this call, the earliest started first; the leftovers
                of traces with no run go in the call that deletes fewer runs than this.

        Returns:
            What was deleted.
        """
        self._check()
        check_limit(limit)
        ended = sorted(
            (g for g in self._graphs.values() if g.end_ns < before_ns),
            key=lambda g: (g.start_ns, g.trace_id),
        )[:limit]
        traces = {g.trace_id for g in ended}
        spans = sum(len(self._spans.pop(trace_id, {})) for trace_id in traces)
        gone = [d.id for d in self._detections.values() if d.trace_id in traces]
        for trace_id in traces:
            del self._graphs[trace_id]
        for detection_id in gone:
            del self._detections[detection_id]
        pruned = Pruned(runs=len(traces), spans=spans, detections=len(gone))
        if len(traces) < limit:  # the last call of a pass
            pruned += self._prune_leftovers(before_ns)
        return pruned

    async def close(self) -> None:
        """Mark the store closed; later calls raise ``StoreError``. The data is kept."""
        self._closed = True

    def _window(self, since_ns: int | None, until_ns: int | None) -> list[RunGraph]:
        return [g for g in self._graphs.values() if in_window(g.start_ns, since_ns, until_ns)]

    def _check(self) -> None:
        if self._closed:
            raise StoreError("the memory store is closed")

    def _prune_leftovers(self, before_ns: int) -> Pruned:
        """Delete spans and detections of traces without a graph, from before ``before_ns``."""
        spans = 0
        for trace_id, kept in list(self._spans.items()):
            if trace_id in self._graphs:
                continue
            old = [span_id for span_id, span in kept.items() if span.end_ns < before_ns]
            for span_id in old:
                del kept[span_id]
            spans += len(old)
            if not kept:
                del self._spans[trace_id]
        gone = [
            d.id
            for d in self._detections.values()
            if d.trace_id not in self._graphs and d.detected_at_ns < before_ns
        ]
        for detection_id in gone:
            del self._detections[detection_id]
        return Pruned(spans=spans, detections=len(gone))

    def _summary(self, graph: RunGraph) -> RunSummary:
        return RunSummary(
            trace_id=graph.trace_id,
            run_id=graph.run_id,
            workflow_name=graph.workflow_name,
            service_name=graph.service_name,
            start_ns=graph.start_ns,
            end_ns=graph.end_ns,
            agents=tuple(sorted(graph.agents)),
            handoffs=len(graph.handoffs),
            span_count=graph.span_count,
            llm_calls=graph.llm_calls,
            input_tokens=graph.input_tokens,
            output_tokens=graph.output_tokens,
            cost_usd=graph.cost_usd,
            complete=graph.complete,
            detections=sum(1 for d in self._detections.values() if d.trace_id == graph.trace_id),
            paused=graph.paused,
            resumed_from=graph.resumed_from,
            conversation_id=graph.conversation_id,
            resumed=graph.resumed,
            resumptions=self._resumptions(graph.run_id),
            error=graph.error,
            interrupted=graph.interrupted,
        )

    def _resumptions(self, run_id: str) -> int:
        return sum(1 for g in self._graphs.values() if g.resumed_from == run_id)

    def _state(self, graph: RunGraph) -> RunStateName:
        return run_state(
            complete=graph.complete,
            paused=graph.paused,
            failed=graph.failed,
            resumptions=self._resumptions(graph.run_id) if not _finished(graph) else 0,
            interrupted=graph.interrupted is not None,
        )


def _finished(graph: RunGraph) -> bool:
    """Whether a run ended as it should: a later run continuing it changes nothing."""
    return not (graph.paused or graph.failed or graph.interrupted is not None)
