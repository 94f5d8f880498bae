"""Spans that arrive after their run left memory: the run's graph is rebuilt from the store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from agentmesh.collector import (
    GraphBuilder,
    MemoryStore,
    PingPongRule,
    Pipeline,
    RunGraph,
    SpanRecord,
)
from agentmesh.collector.hot_state.memory_state import MemoryHotState
from agentmesh.collector.late_graphs import LateGraphs
from agentmesh.collector.testing import ManualClock, SpanFactory
from agentmesh.core import CollectorError, StoreError, StoreUnavailableError


class GraphLog(MemoryStore):
    """Records each stored graph as (trace id, agents)."""

    def __init__(self) -> None:
        super().__init__()
        self.graphs: list[tuple[str, tuple[str, ...]]] = []

    async def write_graph(self, graph: RunGraph) -> None:
        self.graphs.append((graph.trace_id, tuple(sorted(graph.agents))))
        await super().write_graph(graph)


async def _stored_agents(store: MemoryStore, trace_id: str) -> list[str]:
    stored = await store.graph(trace_id)
    assert stored is not None
    return list(stored.run.agents)


async def test_a_late_span_of_a_retired_run_is_folded_into_its_stored_graph() -> None:
    clock = ManualClock(1000.0)
    builder = GraphBuilder(complete_linger_seconds=30, clock=clock)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-late")
    planner = f.agent("planner", parent=root)
    store = GraphLog()
    hot = MemoryHotState()
    async with Pipeline(
        store, builder=builder, hot_state=hot, late_graph_delay_seconds=0
    ) as pipeline:
        assert pipeline.offer([planner, f.chat(parent=planner, input_tokens=10), root])
        await pipeline.drain()
        assert await _stored_agents(store, f.trace_id) == ["planner"]
        clock.now += 31  # the complete run leaves memory at the next cycle
        assert pipeline.offer([SpanFactory().workflow("other")])
        await pipeline.drain()
        assert f.trace_id not in builder
        writer = f.agent("writer", parent=root)
        assert pipeline.offer([writer, f.chat(parent=writer, input_tokens=5, cost_usd=0.25)])
        await pipeline.drain()
        assert builder.late_spans == 2
    # leaving the pipeline rebuilds what is still noted (the task may have done it already)
    assert pipeline.stats.late_graphs_rebuilt == 1
    assert pipeline.stats.late_graphs_dropped == 0
    stored = await store.graph(f.trace_id)
    assert stored is not None
    agents = {agent.name: agent for agent in stored.agents}
    assert sorted(agents) == ["planner", "writer"]
    assert agents["writer"].cost_usd == pytest.approx(0.25)
    assert agents["planner"].input_tokens == 10
    assert (stored.run.span_count, stored.run.cost_usd) == (5, pytest.approx(0.25))
    assert stored.run.complete
    assert store.graphs[-1] == (f.trace_id, ("planner", "writer"))
    live = await hot.run(f.trace_id)  # the live state follows the rebuilt graph
    assert live is not None
    assert (live.agents, live.span_count) == (("planner", "writer"), 5)


async def test_the_rebuild_waits_for_a_burst_of_late_spans_and_runs_once() -> None:
    clock = ManualClock(1000.0)
    builder = GraphBuilder(complete_linger_seconds=30, clock=clock)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-burst")
    store = GraphLog()
    async with Pipeline(store, builder=builder, late_graph_delay_seconds=0.3) as pipeline:
        assert pipeline.offer([f.agent("a0", parent=root), root])
        await pipeline.drain()
        clock.now += 31
        assert pipeline.offer([SpanFactory().workflow("other")])
        await pipeline.drain()
        for index in range(1, 4):  # three late batches within the delay
            assert pipeline.offer([f.agent(f"a{index}", parent=root)])
            await pipeline.drain()
        for _ in range(100):
            if pipeline.stats.late_graphs_rebuilt:
                break
            await asyncio.sleep(0.02)
        assert pipeline.stats.late_graphs_rebuilt == 1  # by the task, before leaving
    rebuilt = [agents for trace_id, agents in store.graphs if trace_id == f.trace_id]
    assert rebuilt == [("a0",), ("a0", "a1", "a2", "a3")]


async def test_an_evicted_run_keeps_its_whole_graph_when_more_of_its_spans_arrive() -> None:
    builder = GraphBuilder(max_traces=1)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-evicted")
    store = GraphLog()
    # One batch per cycle, and live graphs wait while batches queue: the first run's graph is
    # still deferred when the next run evicts it; its graph rebuilt for the late span must
    # not be overwritten by that deferred one when the queue finally empties.
    async with Pipeline(
        store,
        builder=builder,
        max_cycle_spans=1,
        graph_write_seconds=3600,
        late_graph_delay_seconds=0,
    ) as pipeline:
        assert pipeline.offer([f.agent("a", parent=root)])
        assert pipeline.offer([f.agent("b", parent=root)])
        assert pipeline.offer([SpanFactory().workflow("evicts the first run")])
        assert pipeline.offer([f.agent("c", parent=root)])  # late: its run left memory
        for index in range(30):  # more traffic: the queue stays busy for a while
            assert pipeline.offer([SpanFactory().workflow(f"other {index}")])
        await pipeline.drain()
    assert builder.evicted >= 1
    assert pipeline.stats.late_graphs_rebuilt == 1
    assert await _stored_agents(store, f.trace_id) == ["a", "b", "c"]
    writes = [agents for trace_id, agents in store.graphs if trace_id == f.trace_id]
    assert writes[-1] == ("a", "b", "c")


async def test_a_run_evicted_in_the_cycle_that_changed_it_gets_its_graph_from_the_store() -> None:
    builder = GraphBuilder(max_traces=1)
    f, g = SpanFactory(), SpanFactory()
    root = f.workflow("w", run_id="run-squeezed")
    store = GraphLog()
    async with Pipeline(store, builder=builder, late_graph_delay_seconds=0) as pipeline:
        # one request: the first run's spans, then another run's, which evicts it at once
        assert pipeline.offer([f.agent("a", parent=root), root, g.workflow("other")])
        await pipeline.drain()
    assert f.trace_id not in builder
    assert await _stored_agents(store, f.trace_id) == ["a"]
    assert pipeline.stats.late_graphs_rebuilt == 1


async def test_the_rules_run_on_a_rebuilt_graph() -> None:
    clock = ManualClock(1000.0)
    builder = GraphBuilder(complete_linger_seconds=30, clock=clock)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-pingpong")
    spans: list[SpanRecord] = []
    for _ in range(4):
        for name in ("supervisor", "researcher"):
            spans.append(f.agent(name, parent=root))
    found: list[str] = []

    async def heard(detection: object) -> None:
        found.append(getattr(detection, "type", ""))

    store = MemoryStore()
    async with Pipeline(
        store,
        builder=builder,
        rules=[PingPongRule(max_repeats=2, settle_seconds=0)],
        on_detection=heard,
        late_graph_delay_seconds=0,
    ) as pipeline:
        assert pipeline.offer([*spans[:3], root])  # supervisor, researcher, supervisor
        await pipeline.drain()
        assert found == []
        clock.now += 31
        assert pipeline.offer([SpanFactory().workflow("other")])
        await pipeline.drain()
        assert pipeline.offer(spans[3:])  # the rest of the ping-pong, late
        await pipeline.drain()
    assert found == ["ping_pong"]
    assert len(await store.detections(limit=10)) == 1


class OutageStore(GraphLog):
    """Graph writes fail as unavailable while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def write_graph(self, graph: RunGraph) -> None:
        if self.down:
            raise StoreUnavailableError("connection refused")
        await super().write_graph(graph)


async def test_late_graphs_wait_out_a_store_outage_and_are_rebuilt_once_it_is_back() -> None:
    clock = ManualClock(1000.0)
    builder = GraphBuilder(complete_linger_seconds=30, clock=clock)
    f = SpanFactory()
    root = f.workflow("w", run_id="run-outage")
    store = OutageStore()
    async with Pipeline(store, builder=builder, late_graph_delay_seconds=0) as pipeline:
        assert pipeline.offer([f.agent("first", parent=root), root])
        await pipeline.drain()
        clock.now += 31
        assert pipeline.offer([SpanFactory().workflow("other")])
        await pipeline.drain()
        store.down = True
        with capture_logs() as logs:
            assert pipeline.offer([f.agent("late", parent=root)])  # stored: spans still work
            await pipeline.drain()
            for _ in range(100):
                if not pipeline.store_available:
                    break
                await asyncio.sleep(0.01)
        assert not pipeline.store_available
        assert any("graphs wait" in entry["event"] for entry in logs)
        stats = pipeline.stats
        assert (stats.late_graphs_rebuilt, stats.late_graphs_dropped) == (0, 0)  # kept
        store.down = False
        assert pipeline.offer([SpanFactory().workflow("after")])  # a write: the store is back
        await pipeline.drain()
        for _ in range(300):  # tried again within a second or two
            if pipeline.stats.late_graphs_rebuilt:
                break
            await asyncio.sleep(0.01)
        assert pipeline.stats.late_graphs_rebuilt == 1
    assert await _stored_agents(store, f.trace_id) == ["first", "late"]


async def test_noted_runs_are_bounded_and_the_overflow_counted() -> None:
    written: list[RunGraph] = []

    async def write(graphs: list[RunGraph]) -> None:
        written.extend(graphs)

    store = MemoryStore()
    f, g = SpanFactory(), SpanFactory()
    await store.write_spans([f.workflow("one"), g.workflow("two")])
    late = LateGraphs(store.spans_of, write, delay_seconds=0, max_pending=1)
    with capture_logs() as logs:
        late.note([f.trace_id, f.trace_id, g.trace_id])
    assert (late.pending, late.dropped) == (1, 1)
    assert any("too many waiting" in entry["event"] for entry in logs)
    await late.flush()
    assert [graph.trace_id for graph in written] == [f.trace_id]
    assert (late.rebuilt, late.pending) == (1, 0)
    late.note(["0" * 32])  # nothing stored for it: nothing to write
    await late.flush()
    assert (late.rebuilt, len(written)) == (1, 1)


async def test_a_failed_rebuild_is_counted_and_logged_and_the_next_one_works() -> None:
    calls: list[Sequence[str]] = []
    store = MemoryStore()
    f = SpanFactory()
    await store.write_spans([f.workflow("w")])

    async def read(trace_ids: Sequence[str]) -> dict[str, list[SpanRecord]]:
        calls.append(trace_ids)
        if len(calls) == 1:
            raise StoreError("connection lost")
        return await store.spans_of(trace_ids)

    written: list[RunGraph] = []

    async def write(graphs: list[RunGraph]) -> None:
        written.extend(graphs)

    async with LateGraphs(read, write, delay_seconds=0) as late:
        with capture_logs() as logs:
            late.note([f.trace_id])
            await late.flush()
        assert late.failed == 1
        assert any("not rebuilt" in entry["event"] for entry in logs)
        late.note([f.trace_id])
        await late.flush()
    assert [graph.trace_id for graph in written] == [f.trace_id]
    assert (late.rebuilt, late.failed) == (1, 1)


async def test_bad_bounds_and_a_second_start_are_refused() -> None:
    store = MemoryStore()

    async def write(graphs: list[RunGraph]) -> None:
        del graphs

    with pytest.raises(CollectorError, match="delay_seconds"):
        LateGraphs(store.spans_of, write, delay_seconds=-1)
    with pytest.raises(CollectorError, match="max_pending"):
        LateGraphs(store.spans_of, write, chunk=0)
    async with LateGraphs(store.spans_of, write) as late:
        with pytest.raises(CollectorError, match="already"):
            await late.start()
