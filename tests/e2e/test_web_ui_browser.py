"""The web dashboard in a real browser (Chromium, driven by Playwright) on a running collector.

It reads the collector's query API: runs, a run's detections, agent graph and span timeline,
costs; it follows new runs live, asks for credentials when the collector wants them, and shows
what the spans say as text, never as markup.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
from playwright.async_api import Page, async_playwright, expect

from agentmesh.collector import (
    Collector,
    CollectorSettings,
    Detection,
    MemoryStore,
    SpanEventRecord,
)
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import (
    SpanFactory,
    failed,
    routed_call_attributes,
    to_otlp_request,
    with_attributes,
)
from agentmesh.core import semconv

_HOSTILE = '<img src=x onerror="window.pwned=1">'


def _loop_run(now: int) -> list[SpanRecord]:
    f = SpanFactory(start_ns=now - 60 * 10**9)
    root = f.workflow("research", run_id="run-loop")
    agents = [f.agent(name, parent=root) for name in ["planner", "researcher", "writer"] * 4]
    chat = f.chat(parent=agents[0], model="gpt-4o-mini", cost_usd=0.25, input_tokens=120)
    return [root, *agents, f.marker(agents[1]), chat]


def _clean_run(now: int, run_id: str = "run-clean") -> list[SpanRecord]:
    f = SpanFactory(start_ns=now - 30 * 10**9)
    root = f.workflow("research", run_id=run_id)
    planner = f.agent("planner", parent=root)
    writer = f.agent("writer", parent=root)
    chat = f.chat(parent=writer, model="claude-sonnet-4-5", cost_usd=0.5, output_tokens=300)
    return [root, planner, writer, chat]


async def _post(collector: Collector, spans: list[SpanRecord], token: str | None = None) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = to_otlp_request(spans).SerializeToString()
    async with (
        aiohttp.ClientSession() as client,
        client.post(collector.http_endpoint + "/v1/traces", data=body, headers=headers) as answer,
    ):
        assert answer.status == 200
    await collector.drain()


@asynccontextmanager
async def _collector(**settings: Any) -> AsyncIterator[Collector]:
    config = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0, **settings
    )
    async with Collector(config, MemoryStore()) as collector:
        yield collector


@asynccontextmanager
async def _page(chromium: str) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert errors == []  # no script error on any view
        finally:
            await browser.close()


async def test_runs_a_runs_graph_timeline_and_detections_and_costs(chromium_binary: str) -> None:
    now = time.time_ns()
    async with _collector() as collector, _page(chromium_binary) as page:
        await _post(collector, _loop_run(now) + _clean_run(now))
        await page.goto(collector.http_endpoint + "/")
        rows = page.locator("#runs-table tr.run-row")
        await expect(rows).to_have_count(2)
        assert page.url.endswith("/ui/")
        assert await rows.first.get_attribute("data-run") == "run-clean"  # newest first
        await page.fill("#filter", "researcher")  # run id, workflow or agent
        await expect(rows).to_have_count(1)
        await expect(page.locator("#filter")).to_be_focused()
        await page.fill("#filter", "")
        await expect(rows).to_have_count(2)
        await page.goto(collector.http_endpoint + "/ui/?page_size=1")  # pages of one run
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-run", "run-clean")
        await page.click("#older")
        await expect(rows.first).to_have_attribute("data-run", "run-loop")
        await expect(page.locator("#older")).to_have_count(0)  # nothing older
        await page.click("#newer")
        await expect(rows.first).to_have_attribute("data-run", "run-clean")
        await expect(page.locator("#newer")).to_have_count(0)
        await page.goto(collector.http_endpoint + "/ui/")
        await expect(rows).to_have_count(2)
        loop = page.locator("tr.run-row[data-run='run-loop']")
        await expect(loop.locator("td").last).to_have_text("1")  # one detection

        await loop.click()
        await expect(page.locator("#run-title")).to_contain_text("run-loop")
        assert page.url.endswith("#/runs/run-loop")
        detection = page.locator("#detections [data-type='handoff_loop']")
        await expect(detection).to_contain_text("planner → researcher → writer → planner")
        await expect(page.locator("#agent-graph .node")).to_have_count(3)
        await expect(page.locator("#agent-graph .node.flagged")).to_have_attribute(
            "data-agent", "planner"
        )
        await expect(page.locator("#agent-graph [data-edge='writer→planner']")).to_have_count(1)
        await expect(page.locator("#agents-table tbody tr")).to_have_count(3)
        await expect(page.locator("#handoffs-table tbody tr")).to_have_count(11)
        spans = page.locator("#timeline .span-row[data-span]")
        await expect(spans).to_have_count(14)  # the step start marker left out...
        await page.locator("#show-markers").check()
        await expect(spans).to_have_count(15)  # ...until asked for
        await page.locator("#timeline .span-row[data-kind='llm']").click()
        details = page.locator("#span-details")
        await expect(details).to_contain_text("gpt-4o-mini")
        await expect(details).to_contain_text("agentmesh.cost.usd")
        await expect(details).to_contain_text("120 in, 0 out")

        await page.locator("nav a[data-view='detections']").click()
        detections = page.locator("#detections-table tr.detection-row")
        await expect(detections).to_have_count(1)
        await expect(detections).to_contain_text("handoff_loop")
        await detections.locator("a").click()  # to the run it was found in
        await expect(page.locator("#run-title")).to_contain_text("run-loop")

        await page.locator("nav a[data-view='costs']").click()
        costs = page.locator("#costs-table tbody tr td:first-child")
        await expect(costs).to_have_text(["writer", "planner", "researcher"])  # by cost
        await page.locator("button[data-by='model']").click()
        await expect(costs).to_have_text(["claude-sonnet-4-5", "gpt-4o-mini"])

        await page.goto(collector.http_endpoint + "/ui/#/runs/nope")
        await expect(page.locator("main")).to_contain_text("no run matches 'nope'")

        # detections page back through older ones; one type is asked of the server
        clean = await collector.store.find_runs("run-clean", limit=1)
        await collector.store.write_detection(
            Detection(
                "det-spike", "cost_spike", "warning", clean[0].trace_id, "run-clean", "writer",
                (), "cost 10x the usual", time.time_ns(),
            )
        )  # fmt: skip
        await page.goto(collector.http_endpoint + "/ui/?page_size=1#/detections")
        detections = page.locator("#detections-table tr.detection-row")
        await expect(detections).to_have_count(1)
        await expect(detections.first).to_have_attribute("data-type", "cost_spike")  # newest
        await page.click("#older")
        await expect(detections.first).to_have_attribute("data-type", "handoff_loop")
        await expect(page.locator("#older")).to_have_count(0)
        await page.click("#newer")
        await expect(detections.first).to_have_attribute("data-type", "cost_spike")
        await page.select_option("#detection-type", "cost_spike")
        await page.select_option("#detection-type", "")
        await page.goto(collector.http_endpoint + "/ui/?page_size=1#/detections")
        await page.click("#older")
        await page.select_option("#detection-type", "handoff_loop")  # not on the first page
        await expect(detections).to_have_count(1)
        await expect(detections.first).to_have_attribute("data-type", "handoff_loop")
        await expect(page.locator("#newer")).to_have_count(0)  # a type starts at its newest
        await page.select_option("#detection-type", "cost_spike")  # straight to another type
        await expect(detections).to_have_count(1)
        await expect(detections.first).to_have_attribute("data-type", "cost_spike")


async def test_new_runs_appear_without_reloading(chromium_binary: str) -> None:
    now = time.time_ns()
    async with _collector() as collector, _page(chromium_binary) as page:
        await page.goto(collector.http_endpoint + "/ui/")
        await expect(page.locator("main .empty")).to_contain_text("No runs in this range")
        await _post(collector, _clean_run(now, "run-late"))
        await expect(page.locator("tr.run-row[data-run='run-late']")).to_have_count(
            1, timeout=20_000
        )


async def test_the_page_asks_for_credentials_when_the_collector_wants_them(
    chromium_binary: str,
) -> None:
    now = time.time_ns()
    async with (
        _collector(auth_bearer_tokens=["s3cret"]) as collector,
        _page(chromium_binary) as page,
    ):
        await _post(collector, _clean_run(now), token="s3cret")
        await page.goto(collector.http_endpoint + "/ui/")
        form = page.locator("#token-form")
        await expect(form).to_be_visible()
        await page.fill("#token", "wrong")
        await page.click("#token-form button")
        await expect(page.locator("#token-problem")).to_contain_text("not accepted")
        await page.fill("#token", "s3cret")
        await page.click("#token-form button")
        await expect(page.locator("tr.run-row[data-run='run-clean']")).to_have_count(1)
        await page.reload()  # the token is kept for the tab
        await expect(page.locator("tr.run-row[data-run='run-clean']")).to_have_count(1)


async def test_what_spans_say_is_shown_as_text_never_run(chromium_binary: str) -> None:
    f = SpanFactory(start_ns=time.time_ns() - 10**9)
    root = f.workflow("<b>workflow</b>", run_id=_HOSTILE)
    agent = f.agent("<script>window.pwned=2</script>", parent=root)
    async with _collector() as collector, _page(chromium_binary) as page:
        await _post(collector, [root, agent, f.chat(parent=agent, model=_HOSTILE)])
        await page.goto(collector.http_endpoint + "/ui/")
        await expect(page.locator("#runs-table tbody td").first).to_have_text(_HOSTILE)
        await page.locator("#runs-table tbody tr").first.click()
        await expect(page.locator("#run-title")).to_contain_text(_HOSTILE)
        await expect(page.locator("#agents-table")).to_contain_text("<script>window.pwned=2")
        await page.goto(collector.http_endpoint + "/ui/#/costs")
        await page.locator("button[data-by='model']").click()
        await expect(page.locator("#costs-table")).to_contain_text(_HOSTILE)
        assert await page.evaluate("window.pwned") is None
        assert await page.locator("main img, main b, main script").count() == 0


def _routed_calls(model: str, count: int, cost: float) -> list[SpanRecord]:
    f = SpanFactory(start_ns=time.time_ns() - 10**9)
    root = f.workflow("triage", run_id=f"run-{model}")
    agent = f.agent("triager", parent=root)
    calls = [
        with_attributes(
            f.chat(parent=agent, model=model, cost_usd=cost),
            routed_call_attributes(model, f"d-{model}-{i}"),
        )
        for i in range(count)
    ]
    return [root, agent, *calls]


async def test_the_route_table_the_collector_publishes(chromium_binary: str) -> None:
    async with (
        _collector(
            router_publish_seconds=0.05,
            router_modes={"*": "shadow", "triage": "enforce"},
            router_tradeoffs={"*": {"cost_weight": 100.0, "latency_weight": 0.0}},
        ) as collector,
        _page(chromium_binary) as page,
    ):
        await page.goto(collector.http_endpoint + "/ui/#/routing")
        await expect(page.locator("#models")).to_contain_text("No routed call")
        await expect(page.locator("#modes-table")).to_contain_text("triage")
        await _post(collector, _routed_calls("gpt-4o-mini", 5, 0.001))
        await _post(collector, _routed_calls("gpt-4o", 2, 0.02))
        await page.locator("nav a[data-view='runs']").click()
        await page.locator("nav a[data-view='routing']").click()
        models = page.locator("#models-table tbody tr")
        await expect(models).to_have_count(2, timeout=15_000)
        await expect(models.first).to_have_attribute("data-model", "gpt-4o-mini")  # most calls
        await expect(models.first.locator("td").nth(1)).to_have_text("5")
        await expect(page.locator("#modes-table tbody tr")).to_have_text(
            ["triageenforce", "every othershadow"]
        )
        await expect(page.locator("#tradeoffs")).to_contain_text("100")


async def test_the_decision_log_and_a_runs_decisions(chromium_binary: str) -> None:
    async with _collector() as collector, _page(chromium_binary) as page:
        await _post(collector, _routed_calls("gpt-4o-mini", 3, 0.001))
        f = SpanFactory(start_ns=time.time_ns())  # after the triage run's calls
        root = f.workflow("code", run_id="run-code")
        agent = f.agent("coder", parent=root)
        chosen = with_attributes(
            f.chat(parent=agent, model="claude-sonnet-4-5", cost_usd=0.03),
            {
                **routed_call_attributes("claude-sonnet-4-5", "d-code", task_class="code"),
                semconv.AGENTMESH_ROUTE_CANDIDATES: ["gpt-4o", "claude-sonnet-4-5"],
                semconv.AGENTMESH_ROUTE_SCORES: [0.4, 0.8],
                semconv.AGENTMESH_ROUTE_REASON: "best expected utility",
            },
        )
        await _post(collector, [root, agent, chosen])
        await page.goto(collector.http_endpoint + "/ui/#/routing")
        rows = page.locator("#decisions-table tbody tr.decision-row")
        await expect(rows).to_have_count(4)
        first = rows.first  # the newest
        await expect(first).to_have_attribute("data-decision", "d-code")
        await first.click()
        details = page.locator(".decision-details")
        await expect(details).to_contain_text("best expected utility")
        await expect(details.locator("table.candidates tbody tr")).to_have_text(
            ["gpt-4o0.4000", "claude-sonnet-4-5 chosen0.8000"]
        )
        await expect(details).to_contain_text("total_chars")
        await page.locator("#decision-task").select_option("triage")
        await expect(rows).to_have_count(3)
        await expect(page.locator("#decisions-table")).not_to_contain_text("claude-sonnet-4-5")
        await rows.first.locator("a").click()  # the run link
        await expect(page.locator("#run-title")).to_contain_text("run-gpt-4o-mini")
        await expect(page.locator("#resumed-from")).to_have_count(0)
        await expect(page.locator("#run-decisions tbody tr.decision-row")).to_have_count(3)
        await expect(page.locator("#run-decisions")).to_contain_text("gpt-4o-mini")


async def test_a_resumed_run_links_the_paused_run_it_continues(chromium_binary: str) -> None:
    async with _collector() as collector, _page(chromium_binary) as page:
        paused_root, *rest = _clean_run(time.time_ns(), "run-paused")
        thread = {semconv.GEN_AI_CONVERSATION_ID: "review-7"}
        paused_root = with_attributes(paused_root, {semconv.AGENTMESH_RUN_PAUSED: True, **thread})
        await _post(collector, [paused_root, *rest])
        f = SpanFactory(start_ns=time.time_ns())
        root = with_attributes(
            f.workflow("research", run_id="run-resumed"),
            {
                semconv.AGENTMESH_RESUME_FROM_RUN_ID: "run-paused",
                semconv.AGENTMESH_RESUME_CHECKPOINT_ID: "ck-0123456789abcdef0123",
                **thread,
            },
        )
        await _post(collector, [root, f.agent("writer", parent=root)])
        await page.goto(collector.http_endpoint + "/ui/#/runs/run-resumed")
        resumed = page.locator("#resumed-from")
        await expect(resumed).to_contain_text("Continues run run-paused from checkpoint")
        # the conversation's runs, oldest first: the paused one (resumed since), then this one
        conversation = page.locator("#conversation")
        await expect(conversation).to_contain_text(
            "Conversation review-7: 2 runs, oldest first: run-paused resumed → run-resumed complete"
        )
        await expect(conversation.locator("a")).to_have_text(["run-paused"])
        await expect(page.locator("#paused")).to_have_count(0)
        await expect(page.locator("#run-title .badge")).to_have_text("complete")
        await resumed.locator("a").click()
        await expect(page.locator("#run-title")).to_contain_text("run-paused")
        await expect(page.locator("#run-title .badge")).to_have_text("paused")
        await expect(page.locator("#paused")).to_contain_text("stopped to wait for input")
        # and links forward to the run that resumed it
        resumed_by = page.locator("#resumed-by")
        await expect(resumed_by).to_contain_text("Resumed by run run-resumed")
        await resumed_by.locator("a").click()
        await expect(page.locator("#run-title")).to_contain_text("run-resumed")
        # the runs list tells the paused run from the finished one
        await page.goto(collector.http_endpoint + "/ui/#/")
        # (a paused run that a later run continued is not waiting any more: resumed)
        await expect(page.locator('tr[data-run="run-paused"] .badge')).to_have_text("resumed")
        await expect(page.locator('tr[data-run="run-resumed"] .badge')).to_have_text("complete")
        await page.fill("#filter", "complete")  # a state typed in full keeps the runs in it
        await expect(page.locator("tr.run-row")).to_have_count(1)
        await expect(page.locator("tr.run-row")).to_have_attribute("data-run", "run-resumed")


async def test_a_failed_run_shows_failed_with_the_step_it_failed_in(chromium_binary: str) -> None:
    async with _collector() as collector, _page(chromium_binary) as page:
        root, planner, writer, chat = _clean_run(time.time_ns(), "run-broken")
        writer = failed(writer, "RateLimitError")
        await _post(collector, [failed(root, "RateLimitError"), planner, writer, chat])
        await _post(collector, _clean_run(time.time_ns()))
        stopped_root, *rest = _clean_run(time.time_ns(), "run-stopped")
        ctrl_c = SpanEventRecord("exception", 1, {"exception.type": "KeyboardInterrupt"})
        await _post(collector, [replace(stopped_root, events=(ctrl_c,)), *rest])
        await page.goto(collector.http_endpoint + "/ui/#/")
        await expect(page.locator('tr[data-run="run-stopped"] .badge')).to_have_text("interrupted")
        await expect(page.locator('tr[data-run="run-broken"] .badge')).to_have_text("failed")
        await expect(page.locator('tr[data-run="run-clean"] .badge')).to_have_text("complete")
        await page.fill("#filter", "failed")  # a state typed in full keeps the runs in it
        await expect(page.locator("tr.run-row")).to_have_count(1)
        await page.locator('tr[data-run="run-broken"] a').click()
        await expect(page.locator("#run-title .badge")).to_have_text("failed")
        await expect(page.locator("#failed")).to_have_text(
            "Failed: step 'writer' failed: RateLimitError"
        )
        await page.goto(collector.http_endpoint + "/ui/#/runs/run-stopped")
        await expect(page.locator("#interrupted")).to_contain_text(
            "Interrupted: KeyboardInterrupt: the run was stopped before it finished"
        )
