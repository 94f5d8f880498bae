"""Runs a pipeline meets part-way: some of their spans were stored before it graphed them.

A collector restarted in the middle of a run, or a run moved to another collector sharing the
store, must store the whole run's graph (every stored span counted), not the part this
pipeline received, and run the graph rules on the whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from agentmesh.collector import GraphBuilder, MemoryStore, PingPongRule, Pipeline, SpanRecord
from agentmesh.collector.hot_state.memory_state import MemoryHotState
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.testing import SpanFactory, graph_of
from agentmesh.core import StoreUnavailableError


def _ping_pong(f: SpanFactory, visits: int = 12) -> list[SpanRecord]:
    """A run of agents handing over back and forth, each making an LLM call (root first)."""
    root = f.workflow("partway", run_id="run-partway")
    spans = [root]
    previous: str | None = None
    for index in range(visits):
        name = ("researcher", "critic")[index % 2]
        agent = f.agent(name, parent=root, handoff_from=previous)
        chat = f.chat(parent=agent, input_tokens=10 + index, output_tokens=2, cost_usd=0.001)
        spans += [agent, chat]
        previous = name
    end = max(span.end_ns for span in spans)
    spans[0] = dataclasses.replace(root, end_ns=end + 1)
    return spans


def _halves(spans: list[SpanRecord]) -> tuple[list[SpanRecord], list[SpanRecord]]:
    """The first half of the children, then the rest with the root (as a run exports them)."""
    half = len(spans) // 2
    return spans[1 : half + 1], spans[half + 1 :] + spans[:1]


async def _feed(pipeline: Pipeline, spans: Sequence[SpanRecord], size: int = 4) -> None:
    for start in range(0, len(spans), size):
        assert pipeline.offer(list(spans[start : start + size]))
    await pipeline.drain()


async def _assert_whole(store: SpanStore, spans: list[SpanRecord]) -> None:
    expected = graph_of(spans)
    stored = await store.graph(expected.trace_id)
    assert stored is not None
    run = stored.run
    assert (run.span_count, run.handoffs, run.llm_calls) == (
        len(spans),
        len(expected.handoffs),
        expected.llm_calls,
    )
    assert run.cost_usd == expected.cost_usd
    assert run.input_tokens == expected.input_tokens
    assert run.complete
    assert [(h.source, h.target) for h in stored.handoffs] == [
        (h.source, h.target) for h in expected.handoffs
    ]


async def test_a_run_across_a_restart_is_stored_whole_and_judged_whole() -> None:
    store = MemoryStore()
    f = SpanFactory()
    spans = _ping_pong(f)
    first, second = _halves(spans)
    async with Pipeline(store, rules=[PingPongRule(max_repeats=3)]) as before:
        await _feed(before, first)
    hot = MemoryHotState()
    builder = GraphBuilder()  # the restarted collector's: it never saw the first half
    async with Pipeline(
        store, builder=builder, rules=[PingPongRule(max_repeats=3)], hot_state=hot
    ) as after:
        await _feed(after, second)
        stats = after.stats
    await _assert_whole(store, spans)
    assert stats.runs_merged == 1
    assert [d.type for d in await store.detections(f.trace_id)] == ["ping_pong"]
    live = await hot.run(f.trace_id)
    assert live is not None
    assert (live.span_count, live.handoffs, live.llm_calls) == (len(spans), 11, 12)
    assert builder.runs_finished == 1  # the root arrived here: counted once, here


async def test_two_pipelines_sharing_a_store_store_a_moved_run_whole() -> None:
    store = MemoryStore()
    f = SpanFactory()
    spans = _ping_pong(f)
    first, second = _halves(spans)
    async with Pipeline(store) as a, Pipeline(store) as b:
        await _feed(a, first)
        await _feed(b, second)  # the load balancer's backends changed: the run moved
        assert b.stats.runs_merged == 1
        assert a.stats.runs_merged == 0
    await _assert_whole(store, spans)


async def test_late_spans_after_a_restart_complete_the_graph_without_counting_the_run_again() -> (
    None
):
    store = MemoryStore()
    f = SpanFactory()
    spans = _ping_pong(f)
    early, late = spans[:-4], spans[-4:]  # the root and most spans, then the last two visits
    async with Pipeline(store) as before:
        await _feed(before, early)
    builder = GraphBuilder()
    async with Pipeline(store, builder=builder) as after:
        await _feed(after, late)
    await _assert_whole(store, spans)
    assert builder.runs_finished == 0  # the collector before the restart counted it


async def test_a_run_whose_start_markers_alone_were_stored_is_not_read_back() -> None:
    store = MemoryStore()
    f = SpanFactory()
    spans = _ping_pong(f, visits=4)
    markers = [f.marker(spans[0]), f.marker(spans[1])]  # exported as the steps started
    async with Pipeline(store) as pipeline:
        await _feed(pipeline, markers)
        await _feed(pipeline, spans)
        assert pipeline.stats.runs_merged == 0
    await _assert_whole(store, spans)


class _AwayAtFirst(MemoryStore):
    """Unavailable for the first questions about stored traces (a Postgres restart, say)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def traces_with_spans(self, trace_ids: Sequence[str]) -> set[str]:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("cannot reach PostgreSQL at db:5432")
        return await super().traces_with_spans(trace_ids)


async def test_an_unreachable_store_is_waited_for_before_a_new_run_is_graphed_alone() -> None:
    store = _AwayAtFirst(failures=0)
    f = SpanFactory()
    spans = _ping_pong(f)
    first, second = _halves(spans)
    async with Pipeline(store) as before:
        await _feed(before, first)
    store.failures = 2
    async with Pipeline(store) as after:
        await _feed(after, second)
        assert after.stats.store_write_retries >= 2
    await _assert_whole(store, spans)
