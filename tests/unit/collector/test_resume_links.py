"""A resumed run that does not name the run it continues is linked to its conversation's last."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from opentelemetry.util.types import AttributeValue
from structlog.testing import capture_logs

from agentmesh.collector import MemoryStore, Pipeline, RunGraph, SpanRecord
from agentmesh.collector.resume.links import ResumeLinks
from agentmesh.collector.store.base import RunSummary
from agentmesh.collector.testing import SpanFactory, with_attributes
from agentmesh.core import StoreError, semconv


def _run(
    start_ns: int, run_id: str, thread: str, marks: Mapping[str, AttributeValue] | None = None
) -> list[SpanRecord]:
    f = SpanFactory(start_ns=start_ns)
    root = f.workflow("support", run_id=run_id)
    root = with_attributes(root, {semconv.GEN_AI_CONVERSATION_ID: thread, **(marks or {})})
    return [root, f.agent("agent", parent=root)]


async def test_the_pipeline_links_a_run_resumed_in_another_process() -> None:
    async with MemoryStore() as store, Pipeline(store) as pipeline:
        paused = _run(1_000, "run-asked", "thread-7", {semconv.AGENTMESH_RUN_PAUSED: True})
        other = _run(2_000, "run-other-thread", "thread-8")
        # the thread resumed later by another process: it says it resumes, not what
        resumed = _run(3_000, "run-answered", "thread-7", {semconv.AGENTMESH_RUN_RESUMED: True})
        fresh = _run(4_000, "run-new-question", "thread-7")  # not a resume: not linked
        for spans in (paused, other, resumed, fresh):
            assert pipeline.offer(spans)
            await pipeline.drain()
        runs = {r.run_id: r for r in await store.runs()}
        assert runs["run-answered"].resumed_from == "run-asked"
        assert runs["run-answered"].resumed
        assert runs["run-new-question"].resumed_from is None
        assert [r.run_id for r in await store.resumptions("run-asked", limit=5)] == ["run-answered"]


async def test_a_run_that_names_the_run_it_continues_keeps_it() -> None:
    async with MemoryStore() as store:
        await store.write_graph(RunGraph("t1", "run-1", start_ns=1, conversation_id="c"))
        named = RunGraph(
            "t2", "run-2", start_ns=5, conversation_id="c", resumed=True, resumed_from="run-0"
        )
        links = ResumeLinks(store)
        assert await links.link([named]) == [named]
        assert links.lookups == 0


async def test_a_miss_is_retried_later_and_a_link_found_is_kept() -> None:
    now = [0.0]
    async with MemoryStore() as store:
        links = ResumeLinks(store, retry_seconds=5.0, clock=lambda: now[0])
        resumed = RunGraph("t2", "run-2", start_ns=50, conversation_id="c", resumed=True)
        graphs = [resumed]
        assert await links.link(graphs) is graphs  # the paused run is not stored yet
        assert await links.link(graphs) is graphs
        assert links.lookups == 1  # the miss is remembered for a while
        await store.write_graph(RunGraph("t1", "run-1", start_ns=10, conversation_id="c"))
        now[0] = 6.0
        (linked,) = await links.link(graphs)
        assert linked == replace(resumed, resumed_from="run-1")
        await store.write_graph(RunGraph("t3", "run-3", start_ns=20, conversation_id="c"))
        now[0] = 100.0
        assert await links.link(graphs) == [linked]  # found once, kept: no new lookup
        assert links.lookups == 2


async def test_a_run_is_not_linked_to_itself_nor_without_a_conversation() -> None:
    async with MemoryStore() as store:
        await store.write_graph(RunGraph("t1", "run-1", start_ns=1, conversation_id="c"))
        links = ResumeLinks(store)
        same_run = RunGraph("t2", "run-1", start_ns=5, conversation_id="c", resumed=True)
        no_thread = RunGraph("t3", "run-3", start_ns=5, resumed=True)
        assert await links.link([same_run, no_thread]) == [same_run, no_thread]


class _FailingStore(MemoryStore):
    async def previous_run(self, conversation_id: str, *, before_ns: int) -> RunSummary | None:
        raise StoreError("postgres store at db:5432: connection refused")


async def test_a_failing_lookup_leaves_the_run_unlinked_and_is_logged() -> None:
    async with _FailingStore() as store:
        resumed = RunGraph("t2", "run-2", start_ns=5, conversation_id="c", resumed=True)
        with capture_logs() as logs:
            assert await ResumeLinks(store).link([resumed]) == [resumed]
        assert [e["event"] for e in logs] == ["resume_link_lookup_failed"]


async def test_the_remembered_traces_are_bounded() -> None:
    async with MemoryStore() as store:
        links = ResumeLinks(store, capacity=2)
        graphs = [
            RunGraph(f"t{i}", f"run-{i}", start_ns=5, conversation_id="c", resumed=True)
            for i in range(3)
        ]
        await links.link(graphs)
        await links.link(graphs[:1])  # the oldest was forgotten: looked up again
        assert links.lookups == 4
