"""The query API (``GET /v1/runs``, ``/v1/runs/{run}``, ``/v1/runs/{run}/spans``, ``/v1/costs``)
of a running collector,
and ``agentmesh runs`` / ``agentmesh graph`` reading it with ``--collector`` (no store opened).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import time
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import pytest
from aiohttp import web

from agentmesh.collector import Collector, CollectorSettings, DuckDBStore, MemoryStore
from agentmesh.collector.cli import main
from agentmesh.collector.export import export_store
from agentmesh.collector.testing import SpanFactory, to_otlp_request, with_attributes
from agentmesh.core import semconv


def _runs() -> bytes:
    now = time.time_ns()
    loop = SpanFactory(start_ns=now - 60 * 10**9)
    root = with_attributes(  # it stopped to ask a human, on thread-1
        loop.workflow("research", run_id="run-loop"),
        {semconv.AGENTMESH_RUN_PAUSED: True, semconv.GEN_AI_CONVERSATION_ID: "thread-1"},
    )
    agents = [loop.agent(name, parent=root) for name in ["planner", "researcher", "writer"] * 4]
    chat = loop.chat(parent=agents[0], model="gpt-4o-mini", cost_usd=0.25)
    clean = SpanFactory(start_ns=now - 30 * 10**9)
    root2 = with_attributes(  # it continues the loop's run
        clean.workflow("research", run_id="run-clean"),
        {  # and stopped to ask again
            semconv.AGENTMESH_RESUME_FROM_RUN_ID: "run-loop",
            semconv.GEN_AI_CONVERSATION_ID: "thread-1",
            semconv.AGENTMESH_RUN_PAUSED: True,
        },
    )
    agents2 = [clean.agent(name, parent=root2) for name in ["planner", "writer"]]
    return to_otlp_request([root, *agents, chat, root2, *agents2]).SerializeToString()


@asynccontextmanager
async def _collector(**settings: Any) -> AsyncIterator[Collector]:
    config = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0, **settings
    )
    async with Collector(config, MemoryStore()) as collector:
        headers = {"Content-Type": "application/x-protobuf"}
        if "auth_bearer_tokens" in settings:
            headers["Authorization"] = f"Bearer {settings['auth_bearer_tokens'][0]}"
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                collector.http_endpoint + "/v1/traces", data=_runs(), headers=headers
            ) as response,
        ):
            assert response.status == 200
        await collector.drain()
        yield collector


async def _get(url: str, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client, client.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_runs_a_run_graph_and_costs_over_http() -> None:
    async with _collector() as collector:
        base = collector.http_endpoint
        status, listed = await _get(base + "/v1/runs")
        assert status == 200
        assert {r["run_id"] for r in listed["runs"]} == {"run-loop", "run-clean"}
        loop = next(r for r in listed["runs"] if r["run_id"] == "run-loop")
        assert loop["agents"] == ["planner", "researcher", "writer"]
        assert loop["detections"] == 1
        assert (await _get(base + "/v1/runs?limit=1"))[1]["runs"] == listed["runs"][:1]
        assert (await _get(base + "/v1/runs?since=1h"))[1] == listed
        assert [r["run_id"] for r in (await _get(base + "/v1/runs?since=45s"))[1]["runs"]] == [
            "run-clean"
        ]

        assert listed["next_before"] is None  # not a full page
        first = (await _get(base + "/v1/runs?limit=1"))[1]
        newest = listed["runs"][0]
        assert first["next_before"] == f"{newest['start_ns']}:{newest['trace_id']}"  # as text
        status, older = await _get(base + f"/v1/runs?limit=1&before={first['next_before']}")
        assert (status, [r["run_id"] for r in older["runs"]]) == (200, ["run-loop"])
        assert older["next_before"] is None  # the last page, though full: no empty page after it
        # a bare time: the runs that started before it
        status, older = await _get(base + f"/v1/runs?before={newest['start_ns']}")
        assert (status, [r["run_id"] for r in older["runs"]]) == (200, ["run-loop"])

        for query, expected in [
            ("state=paused", ["run-clean"]),  # waiting for input
            ("state=resumed", ["run-loop"]),  # paused, then continued by run-clean
            ("state=complete", []),
            ("state=live", []),
            ("conversation=thread-1", ["run-clean", "run-loop"]),
            ("conversation=thread-1&state=resumed", ["run-loop"]),
            ("conversation=thread-2", []),
            ("workflow=research", ["run-clean", "run-loop"]),
            ("workflow=research&state=resumed", ["run-loop"]),
            ("workflow=Research", []),  # exactly
        ]:
            status, filtered = await _get(base + "/v1/runs?" + query)
            assert (status, [r["run_id"] for r in filtered["runs"]]) == (200, expected), query

        status, one = await _get(base + "/v1/runs/run-lo")  # a unique prefix
        assert status == 200
        assert one["graph"]["run"] == loop
        assert [a["name"] for a in one["graph"]["agents"]] == ["planner", "researcher", "writer"]
        assert len(one["graph"]["handoffs"]) == 11
        assert [d["type"] for d in one["detections"]] == ["handoff_loop"]
        clean = next(r for r in listed["runs"] if r["run_id"] == "run-clean")
        assert (clean["resumed_from"], loop["resumed_from"]) == ("run-loop", None)
        assert (clean["resumptions"], loop["resumptions"]) == (0, 1)
        assert one["resumed_by"] == [clean]  # the runs that continue it
        assert (await _get(base + "/v1/runs/run-clean"))[1]["resumed_by"] == []
        status, by_trace = await _get(base + "/v1/runs/" + loop["trace_id"])
        assert (status, by_trace) == (200, one)

        status, found = await _get(base + "/v1/detections")
        assert status == 200
        assert found["detections"] == one["detections"]
        for query, count in [("?type=handoff_loop", 1), ("?type=ping_pong", 0), ("?since=1h", 1)]:
            assert len((await _get(base + "/v1/detections" + query))[1]["detections"]) == count
        assert found["next_before"] is None  # nothing older
        (only,) = found["detections"]
        assert (await _get(base + "/v1/detections?limit=1"))[1] == found  # the last page
        cursor = f"{only['detected_at_ns']}:{only['id']}"
        status, older = await _get(base + f"/v1/detections?before={cursor}")
        assert (status, older) == (200, {"detections": [], "next_before": None})
        status, same = await _get(base + f"/v1/detections?before={only['detected_at_ns'] + 1}")
        assert (status, same["detections"]) == (200, found["detections"])

        status, costs = await _get(base + "/v1/costs?group_by=agent")
        assert status == 200
        planner = next(c for c in costs["costs"] if c["key"] == "planner")
        assert (planner["llm_calls"], planner["cost_usd"]) == (1, 0.25)
        status, by_model = await _get(base + "/v1/costs?group_by=model&since=1d")
        assert status == 200
        assert [c["key"] for c in by_model["costs"]] == ["gpt-4o-mini"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/runs/nope", 404, "no run matches 'nope'"),
        ("/v1/runs/run-", 409, "2 runs match 'run-'"),
        ("/v1/runs?limit=0", 400, "limit must be a whole number from 1 to 1000, not '0'"),
        (
            "/v1/runs?since=soon",
            400,
            "since 'soon': expected a duration (90s, 15m, 24h, 7d) or an ISO",
        ),
        ("/v1/costs?group_by=team", 400, "group_by must be agent or model, not 'team'"),
        ("/v1/runs/nope/spans", 404, "no run matches 'nope'"),
        ("/v1/runs/run-/spans", 409, "2 runs match 'run-'"),
        ("/v1/runs/run-loop/spans?limit=x", 400, "limit must be a whole number from 1 to 50000"),
        ("/v1/runs?before=yesterday", 400, "before must be the next_before of an earlier answer"),
        (
            "/v1/runs?state=waiting",
            400,
            "state must be one of live, paused, resumed, failed, interrupted, complete",
        ),
        ("/v1/detections?limit=1001", 400, "limit must be a whole number from 1 to 1000"),
        ("/v1/detections?before=:d1", 400, "before must be the next_before of an earlier answer"),
        ("/v1/export?format=xlsx", 400, "format must be one of parquet, csv, json, not 'xlsx'"),
    ],
)
async def test_a_wrong_request_is_answered_in_plain_words(
    path: str, status: int, message: str
) -> None:
    async with _collector() as collector:
        answer = await _get(collector.http_endpoint + path)
    assert answer[0] == status
    assert message in answer[1]["error"]


async def test_a_method_a_path_does_not_serve_is_405_and_head_is_served_with_get() -> None:
    async with _collector() as collector, aiohttp.ClientSession() as client:
        base = collector.http_endpoint
        async with client.post(base + "/v1/runs") as answer:  # was 404 "no such path"
            assert (answer.status, answer.headers["Allow"]) == (405, "GET, HEAD")
            assert "POST is not served at '/v1/runs'" in await answer.text()
        async with client.delete(base + "/v1/runs/run-loop") as answer:
            assert answer.status == 405
        for path in ("/healthz", "/readyz", "/ui/", "/v1/runs"):  # probes send HEAD
            async with client.head(base + path) as answer:
                assert answer.status == 200, path
        async with client.head(base + "/nope") as answer:
            assert answer.status == 404


async def test_a_runs_spans_with_what_the_graph_reads_of_them() -> None:
    async with _collector() as collector:
        base = collector.http_endpoint
        status, body = await _get(base + "/v1/runs/run-loop/spans")
        assert status == 200
        assert (body["run_id"], body["truncated"]) == ("run-loop", False)
        spans = body["spans"]
        assert len(spans) == 14  # the workflow, 12 agent steps, one chat
        assert [s["start_ns"] for s in spans] == sorted(s["start_ns"] for s in spans)
        chat = next(s for s in spans if s["operation"] == "chat")
        assert (chat["model"], chat["cost_usd"], chat["agent"]) == ("gpt-4o-mini", 0.25, None)
        assert chat["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
        assert chat["parent_span_id"] == next(
            s["span_id"] for s in spans if s["agent"] == "planner"
        )
        agents = [s["agent"] for s in spans if s["operation"] == "invoke_agent"]
        assert agents == ["planner", "researcher", "writer"] * 4
        status, first = await _get(base + "/v1/runs/run-loop/spans?limit=3")
        assert (status, first["spans"], first["truncated"]) == (200, spans[:3], True)


async def test_an_export_from_a_running_collector_matches_one_from_its_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with _collector() as collector:
        base = collector.http_endpoint
        async with (
            aiohttp.ClientSession() as client,
            client.get(base + "/v1/export?format=csv") as response,
        ):
            assert response.status == 200
            assert response.content_type == "application/zip"
            rows = json.loads(response.headers["X-AgentMesh-Export-Rows"])
            archive = zipfile.ZipFile(io.BytesIO(await response.read()))
        assert sorted(archive.namelist()) == sorted(f"{table}.csv" for table in rows)
        assert (rows["runs"], rows["spans"], rows["detections"]) == (2, 17, 1)
        assert archive.read("runs.csv").decode().count("\n") == 1 + 2  # header and two runs

        assert (
            await asyncio.to_thread(
                main, ["export", "--collector", base, "--out", str(tmp_path / "api")]
            )
            == 0
        )
        assert "spans: 17 rows" in capsys.readouterr().out
        await export_store(collector.store, tmp_path / "store")
    for table in rows:
        via_api = duckdb.sql(f"select * from '{tmp_path / 'api' / table}.parquet' order by all")
        direct = duckdb.sql(f"select * from '{tmp_path / 'store' / table}.parquet' order by all")
        assert via_api.fetchall() == direct.fetchall(), table


async def test_exports_one_after_another_are_never_refused_and_concurrent_ones_retry() -> None:
    async with _collector() as collector, aiohttp.ClientSession() as client:
        url = collector.http_endpoint + "/v1/export?format=json"
        for _ in range(5):  # each asked for as soon as the last one has been read
            async with client.get(url) as response:
                assert response.status == 200, await response.text()
                await response.read()

        async def fetch() -> tuple[int, str | None]:
            async with client.get(url) as response:
                await response.read()
                return response.status, response.headers.get("Retry-After")

        answers = await asyncio.gather(*(fetch() for _ in range(4)))
    assert (200, None) in answers
    assert set(answers) <= {(200, None), (503, "5")}, answers


async def test_the_api_needs_the_collectors_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with _collector(auth_bearer_tokens=["s3cret"]) as collector:
        base = collector.http_endpoint
        async with aiohttp.ClientSession() as client, client.get(base + "/v1/runs") as response:
            assert response.status == 401
        status, _ = await _get(base + "/v1/runs", Authorization="Bearer s3cret")
        assert status == 200
        async with (
            aiohttp.ClientSession() as client,
            client.get(base + "/v1/runs/run-loop/spans") as response,
            client.get(base + "/v1/export") as export,
        ):
            assert (response.status, export.status) == (401, 401)
        assert await asyncio.to_thread(main, ["runs", "--collector", base]) == 2
        said = capsys.readouterr().err  # the collector's words, and what to do
        assert "authentication required" in said
        assert "set AGENTMESH_API_TOKEN" in said
        monkeypatch.setenv("AGENTMESH_API_TOKEN", "wrong")
        assert await asyncio.to_thread(main, ["runs", "--collector", base]) == 2
        said = capsys.readouterr().err
        assert "not accepted" in said
        assert "AGENTMESH_API_TOKEN holds a token" in said
        monkeypatch.setenv("AGENTMESH_API_TOKEN", "s3cret\n")  # a secret file's newline
        assert await asyncio.to_thread(main, ["runs", "--collector", base, "--json"]) == 0
        monkeypatch.setenv("AGENTMESH_API_TOKEN", "s3cr\u00e9t")
        assert await asyncio.to_thread(main, ["runs", "--collector", base]) == 2
        assert "characters an HTTP header cannot carry" in capsys.readouterr().err


async def test_agentmesh_runs_asks_a_collector_for_one_workflow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with _collector() as collector:
        command = ["runs", "--collector", collector.http_endpoint, "--json", "--workflow"]
        assert await asyncio.to_thread(main, [*command, "research"]) == 0
        listed = [json.loads(line)["run_id"] for line in capsys.readouterr().out.splitlines()]
        assert listed == ["run-clean", "run-loop"]
        assert await asyncio.to_thread(main, [*command, "essay"]) == 0
        assert capsys.readouterr().out == ""


async def test_a_collector_url_that_is_wrong_is_named_in_plain_words(
    capsys: pytest.CaptureFixture[str],
) -> None:

    async def html_page(_: web.Request) -> web.Response:
        return web.Response(text="<html></html>")

    page = web.Application()  # a web server that is not the collector: HTML, status 200
    page.router.add_get("/{tail:.*}", html_page)
    runner = web.AppRunner(page)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    html = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with _collector() as collector:
        grpc = f"http://127.0.0.1:{collector.grpc_port}"
        for url, message in [
            (grpc, "did not answer in HTTP"),  # the gRPC port, a common slip
            (html, "something that is not JSON"),
            ("http://127.0.0.1:abc", "is not a valid URL"),
            ("http://[::1", "is not a valid URL"),
            ("http://:4318", "names no host"),
        ]:
            assert await asyncio.to_thread(main, ["runs", "--collector", url]) == 2, url
            said = capsys.readouterr().err
            assert message in said, (url, said)
            assert "Traceback" not in said
    await runner.cleanup()


async def test_the_cli_pages_through_the_api_for_more_runs_than_one_answer_holds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentmesh.collector.api import runs as runs_api

    monkeypatch.setattr(runs_api, "MAX_LIMIT", 1)  # one run an answer: two runs, two pages
    async with _collector() as collector:
        base = collector.http_endpoint
        argv = ["runs", "--collector", base, "--limit", "5", "--json"]
        assert await asyncio.to_thread(main, argv) == 0  # --limit 5000 failed this way
        listed = [json.loads(line)["run_id"] for line in capsys.readouterr().out.splitlines()]
        assert listed == ["run-clean", "run-loop"]
        assert await asyncio.to_thread(main, ["graph", " ", "--collector", base]) == 2
        assert "needs a run id or trace id" in capsys.readouterr().err


async def test_the_cli_reads_a_running_collector(capsys: pytest.CaptureFixture[str]) -> None:
    async with _collector() as collector:
        base = collector.http_endpoint
        _, listed = await _get(base + "/v1/runs")
        # the CLI blocks on HTTP: run it in a thread, the collector's loop keeps serving
        assert await asyncio.to_thread(main, ["runs", "--collector", base, "--json"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line) for line in lines] == listed["runs"]
        assert await asyncio.to_thread(main, ["runs", "--collector", base]) == 0
        assert "runs (2)" in capsys.readouterr().out  # the table, as from the store
        waiting = ["runs", "--collector", base, "--state", "paused", "--conversation", "thread-1"]
        assert await asyncio.to_thread(main, [*waiting, "--json"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["run_id"] for line in lines] == ["run-clean"]
        assert await asyncio.to_thread(main, ["graph", "run-loop", "--collector", base]) == 0
        shown = capsys.readouterr().out
        assert "researcher" in shown
        assert "handoff_loop" in shown
        _, costs = await _get(base + "/v1/costs?group_by=model")
        assert (
            await asyncio.to_thread(main, ["costs", "--by", "model", "--collector", base, "--json"])
            == 0
        )
        assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == costs["costs"]
        assert await asyncio.to_thread(main, ["costs", "--collector", base]) == 0
        assert "costs by agent" in capsys.readouterr().out
        assert await asyncio.to_thread(main, ["graph", "nope", "--collector", base]) == 2
        assert "no run matches 'nope'" in capsys.readouterr().err
        _, detections = await _get(base + "/v1/detections")
        argv = ["detections", "--collector", base, "--type", "handoff_loop", "--since", "1h"]
        assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line) for line in lines] == detections["detections"]
        assert await asyncio.to_thread(main, ["detections", "--collector", base]) == 0
        table = capsys.readouterr().out
        assert "detections (1)" in table
        assert "run-loop" in table
        argv = ["detections", "--collector", base, "--type", "stuck", "--json"]
        assert await asyncio.to_thread(main, argv) == 0
        assert capsys.readouterr().out == ""
        status, refused = await _get(base + "/v1/detections?type=handoff-loop")
        assert status == 400
        assert "no detection type is called 'handoff-loop'" in refused["error"]
        assert "handoff_loop" in refused["error"]
        argv = ["detections", "--collector", base, "--type", "handoff-loop"]
        assert await asyncio.to_thread(main, argv) == 2
        assert "no detection type is called 'handoff-loop'" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["runs", "--collector", base]) == 2
    assert f"collector at {base} is unreachable: connection refused" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["memory", "duckdb"])
async def test_nan_and_infinite_numbers_in_spans_neither_poison_sums_nor_break_json(
    backend: str, tmp_path: Path
) -> None:
    f = SpanFactory(start_ns=time.time_ns() - 10**9)
    root = f.workflow("w", run_id="run-nan")
    agent = f.agent("writer", parent=root)
    good = f.chat(parent=agent, model="gpt-4o-mini", cost_usd=0.5)
    bad = f.chat(parent=agent, model="gpt-4o-mini", cost_usd=0.0)
    bad = replace(
        bad,
        attributes={
            **bad.attributes,
            semconv.AGENTMESH_COST_USD: math.nan,
            "app.ratio": math.inf,
            "app.scores": [1.0, -math.inf],
        },
    )
    config = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0
    )
    store = MemoryStore() if backend == "memory" else DuckDBStore(tmp_path / "a.duckdb")
    async with Collector(config, store) as collector, aiohttp.ClientSession() as client:
        body = to_otlp_request([root, agent, good, bad]).SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
        async with client.post(collector.http_endpoint + "/v1/traces", data=body, headers=headers):
            pass
        await collector.drain()
        answers: dict[str, Any] = {}
        for path in (
            "/v1/runs",
            "/v1/runs/run-nan",
            "/v1/runs/run-nan/spans",
            "/v1/costs?group_by=agent",
            "/v1/costs?group_by=model",
        ):
            async with client.get(collector.http_endpoint + path) as answer:
                assert answer.status == 200
                answers[path] = json.loads(await answer.text(), parse_constant=_not_json)
    assert answers["/v1/runs"]["runs"][0]["cost_usd"] == 0.5  # the NaN is no amount
    assert answers["/v1/runs/run-nan"]["graph"]["agents"][0]["cost_usd"] == 0.5
    assert [(c["key"], c["cost_usd"]) for c in answers["/v1/costs?group_by=agent"]["costs"]] == [
        ("writer", 0.5)
    ]
    assert answers["/v1/costs?group_by=model"]["costs"][0]["cost_usd"] == 0.5
    spans = answers["/v1/runs/run-nan/spans"]["spans"]
    shown = next(s for s in spans if s["span_id"] == bad.span_id)
    assert shown["attributes"][semconv.AGENTMESH_COST_USD] == "NaN"
    # DuckDB keeps every non-finite double as NaN (store/codec.py); memory keeps it as it came
    infinity, minus = ("Infinity", "-Infinity") if backend == "memory" else ("NaN", "NaN")
    assert shown["attributes"]["app.ratio"] == infinity
    assert shown["attributes"]["app.scores"] == [1.0, minus]
    assert shown["cost_usd"] == 0.0


def _not_json(word: str) -> object:
    raise AssertionError(f"{word} is not JSON")
