"""``GET /v1/decisions`` pages with ``before`` / ``next_before``, as runs and detections do.

Following ``next_before`` from page to page reaches every decision once, in the order of the
unpaged log, whatever the page size and filters, with calls that started at the same time and
more decisions than one answer holds. With runs that overlap (one that started earlier made
a later call) pages are only as exact as ``decision_outcomes`` is: those tests are expected to
fail until it reads every run that may hold one of the newest decisions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import SpanFactory, routed_call_attributes, to_otlp_request
from agentmesh.collector.testing import with_attributes as _with

_S = 10**9


def _run(run_id: str, starts: list[int], task_class: str = "triage") -> list[SpanRecord]:
    """A run whose routed calls start at ``starts`` (ns), decisions ``d-<run>-<i>``."""
    f = SpanFactory(start_ns=min(starts) - _S)
    root = f.workflow("triage", run_id=run_id)
    agent = f.agent("triager", parent=root)
    calls = [
        _with(
            f.chat(parent=agent, start_ns=start),
            routed_call_attributes("gpt-4o-mini", f"d-{run_id}-{i}", task_class=task_class),
        )
        for i, start in enumerate(starts)
    ]
    return [root, agent, *calls]


@asynccontextmanager
async def _collector(spans: list[SpanRecord]) -> AsyncGenerator[str]:
    config = CollectorSettings.load(
        grpc_port=0, http_port=0, grpc_grace_seconds=1.0, decode_workers=0
    )
    async with Collector(config, MemoryStore()) as collector:
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                collector.http_endpoint + "/v1/traces",
                data=to_otlp_request(spans).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            ) as response,
        ):
            assert response.status == 200
        await collector.drain()
        yield collector.http_endpoint


async def _get(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _walk(base: str, query: str) -> list[str]:
    """Every decision id, page after page, following ``next_before``."""
    ids: list[str] = []
    before = ""
    while True:
        page = await _get(f"{base}/v1/decisions?{query}{before}")
        ids += [d["decision_id"] for d in page["decisions"]]
        if page["next_before"] is None:
            return ids
        assert len(ids) < 10_000, "the pages do not end"
        before = f"&before={page['next_before']}"


NOW = time.time_ns()
T = NOW - 600 * _S
SPANS = [  # runs one after the other (each run's calls come after those of the runs before)
    *_run("run-a", [T, T + _S, T + 2 * _S]),
    # four calls at the same nanosecond, then a nanosecond and 100 ns later (the same float
    # second, or not), then a second later
    *_run("run-tie", [*[T + 5 * _S] * 4, T + 5 * _S + 1, T + 5 * _S + 100, T + 6 * _S]),
    *_run("run-sum", [T + 7 * _S, T + 8 * _S], task_class="summarize"),
]
OVERLAPPING = [  # one that started earlier made the latest call; two runs call at once
    *_run("run-sum", [T + 3 * _S, T + 7 * _S], task_class="summarize"),
    *_run("run-a", [T, T + _S, T + 2 * _S]),
    *_run("run-tie", [T + 5 * _S] * 4),
    *_run("run-b", [T + 5 * _S, T + 5 * _S + 1, T + 5 * _S + 100, T + 6 * _S]),
]
NEWEST_ONLY = pytest.mark.xfail(
    strict=True,
    reason="decision_outcomes(limit=n) joins the newest-started runs until it has n decisions, "
    "so a later call of a run that started earlier is left out of the page, and of every page "
    "after it (routing/outcomes.py)",
)


@pytest.mark.parametrize(
    ("spans", "count"),
    [(SPANS, 12), pytest.param(OVERLAPPING, 13, marks=NEWEST_ONLY, id="overlapping")],
)
@pytest.mark.parametrize("limit", [1, 2, 3, 5])
async def test_following_next_before_reaches_every_decision_once_in_order(
    spans: list[SpanRecord], count: int, limit: int
) -> None:
    async with _collector(spans) as base:
        whole = [d["decision_id"] for d in (await _get(base + "/v1/decisions"))["decisions"]]
        assert len(whole) == count
        assert await _walk(base, f"limit={limit}") == whole
        triage = [
            d["decision_id"]
            for d in (await _get(base + "/v1/decisions?task_class=triage"))["decisions"]
        ]
        assert len(triage) == count - 2
        assert await _walk(base, f"limit={limit}&task_class=triage&since=1h") == triage


async def test_next_before_names_the_oldest_decision_of_the_page() -> None:
    async with _collector(SPANS) as base:
        whole = await _get(base + "/v1/decisions")
        assert whole["next_before"] is None  # everything in one page
        first = await _get(base + "/v1/decisions?limit=2")
        oldest = first["decisions"][-1]
        ns, _, decision = first["next_before"].partition(":")
        assert decision == oldest["decision_id"]
        assert abs(int(ns) - oldest["start_time"] * _S) < 1000  # its call's start, in ns
        # a bare time: the decisions whose call started before it
        older = await _get(f"{base}/v1/decisions?before={T + 4 * _S}")
        assert [d["decision_id"] for d in older["decisions"]] == [
            "d-run-a-2",
            "d-run-a-1",
            "d-run-a-0",
        ]
        assert older["next_before"] is None


async def test_more_decisions_than_one_answer_holds_are_all_reached() -> None:
    starts = [T + i * 1000 for i in range(1203)]
    async with _collector(_run("run-many", starts)) as base:
        first = await _get(base + "/v1/decisions?limit=1000")
        assert len(first["decisions"]) == 1000
        assert first["next_before"] is not None
        ids = await _walk(base, "limit=1000")
    assert sorted(ids) == sorted(f"d-run-many-{i}" for i in range(1203))
    assert ids == [f"d-run-many-{i}" for i in reversed(range(1203))]  # newest call first


@NEWEST_ONLY
async def test_pages_of_many_concurrent_runs_miss_no_decision() -> None:
    # 40 runs started a second apart, each calling every 7 s for a minute: each page's newest
    # decisions are spread over runs that started long before the newest one
    spans = [
        span
        for i in range(40)
        for span in _run(f"run-{i:02d}", [T + i * _S + k * 7 * _S for k in range(9)])
    ]
    async with _collector(spans) as base:
        whole = (await _get(base + "/v1/decisions?limit=1000"))["decisions"]
        assert len(whole) == 360
        starts = [d["start_time"] for d in whole]
        assert starts == sorted(starts, reverse=True)
        ids = [d["decision_id"] for d in whole]
        first = await _get(base + "/v1/decisions?limit=25")
        assert [d["decision_id"] for d in first["decisions"]] == ids[:25]  # the newest 25
        assert await _walk(base, "limit=25") == ids
