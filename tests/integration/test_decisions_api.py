"""The routing decision log over HTTP (``GET /v1/decisions``, ``GET /v1/runs/{run}/decisions``)
on a running collector: decisions joined with errors, fallbacks, detections and feedback sent
through ``POST /v1/feedback``; filters, limits, plain-word errors, credentials; and
``agentmesh decisions`` reading the collector or its store.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.cli import main
from agentmesh.collector.model import SpanEventRecord, SpanRecord
from agentmesh.collector.store.factory import open_store
from agentmesh.collector.testing import (
    SpanFactory,
    routed_call_attributes,
    to_otlp_request,
    with_attributes,
)
from agentmesh.core import semconv

_S = 10**9


def _triage_run(now: int) -> list[SpanRecord]:
    """Three routed calls in a run that loops (a detection), the second failing over."""
    f = SpanFactory(start_ns=now - 60 * _S)
    root = f.workflow("triage", run_id="run-triage")
    agents = [f.agent(name, parent=root) for name in ["planner", "researcher", "writer"] * 4]
    calls: list[SpanRecord] = []
    for i, model in enumerate(["gpt-4o-mini", "claude-haiku-4-5", "gpt-4o-mini"]):
        call = with_attributes(
            f.chat(parent=agents[i], model=model, cost_usd=0.001 * (i + 1)),
            {
                **routed_call_attributes(model, f"d-triage-{i}"),
                semconv.AGENTMESH_ROUTE_CANDIDATES: ["gpt-4o-mini", "claude-haiku-4-5", "gpt-4o"],
                semconv.AGENTMESH_ROUTE_SCORES: [0.91, 0.88, 0.52],
                semconv.AGENTMESH_ROUTE_REASON: "highest expected utility",
            },
        )
        if i == 1:  # gpt-4o-mini answered 503 first; claude-haiku-4-5 took over
            fallback = SpanEventRecord(
                semconv.EVENT_FALLBACK,
                call.start_ns + 1000,
                {semconv.AGENTMESH_ROUTE_FALLBACK_FROM: "gpt-4o-mini"},
            )
            call = replace(call, events=(fallback,))
        calls.append(call)
    return [root, *agents, *calls]


def _summary_run(now: int, run_id: str, age_s: int, models: list[str]) -> list[SpanRecord]:
    f = SpanFactory(start_ns=now - age_s * _S)
    root = f.workflow("summarize", run_id=run_id)
    agent = f.agent("summarizer", parent=root)
    calls = [
        with_attributes(
            f.chat(parent=agent, model=model, cost_usd=0.02),
            routed_call_attributes(model, f"d-{run_id}-{i}", task_class="summarize"),
        )
        for i, model in enumerate(models)
    ]
    failed = replace(
        calls[-1],
        status_code="error",
        attributes={**calls[-1].attributes, semconv.ERROR_TYPE: "RateLimitError"},
    )
    return [root, agent, *calls[:-1], failed]


@asynccontextmanager
async def _collector(**settings: Any) -> AsyncIterator[tuple[Collector, dict[str, str]]]:
    config = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0, **settings
    )
    headers: dict[str, str] = {}
    if "auth_bearer_tokens" in settings:
        headers["Authorization"] = f"Bearer {settings['auth_bearer_tokens'][0]}"
    now = time.time_ns()
    spans = [
        *_triage_run(now),
        *_summary_run(now, "run-sum", 30, ["gpt-4o", "gpt-4o"]),
        *_summary_run(now, "run-old", 2 * 3600, ["gpt-4o"]),
    ]
    store = await open_store(config) if "store" in settings else MemoryStore()
    async with Collector(config, store) as collector:
        async with (
            aiohttp.ClientSession(headers=headers) as client,
            client.post(
                collector.http_endpoint + "/v1/traces",
                data=to_otlp_request(spans).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            ) as response,
        ):
            assert response.status == 200
        await collector.drain()
        yield collector, headers


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers=headers) as client,
        client.get(url) as response,
    ):
        return response.status, await response.json()


async def test_the_decision_log_joins_each_decision_with_its_outcome() -> None:
    async with _collector() as (collector, _):
        base = collector.http_endpoint
        status, body = await _get(base + "/v1/decisions")
        assert status == 200
        decisions = body["decisions"]
        assert [d["decision_id"] for d in decisions] == [  # newest call first
            "d-run-sum-1",
            "d-run-sum-0",
            "d-triage-2",
            "d-triage-1",
            "d-triage-0",
            "d-run-old-0",
        ]
        by_id = {d["decision_id"]: d for d in decisions}
        second = by_id["d-triage-1"]
        assert second["run_id"] == "run-triage"
        assert (second["chosen"], second["model"], second["fallbacks"]) == (
            "claude-haiku-4-5",
            "claude-haiku-4-5",
            ["gpt-4o-mini"],
        )
        assert second["candidates"] == ["gpt-4o-mini", "claude-haiku-4-5", "gpt-4o"]
        assert second["scores"] == [0.91, 0.88, 0.52]
        assert second["reason"] == "highest expected utility"
        assert second["features"] == {"total_chars": 80, "cluster": 0}
        assert second["cost_usd"] == pytest.approx(0.002)
        assert second["detections"] == ["handoff_loop"]  # the run looped
        assert second["quality"] == pytest.approx(0.75)
        failed = by_id["d-run-sum-1"]
        assert (failed["error"], failed["error_type"], failed["quality"]) == (
            True,
            "RateLimitError",
            0.0,
        )
        assert by_id["d-run-sum-0"]["quality"] == 1.0

        feedback = {"trace_id": second["trace_id"], "decision_id": "d-triage-1", "score": 0.2}
        async with (
            aiohttp.ClientSession() as client,
            client.post(base + "/v1/feedback", data=json.dumps(feedback).encode()) as answer,
        ):
            assert answer.status == 202, await answer.text()
        await collector.drain()
        status, run = await _get(base + "/v1/runs/run-triage/decisions")
        assert status == 200
        assert (run["run_id"], run["trace_id"]) == ("run-triage", second["trace_id"])
        assert [d["decision_id"] for d in run["decisions"]] == [  # call order
            "d-triage-0",
            "d-triage-1",
            "d-triage-2",
        ]
        assert run["decisions"][1]["feedback_score"] == 0.2
        assert run["decisions"][1]["quality"] == 0.2
        _, none = await _get(base + "/v1/runs/run-old/decisions")
        assert [d["decision_id"] for d in none["decisions"]] == ["d-run-old-0"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=2", ["d-run-sum-1", "d-run-sum-0"]),
        ("since=1h", ["d-run-sum-1", "d-run-sum-0", "d-triage-2", "d-triage-1", "d-triage-0"]),
        ("task_class=summarize", ["d-run-sum-1", "d-run-sum-0", "d-run-old-0"]),
        ("task_class=summarize&since=1h&limit=1", ["d-run-sum-1"]),
        ("model=claude-haiku-4-5", ["d-triage-1"]),
        ("model=gpt-4o-mini", ["d-triage-2", "d-triage-0"]),
        ("task_class=nothing", []),
    ],
)
async def test_the_decision_log_filters(query: str, expected: list[str]) -> None:
    async with _collector() as (collector, _):
        status, body = await _get(f"{collector.http_endpoint}/v1/decisions?{query}")
    assert status == 200
    assert [d["decision_id"] for d in body["decisions"]] == expected


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/decisions?limit=0", 400, "limit must be a whole number from 1 to 1000"),
        ("/v1/decisions?limit=1001", 400, "limit must be a whole number from 1 to 1000"),
        ("/v1/decisions?since=yesterday", 400, "since"),
        ("/v1/runs/run-nope/decisions", 404, "no run"),
        ("/v1/runs/run-/decisions", 409, "3 runs match 'run-'"),
        ("/v1/decisions/export?format=xlsx", 400, "format must be one of parquet, jsonl, csv"),
        ("/v1/decisions/export?since=yesterday", 400, "since 'yesterday': expected a duration"),
        ("/v1/decisions/export?until=soon", 400, "until 'soon'"),
        ("/v1/decisions/export?limit=0", 400, "limit must be a whole number from 1 up"),
    ],
)
async def test_a_wrong_decisions_request_is_answered_in_plain_words(
    path: str, status: int, message: str
) -> None:
    async with _collector() as (collector, _):
        answer = await _get(collector.http_endpoint + path)
    assert answer[0] == status
    assert message in answer[1]["error"]


async def test_the_decision_log_needs_the_collectors_credentials() -> None:
    async with _collector(auth_bearer_tokens=["s3cret"]) as (collector, headers):
        base = collector.http_endpoint
        async with aiohttp.ClientSession() as client:
            for path in (
                "/v1/decisions",
                "/v1/runs/run-sum/decisions",
                "/v1/decisions/export",
            ):
                async with client.get(base + path) as answer:
                    assert answer.status == 401
        status, body = await _get(base + "/v1/decisions?limit=1", headers)
    assert (status, len(body["decisions"])) == (200, 1)


async def test_agentmesh_decisions_reads_a_collector_or_its_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the table's width: no cell wrapped
    db = tmp_path / "decisions.duckdb"
    async with _collector(store="duckdb", duckdb_path=str(db)) as (collector, _):
        base = collector.http_endpoint
        _, listed = await _get(base + "/v1/decisions?since=1h&task_class=triage")
        # the CLI blocks on HTTP: run it in a thread, the collector's loop keeps serving
        argv = ["decisions", "--collector", base, "--since", "1h", "--task-class", "triage"]
        assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line) for line in lines] == listed["decisions"]
        assert [d["decision_id"] for d in listed["decisions"]] == [
            "d-triage-2",
            "d-triage-1",
            "d-triage-0",
        ]
        assert await asyncio.to_thread(main, ["decisions", "--collector", base]) == 0
        table = capsys.readouterr().out
        assert "routing decisions (6)" in table
        assert "RateLimitError" in table
        assert "ok after gpt-4o-mini" in table
    # the store the collector wrote, read directly once it has stopped
    argv = ["decisions", "--db", str(db), "--model", "gpt-4o", "--limit", "2", "--json"]
    assert await asyncio.to_thread(main, argv) == 0
    from_store = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["decision_id"] for d in from_store] == ["d-run-sum-1", "d-run-sum-0"]
    assert await asyncio.to_thread(main, ["decisions", "--db", str(db), "--limit", "0"]) == 2
    assert "--limit must be from 1 to 1000" in capsys.readouterr().err


async def test_the_decisions_export_comes_from_a_running_collector(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "decisions.duckdb"
    async with _collector(store="duckdb", duckdb_path=str(db)) as (collector, _):
        base = collector.http_endpoint
        async with (
            aiohttp.ClientSession() as client,
            client.get(base + "/v1/decisions/export?format=jsonl&since=1h&limit=4") as answer,
        ):
            assert answer.status == 200
            assert answer.headers["Content-Type"] == "application/x-ndjson"
            assert json.loads(answer.headers["X-AgentMesh-Export-Rows"]) == {"decisions": 4}
            lines = (await answer.text()).splitlines()
        # the newest 4 of the last hour: run-old's decision (2 h ago) is left out
        assert sorted(json.loads(line)["decision_id"] for line in lines) == [
            "d-run-sum-0",
            "d-run-sum-1",
            "d-triage-1",
            "d-triage-2",
        ]
        # the CLI downloads it (blocking on HTTP: in a thread, the loop keeps serving)
        served = tmp_path / "served.parquet"
        argv = ["export", "decisions", "--collector", base, "-o", str(served), "--since", "1h"]
        assert await asyncio.to_thread(main, argv) == 0
        names = await asyncio.to_thread(lambda: {p.name for p in tmp_path.iterdir()})
        assert "served.parquet" in names
        assert not [name for name in names if name.endswith(".partial")]
    # the same rows as an export of the store the collector wrote, read once it has stopped
    direct = tmp_path / "direct.parquet"
    argv = ["export", "decisions", "--db", str(db), "-o", str(direct), "--since", "1h"]
    assert await asyncio.to_thread(main, argv) == 0
    query = "SELECT * EXCLUDE (features), features::VARCHAR FROM '{}' ORDER BY decision_id"
    with duckdb.connect() as con:
        from_collector = con.execute(query.format(served)).fetchall()
        from_store = con.execute(query.format(direct)).fetchall()
    assert len(from_collector) == 5
    assert from_collector == from_store


def test_the_decisions_export_cli_reports_an_unreachable_collector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d.parquet"
    argv = ["export", "decisions", "--collector", "http://127.0.0.1:9", "-o", str(out)]
    assert main(argv) == 2
    assert "collector at http://127.0.0.1:9 is unreachable" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
