"""Enforce-mode routing through an outage: one failed request per app, then the fleet's breaker.

A real :class:`Collector` (OTLP/gRPC in, ``/v1/control`` out) runs in this process; a small
fleet of applications runs in subprocesses, each instrumented by
``agentmesh.instrumentation.init()`` in ``enforce`` routing with a fallback chain
``gpt-4o -> gpt-4o-mini``, each calling the real ``openai`` SDK against the bundled fake
provider. Every app first makes a successful call to ``gpt-4o``; then ``gpt-4o`` starts
answering 503 and the apps keep calling it:

- each app's first call after the outage begins fails on ``gpt-4o`` and falls back (the app
  gets its answer from ``gpt-4o-mini``); that one failure cools ``gpt-4o`` down in the app, so
  its next calls go straight to ``gpt-4o-mini``: exactly one failed request per app, read from
  the fake provider's request log (each app sends its own ``x-app`` header);
- the collector sees those failed attempts (one per app, from several runs), reports
  ``provider_outage`` on ``gpt-4o`` and opens its breaker, visible in ``GET /v1/control``
  (and ``GET /v1/route-table`` when the collector serves it) within seconds, and in the apps.

A fleet rather than one app: with local cooldowns one app sends a single failed request per
outage, and the outage detector needs failures from at least two runs among at least six calls
(which is the point of the breaker: it carries one app's evidence to the whole fleet).

Prints the latency from the first failing span to the breaker being served (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import aiohttp
import pytest

from agentmesh.collector import Collector, CollectorSettings, Detection, MemoryStore
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript

APPS = 4
"""Apps of the fleet: with one success each first, the third failure makes the outage."""

APP = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import openai

    from agentmesh.instrumentation import init, routing
    from agentmesh.instrumentation.control import open_breakers

    init()
    base_url, app, sync, seconds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    client = openai.OpenAI(
        base_url=base_url, api_key="sk-test", max_retries=0, default_headers={"x-app": app}
    )

    def ask():
        answer = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
        return {"at": time.time(), "model": answer.model}

    before = [ask()]  # gpt-4o works
    (sync / f"ready-{app}").touch()
    wait_until = time.time() + 60
    while not (sync / "go").exists():  # the outage begins
        if time.time() > wait_until:
            raise SystemExit("never told to go on")
        time.sleep(0.01)
    calls, opened_at = [], None
    deadline = time.time() + seconds
    while time.time() < deadline:
        calls.append(ask())
        if opened_at is None and "gpt-4o" in open_breakers():
            opened_at = time.time()
            deadline = min(deadline, opened_at + 1.0)  # a second more under the breaker
        time.sleep(0.05)
    decisions = [
        {"at": d.timestamp, "version": d.table_version, "chosen": d.chosen, "reason": d.reason}
        for d in routing.decision_log().decisions()
    ]
    print(
        json.dumps(
            {"before": before, "calls": calls, "opened_at": opened_at, "decisions": decisions}
        ),
        flush=True,
    )
    """
)


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(default_script=ModelScript(content="ok", latency=0.05)) as provider:
        yield provider


def _settings(tmp_path: Path) -> CollectorSettings:
    return CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, duckdb_path=tmp_path / "unused.duckdb"
    )


def _env(collector: Collector) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMESH_"))}
    env.update(
        AGENTMESH_ENDPOINT=collector.endpoint,
        AGENTMESH_CONTROL_URL=collector.http_endpoint,
        AGENTMESH_CONTROL_ENABLED="true",
        AGENTMESH_SERVICE_NAME="routing-enforce-e2e",
        # the exit flush is not under test here: a loaded CI machine may need more than 1 s
        AGENTMESH_SHUTDOWN_TIMEOUT_S="10",
        AGENTMESH_ROUTING_MODE="enforce",
        AGENTMESH_ROUTING_FALLBACKS=json.dumps({"gpt-4o": ["gpt-4o-mini"]}),
    )
    return env


def _run_app(args: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", APP, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _breakers(session: aiohttp.ClientSession, url: str) -> dict[str, object] | None:
    """The ``breakers`` of a JSON document served at ``url``; ``None`` unless it answers 200."""
    async with session.get(url) as response:
        if response.status != 200:
            return None
        document = cast("dict[str, object]", await response.json(content_type=None))
    return cast("dict[str, object]", document.get("breakers") or {})


async def _wait_for(path: Path, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all((path / name).exists() for name in names):
        assert time.monotonic() < deadline, f"apps not ready: {sorted(os.listdir(path))}"
        await asyncio.sleep(0.02)


async def test_an_outage_costs_each_app_one_failed_request_then_the_breaker_opens(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    detections: list[Detection] = []
    async with Collector(
        _settings(tmp_path), MemoryStore(), on_detection=detections.append
    ) as collector:
        env = _env(collector)
        apps = [
            asyncio.create_task(
                asyncio.to_thread(_run_app, [fake.openai_base_url, str(i), str(sync), "25"], env)
            )
            for i in range(APPS)
        ]
        await _wait_for(sync, [f"ready-{i}" for i in range(APPS)], 90)
        fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
        outage_at = time.time()
        (sync / "go").touch()

        control_url = f"{collector.http_endpoint}/v1/control"
        table_url = f"{collector.http_endpoint}/v1/route-table"
        served_at: float | None = None
        table_at: float | None = None
        table_served = True
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (served_at is None or table_at is None):
                if served_at is None and "gpt-4o" in (await _breakers(session, control_url) or {}):
                    served_at = time.time()
                if table_served and table_at is None:
                    breakers = await _breakers(session, table_url)
                    if breakers is None:
                        table_served = False  # no route table served by this collector yet
                    elif "gpt-4o" in breakers:
                        table_at = time.time()
                if not table_served and served_at is not None:
                    break
                await asyncio.sleep(0.02)
        outs = await asyncio.gather(*apps)
        engine = collector.recovery
        assert engine is not None
        actions = list(engine.actions)

    requests = [r for r in fake.requests if r.route == "/v1/chat/completions"]
    # Every call of every app was answered: by gpt-4o before the outage, by gpt-4o-mini after.
    for out in outs:
        before = cast("list[dict[str, object]]", out["before"])
        calls = cast("list[dict[str, object]]", out["calls"])
        assert [str(c["model"]).startswith("gpt-4o-mini") for c in before] == [False]
        assert len(calls) >= 5, out
        assert all(str(c["model"]).startswith("gpt-4o-mini") for c in calls), out
    # Exactly one failed request per app: the first call after the outage began, none beyond.
    failed = [r for r in requests if r.model == "gpt-4o" and r.time >= outage_at]
    by_app = {str(i): [r for r in failed if r.headers.get("x-app") == str(i)] for i in range(APPS)}
    assert {app: len(reqs) for app, reqs in by_app.items()} == dict.fromkeys(by_app, 1)
    for app, (first_failure,) in by_app.items():
        later = [
            r for r in requests if r.headers.get("x-app") == app and r.time > first_failure.time
        ]
        assert later, app
        assert {r.model for r in later} == {"gpt-4o-mini"}
    # The collector saw the outage from those attempts and opened the breaker.
    outages = [d for d in detections if d.type == "provider_outage"]
    assert len(outages) == 1, [d.type for d in detections]
    assert outages[0].details["model"] == "gpt-4o"
    assert [a.kind for a in actions if a.model == "gpt-4o"][:1] == ["open_breaker"]
    assert served_at is not None, "the breaker never showed in /v1/control"
    assert any(isinstance(out["opened_at"], float) for out in outs), outs  # the apps saw it
    if table_served:
        assert table_at is not None, "the breaker never showed in /v1/route-table"

    first_span = int(cast("int", outages[0].details["episode_start_ns"])) / 1e9
    table_note = (
        f"; in /v1/route-table after {(table_at - first_span) * 1000:.0f} ms"
        if table_at is not None
        else "; /v1/route-table not served"
    )
    print(
        f"\nrouting enforce: {len(failed)} failed requests for {APPS} apps "
        f"({len(requests)} requests in all); first failing span -> breaker in /v1/control: "
        f"{(served_at - first_span) * 1000:.0f} ms{table_note}; outage start -> breaker "
        f"{(served_at - outage_at) * 1000:.0f} ms"
    )


async def _model_errors(session: aiohttp.ClientSession, url: str, model: str) -> tuple[int, int]:
    """(errors recorded for ``model``, version) of the served route table."""
    async with session.get(url) as response:
        table = cast("dict[str, object]", await response.json(content_type=None))
    models = cast("dict[str, dict[str, object]]", table.get("models") or {})
    return int(cast("int", models.get(model, {}).get("errors", 0))), int(
        cast("int", table["version"])
    )


async def test_one_app_pays_one_failed_request_and_the_route_table_shifts_within_seconds(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    """A single app: its cooldown moves it at once; the collector's table records the failure.

    One app sends one failed request per outage (too little evidence for the fleet breaker):
    the route table still shifts within seconds, because the router trainer learns from the
    failed attempt (``gpt-4o`` gets an error outcome in the task class), and the app follows
    the new table version in its next decisions.
    """
    sync = tmp_path / "sync"
    sync.mkdir()
    settings = CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        decode_workers=0,
        duckdb_path=tmp_path / "unused.duckdb",
        router_publish_seconds=0.1,
    )
    async with Collector(settings, MemoryStore()) as collector:
        env = _env(collector)
        app = asyncio.create_task(
            asyncio.to_thread(_run_app, [fake.openai_base_url, "solo", str(sync), "6"], env)
        )
        await _wait_for(sync, ["ready-solo"], 90)
        table_url = f"{collector.http_endpoint}/v1/route-table"
        async with aiohttp.ClientSession() as session:
            _, version_before = await _model_errors(session, table_url, "gpt-4o")
            fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
            outage_at = time.time()
            (sync / "go").touch()
            shifted_at: float | None = None
            shifted_version = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                errors, version = await _model_errors(session, table_url, "gpt-4o")
                if errors >= 1:
                    shifted_at, shifted_version = time.time(), version
                    break
                await asyncio.sleep(0.02)
        out = await app

    requests = [r for r in fake.requests if r.route == "/v1/chat/completions"]
    failed = [r for r in requests if r.model == "gpt-4o" and r.time >= outage_at]
    assert len(failed) == 1, [(r.model, r.time - outage_at) for r in requests]
    calls = cast("list[dict[str, object]]", out["calls"])
    assert len(calls) >= 5
    assert all(str(c["model"]).startswith("gpt-4o-mini") for c in calls), calls
    assert shifted_at is not None, "the route table never recorded the failure"
    assert shifted_version > version_before
    decisions = cast("list[dict[str, object]]", out["decisions"])
    later = [d for d in decisions if float(cast("float", d["at"])) > shifted_at + 1.0]
    assert later, "no decision after the table shifted"
    assert all(int(cast("int", d["version"])) >= shifted_version for d in later), later
    assert all(d["chosen"] == "gpt-4o-mini" for d in later), later
    print(
        f"\nrouting enforce, one app: {len(failed)} failed request; outage start -> route table "
        f"shifted (version {version_before} -> {shifted_version}) in "
        f"{(shifted_at - outage_at) * 1000:.0f} ms"
    )
