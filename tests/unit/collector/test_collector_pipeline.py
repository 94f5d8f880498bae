import asyncio
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from agentmesh.collector import (
    Detection,
    DuckDBStore,
    GraphBuilder,
    MemoryStore,
    PingPongRule,
    Pipeline,
    RunGraph,
    SpanRecord,
)
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import CollectorError, StoreError


def _loop_batches(f: SpanFactory, repeats: int = 5, size: int = 3) -> list[list[SpanRecord]]:
    root = f.workflow("w", run_id="run-loop")
    spans = [root]
    for _ in range(repeats):
        for name in ("supervisor", "researcher"):
            agent = f.agent(name, parent=root)
            spans += [agent, f.chat(parent=agent, input_tokens=1, cost_usd=0.1)]
    return [spans[i : i + size] for i in range(0, len(spans), size)]


class GatedStore(MemoryStore):
    """A memory store whose span writes wait for a gate (to fill the queue)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        self.entered.set()
        await self.gate.wait()
        return await super().write_spans(spans)


class FlakyStore(MemoryStore):
    """Fails span writes of batches holding a given span."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        if any(s.span_id == self.poison for s in spans):
            raise StoreError("disk full")
        return await super().write_spans(spans)


class ExplodingRule:
    name = "exploding"

    def evaluate(self, graph: RunGraph) -> list[Detection]:
        raise RuntimeError("bug in a rule")


async def test_processes_batches_and_reports_a_loop_once() -> None:
    store = MemoryStore()
    f = SpanFactory()
    batches = _loop_batches(f)
    with capture_logs() as logs:
        async with Pipeline(store, rules=[PingPongRule(max_repeats=3)]) as pipeline:
            for batch in batches:
                assert pipeline.offer(batch)
            assert pipeline.offer(batches[0])  # a re-delivery
            await pipeline.drain()
            stats = pipeline.stats
    total = sum(len(b) for b in batches)
    assert stats.batches_received == len(batches) + 1
    assert stats.spans_received == total + len(batches[0])
    assert stats.spans_stored == total
    assert stats.detections == 1
    assert (stats.batches_rejected, stats.batches_failed, stats.queued_batches) == (0, 0, 0)
    assert await store.count_spans() == total
    graph = await store.graph(f.trace_id)
    assert graph is not None
    assert graph.run.llm_calls == 10
    (detection,) = await store.detections()
    assert detection.run_id == "run-loop"
    warnings = [e for e in logs if e["event"] == "detection"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["type"] == "ping_pong"
    assert warnings[0]["run_id"] == "run-loop"
    assert warnings[0]["explanation"] == detection.explanation


async def test_refuses_batches_when_the_queue_is_full() -> None:
    store = GatedStore()
    f = SpanFactory()
    async with Pipeline(store, max_batches=2) as pipeline:
        assert pipeline.offer([f.workflow("a")])
        await store.entered.wait()  # the worker holds the first batch
        assert pipeline.offer([f.workflow("b")])
        assert pipeline.offer([f.workflow("c")])
        assert not pipeline.offer([f.workflow("d")])
        assert pipeline.stats.batches_rejected == 1
        assert pipeline.stats.queued_batches == 2
        store.gate.set()
        await pipeline.drain()
        assert pipeline.offer([f.workflow("e")])
        await pipeline.drain()
    assert await store.count_spans() == 4


async def test_refuses_batches_when_not_running() -> None:
    pipeline = Pipeline(MemoryStore())
    assert not pipeline.offer([SpanFactory().workflow("w")])
    await pipeline.drain()  # nothing to wait for
    async with pipeline:
        pass
    assert not pipeline.offer([SpanFactory().workflow("w")])
    assert pipeline.stats.batches_rejected == 2


async def test_a_failing_batch_is_logged_and_the_worker_carries_on() -> None:
    f = SpanFactory()
    bad, good = f.workflow("bad", run_id="r"), f.agent("a", parent=None)
    store = FlakyStore(poison=bad.span_id)
    with capture_logs() as logs:
        async with Pipeline(store, rules=[ExplodingRule()]) as pipeline:
            assert pipeline.offer([bad])
            assert pipeline.offer([good])
            await pipeline.drain()
            stats = pipeline.stats
    assert stats.batches_failed == 2  # the store failed one, the rule failed on both
    assert stats.spans_stored == 1
    assert await store.count_spans() == 1
    graph = await store.graph(f.trace_id)
    assert graph is not None
    assert graph.run.run_id == "r"  # the graph was still updated from the unstored batch
    events = [e["event"] for e in logs]
    assert "spans not stored" in events
    assert events.count("rule failed") == 1  # one cycle, one trace: the rule ran once


async def test_listener_hears_each_new_detection() -> None:
    heard: list[str] = []

    async def listener(detection: Detection) -> None:
        heard.append(detection.id)

    f = SpanFactory()
    async with Pipeline(
        MemoryStore(), rules=[PingPongRule(max_repeats=3)], on_detection=listener
    ) as pipeline:
        for batch in _loop_batches(f):
            pipeline.offer(batch)
        await pipeline.drain()
    assert len(heard) == 1


async def test_stop_processes_what_is_queued() -> None:
    store = MemoryStore()
    f = SpanFactory()
    async with Pipeline(store) as pipeline:
        for batch in _loop_batches(f):
            pipeline.offer(batch)
    assert await store.count_spans() == 21


async def test_stop_gives_up_after_the_drain_timeout() -> None:
    store = GatedStore()
    with capture_logs() as logs:
        async with Pipeline(store, drain_timeout_seconds=0.05) as pipeline:
            pipeline.offer([SpanFactory().workflow("w")])
            pipeline.offer([SpanFactory().workflow("w")])
            await store.entered.wait()
    [event] = [e for e in logs if e["event"].startswith("pipeline drain timed out")]
    assert event["event"] == (
        "pipeline drain timed out: accepted spans were lost, the store did not take them in time"
    )
    assert (event["dropped_batches"], event["dropped_spans"]) == (2, 2)
    assert (pipeline.stats.batches_dropped, pipeline.stats.spans_dropped) == (2, 2)
    assert await store.count_spans() == 0


async def test_bad_queue_bound_and_double_start() -> None:
    with pytest.raises(CollectorError):
        Pipeline(MemoryStore(), max_batches=0)
    async with Pipeline(MemoryStore()) as pipeline:
        with pytest.raises(CollectorError, match="already running"):
            await pipeline.start()


class CountingStore(MemoryStore):
    """Counts span writes, to see batches coalesced into one call per cycle."""

    def __init__(self) -> None:
        super().__init__()
        self.span_writes: list[int] = []

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        self.span_writes.append(len(spans))
        return await super().write_spans(spans)


async def test_the_queue_bound_counts_spans_too() -> None:
    store = GatedStore()
    f = SpanFactory()
    async with Pipeline(store, max_batches=100, max_spans=5) as pipeline:
        assert pipeline.offer([f.workflow("a")])
        await store.entered.wait()  # the batch being written no longer counts
        assert pipeline.offer([f.agent(n, parent=None) for n in "bcd"])
        assert not pipeline.offer([f.agent(n, parent=None) for n in "efg"])  # 3 + 3 > 5
        assert pipeline.offer([f.agent(n, parent=None) for n in "hi"])  # 3 + 2 = 5
        assert (pipeline.stats.queued_batches, pipeline.stats.queued_spans) == (2, 5)
        store.gate.set()
        await pipeline.drain()
        assert pipeline.stats.queued_spans == 0
        assert pipeline.offer([f.agent(str(n), parent=None) for n in range(9)])  # alone: taken
        await pipeline.drain()
    assert await store.count_spans() == 1 + 3 + 2 + 9


async def test_queued_batches_are_written_in_one_call_and_latency_is_measured() -> None:
    store = CountingStore()
    f = SpanFactory()
    batches = _loop_batches(f)
    async with Pipeline(store, rules=[PingPongRule(max_repeats=3)]) as pipeline:
        assert pipeline.ingest_to_graph_ms() is None
        for batch in batches:
            assert pipeline.offer(batch)
        await pipeline.drain()
        stats = pipeline.stats
        p99 = pipeline.ingest_to_graph_ms(0.99)
    assert store.span_writes == [sum(len(b) for b in batches)]
    assert stats.cycles == 1
    assert stats.detections == 1
    assert p99 is not None
    assert p99 >= 0.0
    with pytest.raises(CollectorError):
        pipeline.ingest_to_graph_ms(1.5)


async def test_duckdb_batch_graph_writes_store_what_single_writes_store() -> None:
    f, g = SpanFactory(), SpanFactory()
    builder = GraphBuilder()
    spans = [s for batch in _loop_batches(f) + _loop_batches(g) for s in batch]
    builder.add(spans[:20])
    early = [graph for t in (f.trace_id, g.trace_id) if (graph := builder.get(t)) is not None]
    builder.add(spans[20:])
    late = [graph for t in (f.trace_id, g.trace_id) if (graph := builder.get(t)) is not None]
    async with DuckDBStore(":memory:") as single, DuckDBStore(":memory:") as batched:
        for graph in late:
            await single.write_graph(graph)
        await batched.write_graphs(early)
        await batched.write_graphs(late)  # replaces the earlier rows
        for trace_id in (f.trace_id, g.trace_id):
            expected = await single.graph(trace_id)
            assert expected is not None
            assert expected.handoffs
            assert await batched.graph(trace_id) == expected
        assert await batched.runs() == await single.runs()


class GraphLog(MemoryStore):
    """Records each stored graph as (trace id, span count)."""

    def __init__(self) -> None:
        super().__init__()
        self.graphs: list[tuple[str, int]] = []

    async def write_graph(self, graph: RunGraph) -> None:
        self.graphs.append((graph.trace_id, graph.span_count))
        await super().write_graph(graph)


def _run_in_progress(f: SpanFactory, agents: int = 4) -> list[list[SpanRecord]]:
    """A run's agent spans, one per batch, without its root (the run is still going)."""
    root = f.workflow("w", run_id="run-live")
    return [[f.agent(f"agent-{i}", parent=root)] for i in range(agents)]


async def test_live_graphs_are_stored_once_the_queue_empties_while_batches_wait() -> None:
    f = SpanFactory()
    store = GraphLog()
    batches = _run_in_progress(f)
    async with Pipeline(store, max_cycle_spans=1, graph_write_seconds=3600) as pipeline:
        for batch in batches:  # all queued before the worker runs: each cycle leaves work
            assert pipeline.offer(batch)
        await pipeline.drain()
        stats = pipeline.stats
    assert stats.cycles == len(batches)
    assert store.graphs == [(f.trace_id, len(batches))]  # one write, the last state
    stored = await store.graph(f.trace_id)
    assert stored is not None
    assert len(stored.agents) == len(batches)


async def test_every_changed_graph_is_stored_every_cycle_with_no_delay() -> None:
    f = SpanFactory()
    store = GraphLog()
    batches = _run_in_progress(f)
    async with Pipeline(store, max_cycle_spans=1, graph_write_seconds=0) as pipeline:
        for batch in batches:
            assert pipeline.offer(batch)
        await pipeline.drain()
    assert store.graphs == [(f.trace_id, n) for n in range(1, len(batches) + 1)]


async def test_a_run_that_completes_is_stored_at_once_while_live_ones_wait() -> None:
    live, done = SpanFactory(), SpanFactory()
    store = GraphLog()
    root = done.workflow("w", run_id="run-done")
    complete = [done.agent("solo", parent=root), root]
    batches = [complete, *_run_in_progress(live)]
    async with Pipeline(store, max_cycle_spans=2, graph_write_seconds=3600) as pipeline:
        for batch in batches:
            assert pipeline.offer(batch)
        await pipeline.drain()
    assert store.graphs[0] == (done.trace_id, 2)  # the first cycle stored the complete run
    assert store.graphs[1:] == [(live.trace_id, len(batches) - 1)]


async def test_a_deferred_graph_is_stored_when_its_delay_has_passed() -> None:
    f = SpanFactory()
    store = GraphLog()
    batches = _run_in_progress(f, agents=6)
    async with Pipeline(store, max_cycle_spans=1, graph_write_seconds=1e-6) as pipeline:
        for batch in batches:
            assert pipeline.offer(batch)
        await pipeline.drain()
    counts = [n for _, n in store.graphs]
    assert counts[-1] == len(batches)
    assert len(counts) > 1  # stored during the run, not only when the queue emptied
    assert counts == sorted(counts)


async def test_a_negative_graph_write_delay_is_refused() -> None:
    with pytest.raises(CollectorError, match="graph_write_seconds"):
        Pipeline(MemoryStore(), graph_write_seconds=-1)


class GatedCountingStore(MemoryStore):
    """Span writes wait for a gate, and their sizes are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.span_writes: list[int] = []

    async def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        self.span_writes.append(len(spans))
        self.entered.set()
        await self.gate.wait()
        return await super().write_spans(spans)


async def test_a_slow_write_does_not_hold_up_graphing() -> None:
    f = SpanFactory()
    store = GatedCountingStore()
    batches = _loop_batches(f)
    first, rest = batches[0], batches[1:]
    async with Pipeline(store, rules=[PingPongRule(max_repeats=3)]) as pipeline:
        assert pipeline.offer(first)
        await store.entered.wait()  # the first cycle's write is stuck
        for batch in rest:
            assert pipeline.offer(batch)
            await asyncio.sleep(0.01)  # each its own cycle, graphed while the write waits
        graph = pipeline.builder.get(f.trace_id)
        assert graph is not None
        assert graph.span_count == sum(len(b) for b in batches)  # every span graphed already
        assert pipeline.stats.spans_stored == 0
        assert pipeline.stats.queued_spans == sum(len(b) for b in rest)  # still bounded
        store.gate.set()
        await pipeline.drain()
        stats = pipeline.stats
    assert store.span_writes == [len(first), sum(len(b) for b in rest)]  # merged into one write
    assert stats.spans_stored == sum(len(b) for b in batches)
    assert stats.detections == 1
    stored = await store.graph(f.trace_id)
    assert stored is not None
    assert stored.run.span_count == graph.span_count


class _Order:
    """A detector that records the order it is given each cycle's spans in."""

    name = "order"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def observe(self, cycle: CycleView) -> list[Detection]:
        self.seen.append(
            ["marker" if n.started else str(n.agent or n.operation) for n in cycle.nodes]
        )
        return []

    def tick(self, now_ns: int) -> list[Detection]:
        return []


async def test_detectors_see_a_cycles_start_markers_before_its_other_spans() -> None:
    # OTLP groups a request by scope: a step's model call can come before the step's marker
    f = SpanFactory()
    root = f.workflow("w")
    step = f.agent("classifier", parent=root)
    call = f.chat(parent=step)
    order = _Order()
    async with Pipeline(MemoryStore(), detectors=[order]) as pipeline:
        assert pipeline.offer([call, step, f.marker(step)])
        await pipeline.drain()
        assert pipeline.offer([f.marker(root), root])  # already first: kept as it is
        await pipeline.drain()
    assert order.seen == [["marker", "chat", "classifier"], ["marker", "invoke_workflow"]]
