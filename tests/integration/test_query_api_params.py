"""The query parameters of every HTTP API route, on a running collector.

A parameter a route does not take, or one given twice, is a ``400`` naming it and listing what
the route takes (never a filter silently dropped); ``before`` is read strictly, in the form the
listing writes as ``next_before``; the long-polled documents (``/v1/control``,
``/v1/route-table``) answer their wrong parameters with the same ``{"error": ...}`` JSON.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.testing import SpanFactory, to_otlp_request


@asynccontextmanager
async def _collector() -> AsyncGenerator[str]:
    """A collector holding one looping run (``run-loop``, with a detection); yield its URL."""
    config = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0
    )
    f = SpanFactory(start_ns=time.time_ns() - 60 * 10**9)
    root = f.workflow("research", run_id="run-loop")
    agents = [f.agent(name, parent=root) for name in ["planner", "researcher", "writer"] * 4]
    body = to_otlp_request([root, *agents]).SerializeToString()
    async with Collector(config, MemoryStore()) as collector:
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                collector.http_endpoint + "/v1/traces",
                data=body,
                headers={"Content-Type": "application/x-protobuf"},
            ) as response,
        ):
            assert response.status == 200
        await collector.drain()
        yield collector.http_endpoint


async def _get(url: str) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        return response.status, response.content_type, await response.json(content_type=None)


# each route, a parameter it does not take, and the ones it takes (as the answer lists them)
RUNS_TAKE = "before, conversation, limit, since, state, workflow"
DECISIONS_TAKE = "before, limit, model, since, task_class"
UNKNOWN = [
    ("/v1/runs?until=1h", "'until' on /v1/runs", RUNS_TAKE),
    ("/v1/runs/run-loop?limit=1", "'limit' on /v1/runs/{run}", "no parameters"),
    ("/v1/runs/run-loop/spans?since=1h", "'since' on /v1/runs/{run}/spans", "limit"),
    ("/v1/detections?run=run-loop", "'run' on /v1/detections", "before, limit, since, type"),
    ("/v1/costs?limit=5", "'limit' on /v1/costs", "group_by, since"),
    ("/v1/decisions?until=1h", "'until' on /v1/decisions", DECISIONS_TAKE),
    ("/v1/runs/run-loop/decisions?limit=1", "'limit' on /v1/runs/{run}/decisions", "no parameters"),
    ("/v1/export?format=csv&since=1s", "'since' on /v1/export", "format"),
    (
        "/v1/decisions/export?before=1",
        "'before' on /v1/decisions/export",
        "format, limit, since, until",
    ),
    ("/v1/control?after=1&wiat=5", "'wiat' on /v1/control", "after, wait"),
    ("/v1/route-table?after=1&foo=1", "'foo' on /v1/route-table", "after, wait"),
]


async def test_a_parameter_a_route_does_not_take_is_a_400_naming_it() -> None:
    async with _collector() as base:
        for path, named, takes in UNKNOWN:
            status, content_type, body = await _get(base + path)
            assert (status, content_type) == (400, "application/json"), path
            assert body == {"error": f"unknown parameter {named}; it takes {takes}"}, path
        status, _, body = await _get(base + "/v1/runs?until=1h&state=failed&after=2")
        assert (status, body["error"]) == (
            400,
            f"unknown parameters 'after', 'until' on /v1/runs; it takes {RUNS_TAKE}",
        )


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/v1/detections?type=handoff_loop&type=ping_pong", "'type' given more than once"),
        ("/v1/runs?limit=1&limit=5", "'limit' given more than once"),
        ("/v1/control?after=1&after=2", "'after' given more than once"),
    ],
)
async def test_a_parameter_given_twice_is_a_400(path: str, named: str) -> None:
    async with _collector() as base:
        status, _, body = await _get(base + path)
    assert status == 400
    assert named in body["error"]


async def test_what_the_cli_and_the_dashboard_send_is_taken() -> None:
    async with _collector() as base:
        for path in [  # the parameters `agentmesh runs|decisions|detections|costs` and /ui/ send
            "/v1/runs?limit=20&since=1h&state=paused&conversation=c&workflow=w&before=1",
            "/v1/decisions?limit=20&since=1h&task_class=triage&model=gpt-4o-mini&before=1",
            "/v1/detections?limit=20&since=1h&type=handoff_loop&before=1",
            "/v1/costs?group_by=model&since=1h",
            "/v1/runs/run-loop/spans?limit=10",
            "/v1/control?after=0&wait=0",
            "/v1/route-table?after=0&wait=0",
        ]:
            assert (await _get(base + path))[0] == 200, path


async def test_before_is_read_in_the_form_next_before_is_written() -> None:
    async with _collector() as base:
        _, _, found = await _get(base + "/v1/detections")
        (loop,) = found["detections"]
        cursor = f"{loop['detected_at_ns']}:{loop['id']}"
        status, _, older = await _get(base + f"/v1/detections?before={cursor}")
        assert (status, older["detections"]) == (200, [])
        status, _, same = await _get(base + f"/v1/detections?before={loop['detected_at_ns'] + 1}")
        assert (status, same["detections"]) == (200, found["detections"])
        _, _, runs = await _get(base + "/v1/runs")
        (run,) = runs["runs"]
        status, _, older = await _get(base + f"/v1/runs?before={run['start_ns']}:{run['trace_id']}")
        assert (status, older["runs"]) == (200, [])
        for path in [
            "/v1/detections?before=1:2:3",  # was 200 with nothing: no id has a colon
            f"/v1/detections?before={loop['detected_at_ns']}:{loop['id']}:x",
            f"/v1/detections?before={loop['detected_at_ns']}:",
            "/v1/runs?before=1:2:3",
            f"/v1/runs?before={run['start_ns']}:{run['trace_id'][:-1]}",
            f"/v1/runs?before={run['start_ns']}:{run['trace_id'].upper()}",
            f"/v1/runs?before={2**63}",  # past what a store holds: was a store error
            "/v1/decisions?before=1:",
            "/v1/decisions?before=-1",
        ]:
            status, _, body = await _get(base + path)
            assert status == 400, path
            assert body["error"].startswith("before must be the next_before of an earlier"), path


@pytest.mark.parametrize(
    "path",
    ["/v1/runs?before=\u00b2", "/v1/runs?limit=\u00b2", "/v1/decisions/export?limit=\u00b2"],
)
async def test_digits_other_than_ascii_are_a_400_not_a_500(path: str) -> None:
    async with _collector() as base:
        status, _, body = await _get(base + path)
    assert status == 400, body
    assert "must be" in body["error"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("after=abc", "after must be a version (an integer), got 'abc'"),
        ("wait=-1", "wait must be between 0 and 30 seconds, got -1.0"),
        ("after=1&wait=31", "wait must be between 0 and 30 seconds, got 31.0"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/control", "/v1/route-table"])
async def test_a_long_polled_document_answers_a_wrong_parameter_in_json(
    path: str, query: str, message: str
) -> None:
    async with _collector() as base:
        status, content_type, body = await _get(f"{base}{path}?{query}")
    assert (status, content_type, body) == (400, "application/json", {"error": message})
