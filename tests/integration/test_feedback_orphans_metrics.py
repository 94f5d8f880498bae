"""A real collector: a score posted before its decision waits, shows on ``/metrics``, and trains."""

from __future__ import annotations

import json

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.model import AttributeValue
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import semconv


async def _metrics(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("agentmesh_feedback_")
    }


async def test_feedback_before_its_decision_is_held_counted_and_then_learned() -> None:
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0, router_training=True
    )
    async with (
        Collector(settings, MemoryStore()) as collector,
        aiohttp.ClientSession() as session,
    ):
        base = collector.http_endpoint
        f = SpanFactory()
        body = {"trace_id": f.trace_id, "decision_id": "d-first", "score": 0.0}
        async with session.post(f"{base}/v1/feedback", data=json.dumps(body)) as response:
            assert response.status == 202
            assert (await response.json())["decision_found"] is False
        await collector.drain()
        assert collector.stats.feedback_held == 1
        before = await _metrics(session, base)
        assert before["agentmesh_feedback_held"] == 1.0
        assert before["agentmesh_feedback_orphans_expired_total"] == 0.0
        assert before["agentmesh_feedback_orphans_evicted_total"] == 0.0

        attrs: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
            semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            semconv.AGENTMESH_ROUTE_DECISION_ID: "d-first",
            semconv.AGENTMESH_ROUTE_CHOSEN: "gpt-4o-mini",
            semconv.AGENTMESH_ROUTE_POLICY: "utility",
        }
        call = f.span("chat gpt-4o-mini", kind="client", attributes=attrs)
        async with session.post(
            f"{base}/v1/traces",
            data=to_otlp_request([call]).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        ) as response:
            assert response.status == 200
        await collector.drain()
        after = await _metrics(session, base)
        trainer = collector.router_trainer
        assert trainer is not None
        table = await trainer.publish_now()
    assert after["agentmesh_feedback_held"] == 0.0
    assert after["agentmesh_feedback_joined_late_total"] == 1.0
    assert table.models["gpt-4o-mini"].quality_mean == pytest.approx(0.0)  # the score was used
