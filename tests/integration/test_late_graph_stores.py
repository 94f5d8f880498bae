"""Late spans on real stores: a run's graph rebuilt from DuckDB or Postgres is the whole graph."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentmesh.collector import DuckDBStore, GraphBuilder, Pipeline, SpanRecord
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import ManualClock, SpanFactory, graph_of


def _run(f: SpanFactory) -> tuple[list[SpanRecord], list[SpanRecord]]:
    """A run's spans as first delivered (root included), and the spans that come late."""
    root = f.workflow("research", run_id="run-late-store")
    first: list[SpanRecord] = [root]
    late: list[SpanRecord] = []
    previous = None
    for index, name in enumerate(("planner", "researcher", "writer", "critic")):
        agent = f.agent(name, parent=root, handoff_from=previous)
        chat = f.chat(parent=agent, input_tokens=100 + index, output_tokens=10, cost_usd=0.01)
        tool = f.tool("search", parent=agent)
        (first if index < 2 else late).extend([agent, chat, tool])
        previous = name
    return first, late


async def _late_graph_matches_the_whole_run(store: SpanStore) -> None:
    clock = ManualClock(1000.0)
    builder = GraphBuilder(complete_linger_seconds=30, clock=clock)
    f = SpanFactory()
    first, late = _run(f)
    async with Pipeline(store, builder=builder, late_graph_delay_seconds=0) as pipeline:
        assert pipeline.offer(first)
        await pipeline.drain()
        clock.now += 31
        assert pipeline.offer([SpanFactory().workflow("other")])  # the run retires
        await pipeline.drain()
        assert pipeline.offer(late)
        await pipeline.drain()
    assert builder.late_spans == len(late)
    assert pipeline.stats.late_graphs_rebuilt == 1
    expected = graph_of(first + late)
    stored = await store.graph(f.trace_id)
    assert stored is not None
    run = stored.run
    assert run.agents == ("critic", "planner", "researcher", "writer")
    assert (run.span_count, run.llm_calls, run.handoffs) == (
        expected.span_count,
        expected.llm_calls,
        len(expected.handoffs),
    )
    assert run.input_tokens == expected.input_tokens == 406
    assert run.cost_usd == pytest.approx(expected.cost_usd)
    assert run.complete
    assert [(h.source, h.target) for h in stored.handoffs] == [
        (h.source, h.target) for h in expected.handoffs
    ]


async def test_duckdb(tmp_path: Path) -> None:
    async with DuckDBStore(tmp_path / "late.duckdb") as store:
        await _late_graph_matches_the_whole_run(store)


@pytest.fixture
async def pg_schema(postgres_address: tuple[str, int]) -> AsyncIterator[tuple[str, str]]:
    host, port = postgres_address
    dsn = os.environ.get("AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test")
    async with scratch_schema(dsn) as name:
        yield dsn, name


@pytest.mark.postgres
async def test_postgres(pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    async with PostgresStore(dsn, schema=schema) as store:
        await _late_graph_matches_the_whole_run(store)
