"""Runs whose spans reach a collector on both sides of a restart, or two collectors, stored whole.

Real collectors over OTLP/gRPC, on DuckDB and on Postgres: part of each run is sent, the
collector stops (draining) and a new one starts on the same store, the rest is sent. The
stored graph must count every span (handoffs, LLM calls, cost), and the ping-pong the whole run
shows must be detected. Two collectors sharing Postgres, each given part of the same runs (a
load balancer whose backends changed), must store the same.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from agentmesh.collector import Collector, CollectorSettings, DuckDBStore, SpanRecord
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.base import SpanStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, graph_of, to_otlp_request

AGENTS = ("supervisor", "researcher", "writer", "critic")
SPANS_PER_REQUEST = 10


def _run(rng: random.Random, index: int) -> list[SpanRecord]:
    """One run, root first: agents handing over (ping-pong in every other run), LLM calls."""
    f = SpanFactory(f"{rng.getrandbits(128):032x}")
    run_id = f"run-{index:02d}"
    root = f.workflow("partway", run_id=run_id)
    if index % 2 == 0:
        sequence = ["researcher", "critic"] * 6
    else:
        sequence = rng.choices(AGENTS, k=rng.randint(4, 9))
    spans = [root]
    previous: str | None = None
    for name in sequence:
        agent = f.agent(name, parent=root, run_id=run_id, handoff_from=previous)
        spans.append(agent)
        for _ in range(rng.randint(1, 2)):
            spans.append(
                f.chat(
                    parent=agent,
                    model="gpt-4o-mini",
                    input_tokens=rng.randint(10, 2000),
                    output_tokens=rng.randint(5, 500),
                    cost_usd=round(rng.uniform(0.0001, 0.01), 6),
                )
            )
        previous = name
    end = max(span.end_ns for span in spans)
    spans[0] = dataclasses.replace(root, end_ns=end + 1)
    return spans


def _runs(count: int = 6) -> list[list[SpanRecord]]:
    rng = random.Random(20261206)
    return [_run(rng, index) for index in range(count)]


def _parts(runs: list[list[SpanRecord]], parts: int) -> list[list[SpanRecord]]:
    """Each run's children cut in ``parts`` slices in order, the root with the last one."""
    sent: list[list[SpanRecord]] = [[] for _ in range(parts)]
    for spans in runs:
        children = spans[1:]
        size = -(-len(children) // parts)
        for part in range(parts):
            sent[part] += children[part * size : (part + 1) * size]
        sent[-1].append(spans[0])
    return sent


async def _send(endpoint: str, spans: Sequence[SpanRecord]) -> None:
    async with grpc.aio.insecure_channel(endpoint.removeprefix("http://")) as channel:
        stub = TraceServiceStub(channel)
        for start in range(0, len(spans), SPANS_PER_REQUEST):
            request = to_otlp_request(spans[start : start + SPANS_PER_REQUEST])
            await stub.Export(request, timeout=10)  # pyright: ignore[reportUnknownMemberType]


async def _assert_stored_whole(store: SpanStore, runs: list[list[SpanRecord]]) -> None:
    for spans in runs:
        expected = graph_of(spans)
        stored = await store.graph(expected.trace_id)
        assert stored is not None
        run = stored.run
        assert (run.span_count, run.handoffs, run.llm_calls) == (
            len(spans),
            len(expected.handoffs),
            expected.llm_calls,
        ), run.run_id
        assert (run.input_tokens, run.output_tokens) == (
            expected.input_tokens,
            expected.output_tokens,
        )
        assert run.cost_usd == pytest.approx(expected.cost_usd, abs=1e-9)
        assert run.complete
        assert run.state == "complete"
        assert [(h.source, h.target) for h in stored.handoffs] == [
            (h.source, h.target) for h in expected.handoffs
        ]
        assert len(await store.spans(expected.trace_id)) == len(spans)
        detections = [d.type for d in await store.detections(expected.trace_id)]
        looping = run.run_id in {"run-00", "run-02", "run-04"}
        assert detections == (["ping_pong"] if looping else []), run.run_id
    by_model = await store.costs(group_by="model")
    assert sum(row.llm_calls for row in by_model) == sum(graph_of(s).llm_calls for s in runs)
    by_agent = await store.costs(group_by="agent")
    assert sum(row.cost_usd for row in by_agent) == pytest.approx(
        sum(graph_of(s).cost_usd for s in runs), abs=1e-9
    )


def _settings(**store: object) -> CollectorSettings:
    return CollectorSettings.load(grpc_port=0, http_enabled=False, decode_workers=0, **store)


async def _restarted(settings: CollectorSettings, parts: list[list[SpanRecord]]) -> None:
    """One collector per part, each stopped (drained) before the next starts on its store."""
    for part in parts:
        async with Collector(settings) as collector:
            await _send(collector.endpoint, part)
            await collector.drain()
            assert collector.stats.spans_stored == len(part)


@pytest.mark.parametrize("restarts", [1, 2])
async def test_duckdb_runs_across_restarts_are_stored_whole(tmp_path: Path, restarts: int) -> None:
    path = tmp_path / "restart.duckdb"
    runs = _runs()
    await _restarted(_settings(store="duckdb", duckdb_path=path), _parts(runs, restarts + 1))
    async with DuckDBStore(path) as store:
        await _assert_stored_whole(store, runs)


@pytest.fixture
async def pg_schema(postgres_address: tuple[str, int]) -> AsyncIterator[tuple[str, str]]:
    host, port = postgres_address
    dsn = os.environ.get("AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test")
    async with scratch_schema(dsn, "agentmesh_partway") as name:
        yield dsn, name


@pytest.mark.postgres
@pytest.mark.parametrize("restarts", [1, 2])
async def test_postgres_runs_across_restarts_are_stored_whole(
    pg_schema: tuple[str, str], restarts: int
) -> None:
    dsn, schema = pg_schema
    runs = _runs()
    settings = _settings(store="postgres", postgres_dsn=dsn, postgres_schema=schema)
    await _restarted(settings, _parts(runs, restarts + 1))
    async with PostgresStore(dsn, schema=schema) as store:
        await _assert_stored_whole(store, runs)


@pytest.mark.postgres
async def test_postgres_runs_moved_to_another_collector_are_stored_whole(
    pg_schema: tuple[str, str],
) -> None:
    dsn, schema = pg_schema
    runs = _runs()
    first, second = _parts(runs, 2)
    settings = _settings(store="postgres", postgres_dsn=dsn, postgres_schema=schema)
    async with Collector(settings) as a, Collector(settings) as b:
        await _send(a.endpoint, first)
        await a.drain()
        await _send(b.endpoint, second)  # the load balancer's backends changed
        await b.drain()
        assert (a.stats.spans_stored, b.stats.spans_stored) == (len(first), len(second))
    async with PostgresStore(dsn, schema=schema) as store:
        await _assert_stored_whole(store, runs)
