"""``POST /v1/feedback`` on a real collector (loopback, real DuckDB file): stored, joined."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from agentmesh.collector import Collector, CollectorSettings, DuckDBStore, MemoryStore, Pipeline
from agentmesh.collector.model import AttributeValue, SpanRecord
from agentmesh.collector.receiver.http_server import OtlpHttpReceiver
from agentmesh.collector.routing.feedback import (
    FEEDBACK_COMMENT,
    FEEDBACK_SPAN_NAME,
    Feedback,
    feedback_routes,
)
from agentmesh.collector.routing.outcomes import decision_outcomes
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import semconv

PROTOBUF = "application/x-protobuf"


def _settings(**overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "grpc_port": 0,
        "http_port": 0,
        "grpc_grace_seconds": 1.0,
        "decode_workers": 0,  # no worker processes to start: quicker; one test keeps them
    }
    return CollectorSettings.load(**(values | overrides))


def _run(f: SpanFactory, decision_id: str = "d-1") -> tuple[list[SpanRecord], SpanRecord]:
    root = f.workflow("team", run_id="run-fb")
    agent = f.agent("triager", parent=root)
    attrs: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.AGENTMESH_ROUTE_DECISION_ID: decision_id,
        semconv.AGENTMESH_ROUTE_POLICY: "utility",
        semconv.AGENTMESH_ROUTE_CHOSEN: "gpt-4o-mini",
        semconv.AGENTMESH_ROUTE_MODE: "shadow",
        semconv.AGENTMESH_RUN_ID: "run-fb",
    }
    call = f.span("chat gpt-4o-mini", parent=agent, kind="client", attributes=attrs)
    return [root, agent, call], call


async def _post(session: aiohttp.ClientSession, url: str, body: object) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.text()


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]
        await asyncio.sleep(0)


async def _export(session: aiohttp.ClientSession, base: str, spans: list[SpanRecord]) -> None:
    body = to_otlp_request(spans).SerializeToString()
    async with session.post(
        f"{base}/v1/traces", data=body, headers={"Content-Type": PROTOBUF}
    ) as response:
        assert response.status == 200


async def test_feedback_is_stored_as_a_span_and_joined_with_the_decision(tmp_path: Path) -> None:
    async with (
        DuckDBStore(tmp_path / "fb.duckdb") as store,
        Collector(_settings(decode_workers=-1), store) as collector,
        aiohttp.ClientSession() as session,
    ):
        base = collector.http_endpoint
        f = SpanFactory()
        spans, call = _run(f)
        await _export(session, base, spans)
        await collector.drain()

        status, text = await _post(
            session,
            f"{base}/v1/feedback",
            {"trace_id": f.trace_id, "decision_id": "d-1", "score": 0.9, "comment": "great"},
        )
        assert status == 202, text
        answer = json.loads(text)
        assert answer["trace_id"] == f.trace_id
        assert answer["parent_span_id"] == call.span_id  # found in the store
        assert answer["decision_found"] is True
        await collector.drain()

        stored = {s.span_id: s for s in await store.spans(f.trace_id)}
        feedback = stored[answer["span_id"]]
        assert feedback.name == FEEDBACK_SPAN_NAME
        assert feedback.parent_span_id == call.span_id
        assert feedback.attributes[semconv.AGENTMESH_ROUTE_DECISION_ID] == "d-1"
        assert feedback.attributes[semconv.AGENTMESH_FEEDBACK_SCORE] == 0.9
        assert feedback.attributes[FEEDBACK_COMMENT] == "great"
        assert feedback.attributes[semconv.AGENTMESH_RUN_ID] == "run-fb"

        [outcome] = await decision_outcomes(store)
        assert (outcome.decision_id, outcome.feedback_score, outcome.quality) == ("d-1", 0.9, 0.9)

        # A later score on the given span wins; the graph keeps its run and agents.
        status, text = await _post(
            session,
            f"{base}/v1/feedback",
            {"trace_id": f.trace_id, "span_id": call.span_id, "decision_id": "d-1", "score": 0},
        )
        assert status == 202, text
        assert json.loads(text)["parent_span_id"] == call.span_id
        await collector.drain()
        [outcome] = await decision_outcomes(store)
        assert outcome.feedback_score == 0.0
        graph = await store.graph(f.trace_id)
        assert graph is not None
        assert graph.run.run_id == "run-fb"
        assert [a.name for a in graph.agents] == ["triager"]
        assert graph.run.span_count == 5


async def test_feedback_before_the_decision_arrives_is_joined_later() -> None:
    store = MemoryStore()
    async with Collector(_settings(), store) as collector, aiohttp.ClientSession() as session:
        base = collector.http_endpoint
        f = SpanFactory()
        spans, _ = _run(f, "d-early")
        status, text = await _post(
            session,
            f"{base}/v1/feedback",
            {"trace_id": f.trace_id.upper(), "decision_id": "d-early", "score": 0.25},
        )
        assert status == 202, text
        assert json.loads(text)["parent_span_id"] is None
        assert json.loads(text)["decision_found"] is False  # told, and joined when it arrives
        await _export(session, base, spans)
        await collector.drain()
        [outcome] = await decision_outcomes(store)
        assert outcome.feedback_score == 0.25
        graph = await store.graph(f.trace_id)
        assert graph is not None
        assert graph.run.run_id == "run-fb"


async def test_feedback_after_a_restart_does_not_replace_the_stored_graph(tmp_path: Path) -> None:
    path = tmp_path / "restart.duckdb"
    f = SpanFactory()
    spans, call = _run(f, "d-r")
    async with (
        DuckDBStore(path) as store,
        Collector(_settings(), store) as collector,
        aiohttp.ClientSession() as session,
    ):
        await _export(session, collector.http_endpoint, spans)
        await collector.drain()
    async with (
        DuckDBStore(path) as store,
        Collector(_settings(), store) as collector,
        aiohttp.ClientSession() as session,
    ):
        body = {"trace_id": f.trace_id, "decision_id": "d-r", "score": 1}
        status, text = await _post(session, f"{collector.http_endpoint}/v1/feedback", body)
        assert status == 202, text
        await collector.drain()
        graph = await store.graph(f.trace_id)
        assert graph is not None
        assert graph.run.span_count == 3  # the run's graph, not one rebuilt from the feedback
        assert [a.name for a in graph.agents] == ["triager"]
        assert len(await store.spans(f.trace_id)) == 4
        [outcome] = await decision_outcomes(store)
        assert (outcome.span_id, outcome.feedback_score) == (call.span_id, 1.0)


GOOD = {"trace_id": "ab" * 16, "decision_id": "d-1", "score": 0.5}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        ([GOOD], "the body must be a JSON object"),
        ({"decision_id": "d-1", "score": 0.5}, "trace_id is required"),
        (GOOD | {"trace_id": "xyz"}, "trace_id must be 32 hex digits"),
        (GOOD | {"trace_id": "0" * 32}, "trace_id must not be all zeros"),
        (GOOD | {"span_id": "12345"}, "span_id must be 16 hex digits"),
        ({"trace_id": "ab" * 16, "score": 0.5}, "decision_id is required"),
        (GOOD | {"decision_id": " "}, "decision_id is required"),
        ({"trace_id": "ab" * 16, "decision_id": "d-1"}, "score is required"),
        (GOOD | {"score": 1.5}, "score must be between 0 and 1, got 1.5"),
        (GOOD | {"score": -0.1}, "score must be between 0 and 1"),
        (GOOD | {"score": "high"}, "score must be a number between 0 and 1"),
        (GOOD | {"score": True}, "score must be a number between 0 and 1"),
        (b'{"trace_id": "' + b"ab" * 16 + b'", "decision_id": "d", "score": NaN}', "score must"),
        (GOOD | {"comment": 3}, "comment must be a string"),
        (GOOD | {"comment": "x" * 5000}, "comment is longer than 4096"),
    ],
)
async def test_bad_bodies_answer_400_and_the_server_keeps_serving(
    body: object, message: str
) -> None:
    store = MemoryStore()
    async with Collector(_settings(), store) as collector, aiohttp.ClientSession() as session:
        url = f"{collector.http_endpoint}/v1/feedback"
        status, text = await _post(session, url, body)
        assert status == 400
        assert message in json.loads(text)["error"]  # {"error": ...}, as the rest of the API
        status, _ = await _post(session, url, GOOD)
        assert status == 202
        await collector.drain()
        assert await store.count_spans() == 1


async def test_method_size_and_full_queue() -> None:
    store = MemoryStore()
    pipeline = Pipeline(store, max_batches=1)
    heard: list[Feedback] = []

    def listener(feedback: Feedback, span: SpanRecord) -> None:
        heard.append(feedback)
        raise RuntimeError("a broken trainer")

    routes = feedback_routes(pipeline, store, on_feedback=listener, retry_after_seconds=3)
    async with (
        OtlpHttpReceiver(pipeline, _settings(), extra_routes=routes) as receiver,
        aiohttp.ClientSession() as session,
    ):
        url = f"{receiver.endpoint}/v1/feedback"
        async with session.get(url) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"
        status, text = await _post(session, url, b"{" + b" " * 70_000 + b"}")
        assert status == 413
        assert "over the limit of 65536 bytes" in json.loads(text)["error"]
        # The pipeline is not started: it refuses, the client is told to retry.
        async with session.post(url, json=GOOD) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "3"
            assert "queue is full" in await response.text()
        async with pipeline:
            status, text = await _post(session, url, GOOD | {"comment": "ok"})
            assert status == 202, text  # the listener's error is logged, not answered
            await pipeline.drain()
            # Chunked bodies (no Content-Length) are read whole, and capped all the same.
            whole = json.dumps(GOOD | {"comment": "c" * 3000}).encode()
            async with session.post(url, data=_chunks(whole, 100)) as response:
                assert response.status == 202, await response.text()
            async with session.post(url, data=_chunks(b" " * 70_000, 7_000)) as response:
                assert response.status == 413
            await pipeline.drain()
        assert [h.comment for h in heard] == ["ok", "c" * 3000]
        assert await store.count_spans() == 2
