"""Two collectors sharing Postgres and Redis, each fed whole traces, equal one collector.

The span stream (many runs, some of them looping) is sharded by trace id across two
:class:`Collector` instances, as the OpenTelemetry Collector's ``loadbalancing`` exporter does
with ``routing_key: traceID``, and sent over real OTLP/gRPC; one more collector gets the whole
stream. The stored runs, graphs, costs and detections, and the runs' hot state in Redis, must be
the same, apart from wall-clock stamps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import secrets
import zlib
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from agentmesh.collector import Collector, CollectorSettings, SpanRecord
from agentmesh.collector.hot_state import RedisHotState
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, to_otlp_request

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

RUNS = 60
SPANS_PER_REQUEST = 100
AGENTS = ["supervisor", "researcher", "writer", "critic", "coder"]


@pytest.fixture
def dsn(postgres_address: tuple[str, int]) -> str:
    host, port = postgres_address
    return os.environ.get(
        "AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test"
    )


@pytest.fixture
def redis_url(redis_address: tuple[str, int]) -> str:
    host, port = redis_address
    return f"redis://{host}:{port}/0"


@pytest.fixture
async def schemas(dsn: str) -> AsyncIterator[tuple[str, str]]:
    async with (
        scratch_schema(dsn, "agentmesh_scale") as sharded,
        scratch_schema(dsn, "agentmesh_scale") as single,
    ):
        yield sharded, single


def _run(rng: random.Random, index: int) -> list[SpanRecord]:
    """One run: a workflow, agents handing over (a loop in every fifth run), LLM calls."""
    f = SpanFactory(f"{rng.getrandbits(128):032x}", service_name=f"app-{index % 3}")
    run_id = f"run-{index:03d}"
    root = f.workflow("scale", run_id=run_id)
    if index % 5 == 0:
        sequence = ["researcher", "critic"] * rng.randint(4, 6)
    else:
        sequence = rng.choices(AGENTS, k=rng.randint(2, 8))
    spans = [root]
    previous: str | None = None
    for name in sequence:
        agent = f.agent(name, parent=root, run_id=run_id, handoff_from=previous)
        spans.append(agent)
        for _ in range(rng.randint(0, 3)):
            spans.append(
                f.chat(
                    parent=agent,
                    model=rng.choice(["gpt-4o-mini", "claude-haiku"]),
                    input_tokens=rng.randint(10, 2000),
                    output_tokens=rng.randint(5, 500),
                    cost_usd=round(rng.uniform(0.0001, 0.01), 6),
                )
            )
        previous = name
    # The root span ends last (it opened first): give it the run's full extent.
    end = max(s.end_ns for s in spans)
    spans[0] = dataclasses.replace(root, end_ns=end + 1)
    return spans


def _stream() -> list[SpanRecord]:
    rng = random.Random(20261124)
    spans = [span for index in range(RUNS) for span in _run(rng, index)]
    rng.shuffle(spans)  # out of order, across requests
    return spans


def _shard(trace_id: str, shards: int) -> int:
    return zlib.crc32(bytes.fromhex(trace_id)) % shards


async def _send(endpoint: str, spans: Sequence[SpanRecord]) -> None:
    async with grpc.aio.insecure_channel(endpoint.removeprefix("http://")) as channel:
        stub = TraceServiceStub(channel)
        for start in range(0, len(spans), SPANS_PER_REQUEST):
            request = to_otlp_request(spans[start : start + SPANS_PER_REQUEST])
            await stub.Export(request)  # pyright: ignore[reportUnknownMemberType]


# Detectors that learn a norm from the runs an instance has seen (a workflow's cost, a key's
# latency, a step's duration, error rates across runs): two shards see different halves of the
# stream, so their verdicts may differ from one collector's by design. The per-run rules stay.
_LEARNING_DETECTORS = (
    "stuck",
    "runaway",
    "latency_spike",
    "token_spike",
    "cost_spike",
    "rate_limit_storm",
    "provider_outage",
)


def _settings(dsn: str, schema: str, redis_url: str, prefix: str) -> CollectorSettings:
    return CollectorSettings.load(
        grpc_port=0,
        http_enabled=False,
        detectors_disabled=list(_LEARNING_DETECTORS),
        store="postgres",
        postgres_dsn=dsn,
        postgres_schema=schema,
        redis_url=redis_url,
        redis_prefix=prefix,
    )


async def _snapshot(
    dsn: str, schema: str, redis_url: str, prefix: str, trace_ids: Sequence[str]
) -> dict[str, object]:
    """Everything the collectors wrote, with wall-clock stamps cleared."""
    async with PostgresStore(dsn, schema=schema) as store:
        runs = await store.runs()
        graphs = {t: await store.graph(t) for t in trace_ids}
        spans = {t: await store.spans(t) for t in trace_ids}
        detections = sorted(  # listed by detection time, which differs between instances
            # What a live rule saw depends on how far the run had arrived when it fired (batches
            # cut differently per instance): compare what was detected, not the evidence.
            (
                dataclasses.replace(
                    d, detected_at_ns=0, agent=None, span_ids=(), explanation="", details={}
                )
                for d in await store.detections()
            ),
            key=lambda d: d.id,
        )
        # SQL sums floats in whatever order rows come: compare to the nano-dollar.
        costs = [
            dataclasses.replace(row, cost_usd=round(row.cost_usd, 9))
            for group in ("agent", "model")
            for row in await store.costs(group_by=group)
        ]
        count = await store.count_spans()
    async with RedisHotState(redis_url, prefix=prefix) as hot:
        states = {}
        for trace_id in trace_ids:
            state = await hot.run(trace_id)
            states[trace_id] = None if state is None else dataclasses.replace(state, seen_ns=0)
    return {
        "runs": runs,
        "graphs": graphs,
        "spans": spans,
        "detections": detections,
        "costs": costs,
        "count": count,
        "hot": states,
    }


async def test_two_sharded_collectors_store_what_one_collector_stores(
    dsn: str, redis_url: str, schemas: tuple[str, str]
) -> None:
    sharded_schema, single_schema = schemas
    tag = secrets.token_hex(4)
    sharded_prefix, single_prefix = f"agentmesh-scale-{tag}-a:", f"agentmesh-scale-{tag}-b:"
    stream = _stream()
    trace_ids = sorted({span.trace_id for span in stream})
    shards: list[list[SpanRecord]] = [[], []]
    for span in stream:
        shards[_shard(span.trace_id, 2)].append(span)
    assert all(shards)  # both instances get traces

    settings = _settings(dsn, sharded_schema, redis_url, sharded_prefix)
    async with asyncio.timeout(120):
        async with Collector(settings) as first, Collector(settings) as second:
            await asyncio.gather(
                _send(first.endpoint, shards[0]), _send(second.endpoint, shards[1])
            )
            await asyncio.gather(first.drain(), second.drain())
            assert first.stats.spans_received == len(shards[0])
            assert second.stats.spans_received == len(shards[1])
        async with Collector(_settings(dsn, single_schema, redis_url, single_prefix)) as one:
            await _send(one.endpoint, stream)
            await one.drain()
            assert one.stats.spans_received == len(stream)

        sharded = await _snapshot(dsn, sharded_schema, redis_url, sharded_prefix, trace_ids)
        single = await _snapshot(dsn, single_schema, redis_url, single_prefix, trace_ids)

    assert single["count"] == len(stream)
    assert len(single["runs"]) == RUNS  # type: ignore[arg-type]
    assert len(single["detections"]) >= RUNS // 5  # type: ignore[arg-type]
    assert all(g is not None for g in single["graphs"].values())  # type: ignore[union-attr]
    assert all(s is not None for s in single["hot"].values())  # type: ignore[union-attr]
    for key in ("count", "runs", "graphs", "spans", "detections", "costs", "hot"):
        assert sharded[key] == single[key], key
