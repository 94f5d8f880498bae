"""The routing loop: routed calls reach the collector, the trainer learns, the app's policy follows.

A real :class:`Collector` (OTLP/gRPC in, ``GET /v1/route-table`` out) trains on model-call spans
exported by the OpenTelemetry SDK over gRPC, carrying routing decisions the way the
instrumentation records them. An app-side :class:`RouteTableClient` follows the table and a
:class:`UtilityPolicy` reads it: with no outcome it keeps the requested model; once the cheap
model proves as good it moves there; when the cheap model starts failing it moves back.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.testing import routed_call_attributes
from agentmesh.core import semconv
from agentmesh.instrumentation import route_table
from agentmesh.instrumentation.settings import InstrumentationSettings
from agentmesh.router import RouteTable, Tradeoff
from agentmesh.router.request import RouteRequest
from agentmesh.router.utility import UtilityPolicy

pytestmark = pytest.mark.asyncio

WAIT = 15.0
_ids = itertools.count()


def _settings() -> CollectorSettings:
    return CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        grpc_grace_seconds=1.0,
        decode_workers=0,
        router_publish_seconds=0.05,
        router_modes={"*": "shadow", "triage": "enforce"},
        router_tradeoffs={"*": {"cost_weight": 100.0, "latency_weight": 0.0}},
    )


@pytest.fixture
def following() -> Iterator[None]:
    yield
    route_table.shutdown_route_table()


def _emit(endpoint: str, model: str, n: int, *, ok: bool, cost: float) -> None:
    """Export ``n`` routed ``chat`` spans for ``model`` (in a worker thread)."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "router-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    tracer = provider.get_tracer("agentmesh.test")
    for _ in range(n):
        span = tracer.start_span(
            f"chat {model}",
            attributes={
                semconv.GEN_AI_OPERATION_NAME: "chat",
                semconv.GEN_AI_PROVIDER_NAME: "openai",
                semconv.GEN_AI_REQUEST_MODEL: model,
                semconv.AGENTMESH_COST_USD: cost,
                **routed_call_attributes(model, f"d-{next(_ids)}"),
            },
        )
        if not ok:
            span.set_attribute(semconv.ERROR_TYPE, "InternalServerError")
            span.set_status(Status(StatusCode.ERROR, "503"))
        span.end()
    provider.shutdown()


async def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def _calls(table: RouteTable, model: str) -> int:
    stats = table.models.get(model)
    return stats.calls if stats is not None else 0


async def test_outcomes_train_the_table_and_the_app_follows(
    tmp_path: Path, following: None
) -> None:
    async with Collector(_settings(), MemoryStore()) as collector:
        # The configured modes and trade-offs go out at start, before any outcome.
        assert await _eventually(lambda: collector.route_table.published.default_mode == "shadow")
        client = route_table.configure_route_table(
            settings=InstrumentationSettings.load(
                control_url=collector.http_endpoint, route_table_cache=tmp_path / "rt.json"
            )
        )
        assert client is not None
        served = route_table.current_route_table
        assert await _eventually(lambda: served().mode_for("triage", "off") == "enforce")
        assert served().mode_for("chat", "off") == "shadow"
        policy = UtilityPolicy(served, candidates={"*": ("gpt-4o", "gpt-4o-mini")}, exploration=0.0)
        ask = RouteRequest("openai", "gpt-4o", task_class="triage", mode="enforce")
        assert policy.decide(ask).reason.startswith("requested model")

        # Both models answer well; the cheap one wins on utility.
        await asyncio.to_thread(_emit, collector.endpoint, "gpt-4o", 15, ok=True, cost=0.004)
        await asyncio.to_thread(_emit, collector.endpoint, "gpt-4o-mini", 15, ok=True, cost=3e-4)
        assert await _eventually(lambda: _calls(served(), "gpt-4o-mini") == 15)
        decision = policy.decide(ask)
        assert decision.chosen == "gpt-4o-mini"
        assert decision.table_version == served().version
        stats = served().models["gpt-4o-mini"]
        assert stats.cost_mean_usd == pytest.approx(3e-4)
        assert stats.error_rate == 0.0

        # The cheap model starts failing: its outcomes pull it below the expensive one.
        await asyncio.to_thread(_emit, collector.endpoint, "gpt-4o-mini", 40, ok=False, cost=0.0)
        assert await _eventually(lambda: _calls(served(), "gpt-4o-mini") == 55)
        assert served().models["gpt-4o-mini"].errors == 40
        assert policy.decide(ask).chosen == "gpt-4o"
        trainer = collector.router_trainer
        assert trainer is not None
        assert trainer.outcomes == 70


async def test_without_training_the_configured_modes_and_trade_offs_still_reach_the_app(
    tmp_path: Path, following: None
) -> None:
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        grpc_grace_seconds=1.0,
        decode_workers=0,
        router_training=False,
        router_modes={"*": "shadow", "triage": "enforce"},
        router_tradeoffs={"*": {"cost_weight": 100.0, "latency_weight": 0.0}},
    )
    async with Collector(settings, MemoryStore()) as collector:
        assert collector.router_trainer is None
        assert collector.route_table.published.version == 1  # published at start
        client = route_table.configure_route_table(
            settings=InstrumentationSettings.load(
                control_url=collector.http_endpoint, route_table_cache=tmp_path / "rt.json"
            )
        )
        assert client is not None
        served = route_table.current_route_table
        assert await _eventually(lambda: served().version == 1)
        assert served().mode_for("triage", "off") == "enforce"
        assert served().mode_for("chat", "off") == "shadow"
        assert served().tradeoff_for("chat") == Tradeoff(100.0, 0.0)
        assert served().predictor is None  # nothing is learned
