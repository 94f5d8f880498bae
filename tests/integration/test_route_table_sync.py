"""The route table end to end: the collector's ``GET /v1/route-table`` and the app's client thread.

Real aiohttp servers on loopback, the real :class:`RouteTableClient` thread, real cache files:
the first fetch, ``304`` with the ETag, a publication reaching the client through its held long
poll, a breaker opened by recovery showing in the served table, the collector going away (the
last table kept), an app restarted while the collector is away (the cache file loaded), and
garbage answers (the last table kept, logged): a field out of range, a predictor that does not
parse (also with the real OpenAI SDK routing through the fake provider), a refused cache file.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from agentmesh.collector import Collector, CollectorSettings, OtlpHttpReceiver
from agentmesh.collector.recovery import Breaker, ControlDocument, MemoryControlState
from agentmesh.collector.routing import (
    MemoryRouteTableState,
    RouteTableState,
    route_table_routes,
)
from agentmesh.collector.store.memory_store import MemoryStore
from agentmesh.core import RouteTableError
from agentmesh.instrumentation import route_table, routing
from agentmesh.instrumentation.baggage import task_class
from agentmesh.instrumentation.control import Backoff
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.route_table import RouteTableClient, load_table, save_table
from agentmesh.instrumentation.settings import InstrumentationSettings
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript
from agentmesh.router import (
    BUNDLED_TABLE,
    DecisionLog,
    ModelStats,
    RouteTable,
    Tradeoff,
    UtilityPolicy,
)
from agentmesh.router.learned import Predictor, QualityModel
from agentmesh.router.learned.parse_ahead import parsed

WAIT = 10.0  # functional waits: how long a test may wait for something that should happen


def _settings(**overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "grpc_port": 0,
        "http_port": 0,
        "grpc_grace_seconds": 1.0,
        "decode_workers": 0,
    }
    return CollectorSettings.load(**(values | overrides))


def _sink(batch: object) -> bool:
    return True


@asynccontextmanager
async def _serve(state: RouteTableState, port: int = 0) -> AsyncGenerator[OtlpHttpReceiver]:
    receiver = OtlpHttpReceiver(
        _sink, _settings(http_port=port), extra_routes=route_table_routes(state)
    )
    async with receiver:
        yield receiver


@pytest.fixture
def clients() -> Iterator[list[RouteTableClient]]:
    made: list[RouteTableClient] = []
    yield made
    for client in made:
        client.stop(timeout_s=5.0)
    route_table.shutdown_route_table()


def _client(
    made: list[RouteTableClient], url: str, cache: Path | None, *, wait_s: float = 25.0
) -> RouteTableClient:
    client = RouteTableClient(
        url,
        cache_path=cache,
        wait_s=wait_s,
        min_interval_s=0.0,
        backoff=Backoff(initial_s=0.02, maximum_s=0.1),
    )
    made.append(client)
    return client


async def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


async def _version(client: RouteTableClient, version: int) -> bool:
    return await asyncio.to_thread(client.wait_for_version, version, WAIT)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _learned(task: str = "chat", *, cheap: float = 0.9, dear: float = 0.9) -> dict[str, object]:
    """A predictor's JSON (as the table carries it): ``gpt-4o-mini`` and ``gpt-4o`` in ``task``."""
    quality = QualityModel()
    for _ in range(10):
        quality.update(task, 0, "gpt-4o-mini", cheap, cost_usd=0.0003)
        quality.update(task, 0, "gpt-4o", dear, cost_usd=0.005)
    data: dict[str, object] = json.loads(json.dumps(Predictor(quality).to_dict()))
    return data


def _tuned(table: RouteTable) -> RouteTable:
    return replace(
        table,
        default_mode="shadow",
        modes={"triage": "enforce"},
        tradeoffs={"*": Tradeoff(5.0, 0.1)},
        models={"gpt-4o": ModelStats(calls=20, errors=1, latency_p50_s=0.9)},
        predictor=_learned(),
    )


# --- the endpoint and the client ---------------------------------------------------------------


async def test_first_fetch_then_304_with_the_etag(
    tmp_path: Path, clients: list[RouteTableClient]
) -> None:
    state = MemoryRouteTableState(MemoryControlState())
    published = await state.publish(_tuned)
    assert published.version == 1
    assert published.generated_at > 0
    cache = tmp_path / "cache" / "route_table.json"
    async with _serve(state) as receiver, aiohttp.ClientSession() as session:
        base = receiver.endpoint
        client = _client(clients, base, cache, wait_s=0.2)
        client.start()
        assert await _version(client, 1)
        assert client.table == state.current == published
        assert client.table.mode_for("triage", "off") == "enforce"
        assert client.table.predictor == _learned()
        # Nothing changes: every later long poll of the thread ends in a 304.
        assert await _eventually(lambda: client.stats.not_modified >= 2)
        assert client.stats.changes == 1
        assert client.stats.failures == 0
        assert load_table(cache) == published  # the cache file holds the table received
        assert client.stats.cache_writes == 1

        url = f"{base}/v1/route-table"
        async with session.get(url) as response:
            assert response.status == 200
            assert response.headers["ETag"] == published.etag
            assert response.headers["Cache-Control"] == "no-cache"
            assert response.content_type == "application/json"
            assert await response.read() == published.to_json().encode()
        for tag in (published.etag, f"W/{published.etag}", f'"0-x", {published.etag}', "*"):
            async with session.get(url, headers={"If-None-Match": tag}) as response:
                assert response.status == 304, tag
                assert response.headers["ETag"] == published.etag
                assert await response.read() == b""
        async with session.get(url, headers={"If-None-Match": '"1-0000"'}) as response:
            assert response.status == 200  # another copy than the served one: the table now
        async with session.get(
            f"{url}?after=1&wait=5", headers={"If-None-Match": '"1-0000"'}
        ) as response:
            assert response.status == 200  # not held: the client's copy differs
        async with session.get(f"{url}?after=1") as response:
            assert response.status == 304  # no wait: answered at once
        async with session.get(f"{url}?after=0") as response:
            assert response.status == 200
        async with session.get(f"{url}?after=9&wait=20") as response:
            assert response.status == 200  # a client ahead of the collector: at once
        async with session.get(f"{url}?after=x") as response:
            assert response.status == 400
            assert "after must be a version" in await response.text()
        async with session.get(f"{url}?wait=-1") as response:
            assert response.status == 400
        for wait in ("30.5", "100000"):  # refused as a negative wait is, not cut to 30 s
            async with session.get(f"{url}?after=1&wait={wait}") as response:
                assert response.status == 400
                assert await response.json() == {
                    "error": f"wait must be between 0 and 30 seconds, got {float(wait)}"
                }
        async with session.get(f"{url}?wait=30") as response:
            assert response.status == 200  # the longest wait is allowed (no after: at once)
        async with session.post(url) as response:
            assert response.status == 405
        async with session.head(url) as response:
            assert response.status == 200
            assert response.headers["ETag"] == published.etag


async def test_a_publication_reaches_the_client_through_its_held_long_poll(
    tmp_path: Path, clients: list[RouteTableClient]
) -> None:
    state = MemoryRouteTableState()
    async with _serve(state) as receiver:
        client = _client(clients, receiver.endpoint, tmp_path / "rt.json", wait_s=25.0)
        client.start()
        assert await _eventually(lambda: client.stats.polls >= 1)
        assert client.table == BUNDLED_TABLE
        await asyncio.sleep(0.1)  # let the thread send its long poll (after=0, wait=25)
        await state.publish(lambda table: replace(table, default_mode="enforce"))
        assert await _version(client, 1)  # long before the 25 s a 304 would take
        assert client.table.default_mode == "enforce"
        assert client.stats.not_modified == 0  # it was the held poll, answered by the change
        assert client.stats.failures == 0
        await state.publish(lambda table: replace(table, modes={"triage": "off"}))
        assert await _version(client, 2)
        assert client.table.modes == {"triage": "off"}
        assert client.table.default_mode == "enforce"  # the change applied to the published


async def test_the_client_thread_parses_a_new_predictor_before_handing_the_table_out(
    clients: list[RouteTableClient],
) -> None:
    quality = QualityModel()
    for _ in range(10):
        quality.update("chat", 0, "gpt-4o-mini", 0.9, cost_usd=0.0003)
    learned = Predictor(quality).to_dict()
    state = MemoryRouteTableState()
    await state.publish(lambda table: replace(table, predictor=learned))
    async with _serve(state) as receiver:
        client = _client(clients, receiver.endpoint, None, wait_s=0.2)
        client.start()
        assert await _version(client, 1)
        ready = parsed(client.table)
        assert ready is not None
        assert ready.error is None
        assert ready.predictor is not None
        policy = UtilityPolicy(lambda: client.table, candidates={"*": ("gpt-4o-mini",)})
        assert policy.predictor is ready.predictor  # the routed call parses nothing
        # A table whose predictor the app cannot read is refused whole: taking it would route
        # by pass-through. The table held stays, its parsed predictor with it.
        held = client.table
        with capture_logs() as logs:
            await state.publish(lambda table: replace(table, predictor={"format": "other"}))
            assert await _eventually(lambda: client.stats.failures >= 2)
        assert client.table is held
        assert policy.predictor is ready.predictor
        refused = [e for e in logs if e["event"] == "agentmesh.route_table.refused"]
        assert len(refused) == 1
        assert refused[0]["error"] == (
            "the predictor cannot be used: predictor format 'other' is not "
            "'agentmesh.cluster-quality/1'"
        )


async def test_a_breaker_opened_by_recovery_shows_in_the_served_table(
    clients: list[RouteTableClient],
) -> None:
    control = MemoryControlState()
    state = MemoryRouteTableState(control)
    now = time.time()
    await state.publish(lambda table: replace(table, breakers={"o3": now + 600}))
    async with control, _serve(state) as receiver:
        client = _client(clients, receiver.endpoint, None, wait_s=25.0)
        client.start()
        assert await _version(client, 1)
        before = client.table
        assert before.open_circuits(now) == {"o3"}
        await asyncio.sleep(0.1)  # the thread holds its long poll

        breaker = Breaker("open", now + 60, "5xx burst", "det-1", "openai", 60)
        await control.open_breaker("gpt-4o", breaker)
        served = state.current
        assert served.version == before.version + 1  # published 1 + control 1
        assert served.breakers == {"o3": now + 600, "gpt-4o": now + 60}
        assert served.etag != before.etag
        assert state.published.breakers == {"o3": now + 600}  # not written to the table
        assert await _version(client, served.version)
        assert client.table == served
        assert client.table.open_circuits(now) == {"o3", "gpt-4o"}

        def half_open(document: ControlDocument) -> ControlDocument:
            return replace(document, breakers={"gpt-4o": replace(breaker, state="half_open")})

        await control.update(half_open)
        assert await _version(client, served.version + 1)
        assert client.table.open_circuits(now) == {"o3"}  # half-open: it may be tried again
        assert client.stats.failures == 0


async def test_collector_down_keeps_the_last_table_and_a_restarted_app_loads_the_cache(
    tmp_path: Path, clients: list[RouteTableClient]
) -> None:
    cache = tmp_path / "route_table.json"
    state = MemoryRouteTableState()
    kept = await state.publish(_tuned)
    with capture_logs() as logs:
        async with _serve(state) as receiver:
            base, port = receiver.endpoint, receiver.port
            client = _client(clients, base, cache)
            client.start()
            assert await _version(client, 1)
        # The collector is gone: the held long poll breaks, then connections are refused.
        assert await _eventually(lambda: client.stats.failures >= 3)
        assert client.running
        assert client.table is kept or client.table == kept
        unreachable = [e for e in logs if e["event"] == "agentmesh.route_table.unreachable"]
        assert len(unreachable) == 1  # once per outage, not per attempt
    client.stop(timeout_s=5.0)

    # The app restarts while the collector is still away: the cache file gives the last table.
    restarted = _client(clients, base, cache)
    restarted.start()
    assert await _version(restarted, 1)
    assert restarted.table == kept
    assert restarted.stats.cache_loads == 1
    assert await _eventually(lambda: restarted.stats.failures >= 1)
    assert restarted.table == kept

    # Without a cache file the app starts from the bundled defaults.
    fresh = _client(clients, base, tmp_path / "none" / "route_table.json")
    fresh.start()
    assert await _eventually(lambda: fresh.stats.failures >= 1)
    assert fresh.table is BUNDLED_TABLE
    assert fresh.stats.cache_loads == 0

    # The collector comes back (restarted without shared state) with newer tables.
    revived = MemoryRouteTableState()
    await revived.publish(lambda table: replace(table, default_mode="off"))
    await revived.publish(lambda table: replace(table, default_mode="enforce"))
    async with _serve(revived, port=port):
        assert await _version(restarted, 2)
        assert restarted.table.default_mode == "enforce"
        assert await _version(fresh, 2)
    # the cache follows the new table (written right after it is taken)
    assert await _eventually(lambda: load_table(cache) == restarted.table)


async def test_a_garbage_answer_keeps_the_last_table_and_is_logged(
    tmp_path: Path, clients: list[RouteTableClient]
) -> None:
    good = _tuned(RouteTable(version=3, generated_at=1.0))
    good_body = good.to_json().encode()
    answers: list[tuple[int, bytes]] = [(200, good_body)]

    async def handler(request: web.Request) -> web.Response:
        status, body = answers[-1]
        if body == good_body and request.headers.get("If-None-Match") == good.etag:
            return web.Response(status=304, headers={"ETag": good.etag})
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/route-table", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        cache = tmp_path / "route_table.json"
        client = _client(clients, f"http://127.0.0.1:{port}", cache, wait_s=0.05)
        client.start()
        assert await _version(client, 3)
        assert client.table == good
        with capture_logs() as logs:
            answers.append((200, b'{"version": 4, "modes": {"triage": "sometimes"}}'))
            assert await _eventually(lambda: client.stats.failures >= 3)
            assert client.table == good
            answers.append((200, b"<html>proxy error</html>"))
            answers.append((500, b"oops"))
            failures = client.stats.failures
            assert await _eventually(lambda: client.stats.failures >= failures + 3)
            assert client.table == good
            assert load_table(cache) == good  # the cache keeps the last good table
            refused = [e for e in logs if e["event"] == "agentmesh.route_table.refused"]
            assert len(refused) == 1  # once per outage
            assert "the mode of task class 'triage'" in refused[0]["error"]
            assert refused[0]["error_type"] == RouteTableError.__name__
            assert refused[0]["version"] == 3
            answers.append((200, good_body))
            assert await _eventually(
                lambda: any(e["event"] == "agentmesh.route_table.reconnected" for e in logs)
            )
        assert client.table == good
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _answering(answers: list[bytes]) -> AsyncGenerator[str]:
    """A collector stand-in on loopback serving ``answers[-1]`` (304 to its own ETag)."""

    async def handler(request: web.Request) -> web.Response:
        body = answers[-1]
        etag = RouteTable.from_json(body).etag
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/json", headers={"ETag": etag})

    app = web.Application()
    app.router.add_get("/v1/route-table", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


_FORMAT = "agentmesh.cluster-quality/1"
_SHRINKAGE = {"cell": 10.0, "model": 2.0, "prior": 0.5, "task": 5.0}
_BAD_PREDICTORS = [
    pytest.param(
        {"format": _FORMAT, "quality": {"models": {"gpt-4o": "zzz"}}},
        "models.gpt-4o: expected [q, n, cost, n_cost, latency, n_latency]",
        id="sums-not-a-list",
    ),
    pytest.param(
        {
            "format": _FORMAT,
            "quality": {
                "models": {},
                "tasks": {"qa": {"gpt-4o-mini": [1e308, 1, 0, 0, 0, 0]}},
                "cells": {},
                "priors": {},
                "shrinkage": _SHRINKAGE,
            },
        },
        "tasks.qa.gpt-4o-mini: quality sum 1e+308 exceeds the 1 outcomes",
        id="quality-above-its-outcomes",
    ),
]


@pytest.mark.parametrize(("predictor", "reason"), _BAD_PREDICTORS)
async def test_a_table_whose_predictor_does_not_parse_is_refused_whole(
    tmp_path: Path, clients: list[RouteTableClient], predictor: dict[str, object], reason: str
) -> None:
    # The modes and trade-offs of the refused table are fine: the whole table is refused all the
    # same (its modes with a predictor the app cannot use would route by pass-through).
    good = replace(_tuned(RouteTable(version=3, generated_at=1.0)), modes={"qa": "shadow"})
    bad = {"version": 99, "modes": {"qa": "enforce"}, "predictor": predictor}
    answers = [good.to_json().encode()]
    async with _answering(answers) as base:
        cache = tmp_path / "route_table.json"
        client = _client(clients, base, cache, wait_s=0.05)
        client.start()
        assert await _version(client, 3)
        assert await _eventually(lambda: load_table(cache) == good)
        cached = cache.read_bytes()
        with capture_logs() as logs:
            answers.append(json.dumps(bad).encode())
            assert await _eventually(lambda: client.stats.failures >= 3)
            assert client.table == good
            assert client.table.mode_for("qa", "off") == "shadow"
            assert cache.read_bytes() == cached  # the cache file is left as it was
            assert client.stats.cache_writes == 1
        refused = [e for e in logs if e["event"] == "agentmesh.route_table.refused"]
        assert len(refused) == 1  # once per outage, with the reason
        assert refused[0]["error"] == f"the predictor cannot be used: {reason}"
        assert refused[0]["error_type"] == RouteTableError.__name__
        assert refused[0]["version"] == 3
        assert not [e for e in logs if e["event"] == "router.predictor_invalid"]

        # The collector's next good table is taken, and cached, at once.
        following = replace(good, version=4, predictor=_learned(cheap=0.5))
        answers.append(following.to_json().encode())
        assert await _version(client, 4)
        assert client.table == following
        assert await _eventually(lambda: load_table(cache) == following)


@pytest.fixture
def instrumented() -> Iterator[InMemorySpanExporter]:
    """The real OpenAI SDK instrumented: its calls are routed by the route table in force."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)  # installs the routing hooks
    yield exporter
    routing.uninstall_provider_hooks()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    routing.reset_routing()
    route_table.shutdown_route_table()


async def test_an_app_keeps_routing_by_its_last_table_when_a_predictor_does_not_parse(
    tmp_path: Path,
    clients: list[RouteTableClient],
    instrumented: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # QA's case: an app whose mode comes from the table (enforce for task class qa) routes gpt-4o
    # calls to gpt-4o-mini, which the learned table rates better. The collector then answers a
    # table whose predictor does not parse: the app still routes to gpt-4o-mini.
    import openai  # the app's side (the collector's floor venv has no provider SDK)

    monkeypatch.delenv("AGENTMESH_ROUTING_MODE", raising=False)
    good = RouteTable(
        version=3,
        generated_at=1.0,
        modes={"qa": "enforce"},
        predictor=_learned("qa", cheap=0.95, dear=0.3),
    )
    bad = replace(good, version=99, predictor={"format": _FORMAT, "quality": {"models": 3}})
    answers = [good.to_json().encode()]
    cache = tmp_path / "route_table.json"
    with FakeProviderThread(default_script=ModelScript(content="hello")) as fake:
        async with _answering(answers) as base:
            client = _client(clients, base, cache, wait_s=0.05)
            route_table.configure_route_table(client=client)
            assert await _version(client, 3)
            routing.configure_routing(
                log=DecisionLog(),
                settings=InstrumentationSettings.load(
                    routing_candidates={"*": ["gpt-4o", "gpt-4o-mini"]}, routing_exploration=0.0
                ),
            )
            sdk = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)

            def ask() -> str:
                with task_class("qa"):
                    reply = sdk.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "Hello?"}]
                    )
                return reply.model

            assert await asyncio.to_thread(ask) == "gpt-4o-mini"
            assert await _eventually(lambda: load_table(cache) == good)
            cached = cache.read_bytes()
            with capture_logs() as logs:
                answers.append(bad.to_json().encode())
                assert await _eventually(lambda: client.stats.failures >= 2)
                assert await asyncio.to_thread(ask) == "gpt-4o-mini"
            assert route_table.current_route_table() == good
            assert cache.read_bytes() == cached
        sent = [r.model for r in fake.requests if r.route == "/v1/chat/completions"]
        assert sent == ["gpt-4o-mini", "gpt-4o-mini"]
    decisions = routing.decision_log().decisions()
    assert [(d.mode, d.chosen, d.table_version) for d in decisions] == [
        ("enforce", "gpt-4o-mini", 3),
        ("enforce", "gpt-4o-mini", 3),
    ]
    assert [e["event"] for e in logs if "predictor" in str(e.get("error", ""))] == [
        "agentmesh.route_table.refused"
    ]
    assert not [e for e in logs if e["event"] == "router.predictor_invalid"]
    assert len(instrumented.get_finished_spans()) == 2


# --- the process-wide client and the Collector's wiring -----------------------------------------


async def test_current_route_table_follows_the_collector(
    tmp_path: Path, clients: list[RouteTableClient]
) -> None:
    store = MemoryStore()
    async with Collector(_settings(), store) as collector:
        published = await collector.route_table.publish(_tuned)
        settings = InstrumentationSettings.load(
            control_url=collector.http_endpoint, route_table_cache=tmp_path / "rt.json"
        )
        assert route_table.route_table_target(settings) == collector.http_endpoint
        client = route_table.configure_route_table(settings=settings)
        assert client is not None
        assert route_table.route_table_client() is client
        assert client.cache_path == tmp_path / "rt.json"
        assert await _version(client, published.version)
        assert route_table.current_route_table() == published
        assert route_table.current_route_table().tradeoff_for("chat") == Tradeoff(5.0, 0.1)

        # A breaker the recovery engine opens reaches the app in the route table.
        recovery = collector.recovery
        assert recovery is not None
        until = time.time() + 60
        await recovery.control.open_breaker(
            "gpt-4o", Breaker("open", until, "5xx burst", "det-9", "openai", 60)
        )
        served = collector.route_table.current
        assert served.version > published.version
        assert await _version(client, served.version)
        assert "gpt-4o" in route_table.current_route_table().open_circuits(time.time())
        assert collector.route_table.published == published

    route_table.shutdown_route_table()
    assert not client.running
    off = InstrumentationSettings.load(control_url="http://127.0.0.1:1", route_table_sync=False)
    assert route_table.route_table_target(off) is None
    assert route_table.configure_route_table(settings=off) is None
    assert route_table.current_route_table() is BUNDLED_TABLE


def test_the_cache_is_read_before_the_client_thread_runs(
    tmp_path: Path, clients: list[RouteTableClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An app that calls at once after init, with the collector away: the cached table rules its
    # first calls, not the bundled defaults (the thread used to read the cache itself, later).
    # The thread is held back here, so only a read made before it can show the cached table.
    monkeypatch.setattr(RouteTableClient, "start", lambda self: None)  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]
    cache = tmp_path / "rt.json"
    cached = replace(_tuned(BUNDLED_TABLE), version=89)
    assert save_table(cache, cached)
    settings = InstrumentationSettings.load(
        control_url=f"http://127.0.0.1:{_closed_port()}", route_table_cache=cache
    )
    client = route_table.configure_route_table(settings=settings)
    assert client is not None
    assert route_table.current_route_table().version == 89  # no wait for the thread
    assert client.stats.cache_loads == 1
    route_table.shutdown_route_table()


@pytest.mark.parametrize(
    ("cached", "reason"),
    [
        pytest.param(
            {"version": 7, "modes": {"qa": "sometimes"}},
            "the mode of task class 'qa' must be one of off, shadow, enforce",
            id="bad-mode",
        ),
        pytest.param(
            {"version": 7, "modes": {"qa": "enforce"}, "predictor": {"format": "other"}},
            "the predictor cannot be used: predictor format 'other' is not",
            id="bad-predictor",
        ),
    ],
)
async def test_a_refused_cache_file_is_logged_once_and_not_taken(
    tmp_path: Path, clients: list[RouteTableClient], cached: dict[str, object], reason: str
) -> None:
    cache = tmp_path / "rt.json"
    cache.write_text(json.dumps(cached))
    settings = InstrumentationSettings.load(
        control_url=f"http://127.0.0.1:{_closed_port()}", route_table_cache=cache
    )
    with capture_logs() as logs:
        client = route_table.configure_route_table(settings=settings)
        assert client is not None
        # The thread has run past its own start (where it used to read the file again).
        assert await _eventually(lambda: client.stats.failures >= 1)
    assert route_table.current_route_table() is BUNDLED_TABLE
    assert client.stats.cache_loads == 0
    refused = [e for e in logs if e["event"] == "agentmesh.route_table.cache_refused"]
    assert len(refused) == 1
    assert reason in refused[0]["error"]
    assert refused[0]["path"] == str(cache)
    assert json.loads(cache.read_text()) == cached  # read, never rewritten
    route_table.shutdown_route_table()


def test_init_starts_the_followers_before_the_first_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clients: list[RouteTableClient]
) -> None:
    from agentmesh.instrumentation import _setup
    from agentmesh.instrumentation.control import shutdown_control
    from agentmesh.instrumentation.control._runtime import _slot as control_slot  # pyright: ignore[reportPrivateUsage]
    from agentmesh.instrumentation.route_table._runtime import _slot as table_slot  # pyright: ignore[reportPrivateUsage]

    monkeypatch.setenv("AGENTMESH_CONTROL_URL", f"http://127.0.0.1:{_closed_port()}")
    route_table.shutdown_route_table()
    shutdown_control()
    _setup._start_followers()  # pyright: ignore[reportPrivateUsage] - what init() ends with
    try:
        assert table_slot.configured
        assert control_slot.configured
        client = route_table.route_table_client()
        assert client is not None
        assert client.running
    finally:
        route_table.shutdown_route_table()
        shutdown_control()


async def test_publishing_a_table_apps_would_refuse_changes_nothing() -> None:
    async with Collector(_settings(), MemoryStore()) as collector:
        state = collector.route_table
        await state.publish(_tuned)
        with pytest.raises(RouteTableError, match="cost_weight must be a number of 0 or more"):
            await state.publish(lambda t: replace(t, tradeoffs={"*": Tradeoff(-1.0, 0.0)}))
        with pytest.raises(RouteTableError, match="cannot be written as JSON"):
            await state.publish(lambda t: replace(t, predictor={"w": float("inf")}))
        assert state.published.version == 1
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{collector.http_endpoint}/v1/route-table") as response,
        ):
            body = json.loads(await response.read())
        assert body["version"] == state.current.version
        assert body["tradeoffs"] == {"*": {"cost_weight": 5.0, "latency_weight": 0.1}}
