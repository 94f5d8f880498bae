"""Detection → recovery end to end: an instrumented app, a real collector, the app changes course.

Each test runs a real :class:`Collector` (OTLP/gRPC in, ``/v1/control`` out) in this process and
an application in a subprocess, instrumented by ``agentmesh.instrumentation.init()`` with the
default settings (spans exported every 200 ms, the control document long-polled), calling the
real ``openai`` SDK against the bundled fake provider:

- a LangGraph graph (with a checkpointer) whose planner and drafter do their work, then whose
  supervisor and researcher hand work back and forth forever: the collector reports
  ``ping_pong``, the policy stops the run, and the graph's next step raises
  :class:`~agentmesh.core.errors.RunStoppedError` long before LangGraph's recursion limit,
  naming the checkpoint the loop began from (taken at the drafter → supervisor handoff);
- plain code calling ``gpt-4o`` (answering 503) with a fallback chain to ``gpt-4o-mini`` in
  ``enforce`` routing: each call falls back (one span per call, the failed attempt an event);
  the collector reports ``provider_outage`` on ``gpt-4o`` from those attempts, opens its
  breaker, and the app stops asking ``gpt-4o`` at all until the breaker's cool-down ends.

Each prints the latency from the span that showed the failure to the app's changed behaviour
(run with ``-s`` to see it); the figures are in ``docs/detection.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from agentmesh.collector import Collector, CollectorSettings, Detection, MemoryStore
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript

LOOPING_GRAPH = textwrap.dedent(
    """
    import json, sys, time
    from typing import TypedDict

    import openai
    from langgraph.checkpoint.memory import MemorySaver
    from langgraph.graph import START, StateGraph

    from agentmesh.core.errors import RunStoppedError
    from agentmesh.instrumentation import init

    init()
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    ends = []

    class State(TypedDict):
        turns: int

    def step(state: State) -> State:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "next?"}]
        )
        ends.append(time.time())
        return {"turns": state["turns"] + 1}

    graph = StateGraph(State)
    graph.add_node("planner", step)
    graph.add_node("drafter", step)
    graph.add_node("supervisor", step)
    graph.add_node("researcher", step)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "drafter")
    graph.add_edge("drafter", "supervisor")
    graph.add_edge("supervisor", "researcher")
    graph.add_edge("researcher", "supervisor")  # nobody ever decides to stop
    try:
        graph.compile(checkpointer=MemorySaver()).invoke(
            {"turns": 0}, {"recursion_limit": 400, "configurable": {"thread_id": "loop-1"}}
        )
        out = {"outcome": "finished"}
    except RunStoppedError as exc:
        out = {
            "outcome": "stopped",
            "type": exc.detection_type,
            "run_id": exc.run_id,
            "detection_id": exc.detection_id,
            "message": str(exc),
            "resume_checkpoint_id": exc.resume_checkpoint_id,
        }
    out["raised_at"] = time.time()
    out["steps"] = len(ends)
    print(json.dumps(out), flush=True)
    """
)

STALLING_GRAPH = textwrap.dedent(
    """
    import json, sys, time
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from agentmesh.instrumentation import init

    init()

    class State(TypedDict):
        done: list[str]

    def slow(state: State) -> State:
        time.sleep(float(sys.argv[1]))  # far past the step's bound
        return {"done": [*state["done"], "slow"]}

    def after(state: State) -> State:
        return {"done": [*state["done"], "after"]}

    graph = StateGraph(State)
    graph.add_node("slow", slow)
    graph.add_node("after", after)
    graph.add_edge(START, "slow")
    graph.add_edge("slow", "after")
    graph.add_edge("after", END)
    print(json.dumps(graph.compile().invoke({"done": []})), flush=True)
    """
)

FALLING_BACK = textwrap.dedent(
    """
    import json, sys, time

    import openai

    from agentmesh.instrumentation import init
    from agentmesh.instrumentation.control import open_breakers

    init()
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    calls = []
    opened_at = None
    deadline = time.time() + float(sys.argv[2])
    while time.time() < deadline:
        answer = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
        calls.append({"at": time.time(), "model": answer.model})
        if opened_at is None and "gpt-4o" in open_breakers():
            opened_at = time.time()
        time.sleep(0.05)
    print(json.dumps({"calls": calls, "opened_at": opened_at}), flush=True)
    """
)


def _env(collector: Collector, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMESH_"))}
    env.update(
        AGENTMESH_ENDPOINT=collector.endpoint,
        AGENTMESH_CONTROL_URL=collector.http_endpoint,
        AGENTMESH_CONTROL_ENABLED="true",
        AGENTMESH_SERVICE_NAME="recovery-e2e",
        # the exit flush is not under test here: a loaded CI machine may need more than 1 s
        AGENTMESH_SHUTDOWN_TIMEOUT_S="10",
        **extra,
    )
    return env


async def _run_app(
    source: str, args: list[str], env: dict[str, str], stderr: list[str] | None = None
) -> dict[str, object]:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", source, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    if stderr is not None:
        stderr.append(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    # Each answer takes 50 ms, about what a fast model takes to say a few words.
    with FakeProviderThread(default_script=ModelScript(content="ok", latency=0.05)) as provider:
        yield provider


def _settings(tmp_path: Path) -> CollectorSettings:
    return CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, duckdb_path=tmp_path / "unused.duckdb"
    )


async def test_a_ping_pong_run_is_stopped_at_its_next_step(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    detections: list[Detection] = []
    store = MemoryStore()
    async with Collector(_settings(tmp_path), store, on_detection=detections.append) as collector:
        out = await _run_app(LOOPING_GRAPH, [fake.openai_base_url], _env(collector))
        await collector.drain()
        engine = collector.recovery
        assert engine is not None
        actions = list(engine.actions)
        spans = {span.span_id: span for span in await store.spans(detections[0].trace_id)}

    assert out["outcome"] == "stopped", out
    (detection,) = [d for d in detections if d.type == "ping_pong"]
    assert out["type"] == "ping_pong"
    assert out["detection_id"] == detection.id
    assert out["run_id"] == detection.run_id
    assert "AgentMesh stopped run" in str(out["message"])
    # The run can resume from the checkpoint the loop began from (drafter → supervisor).
    resume = out["resume_checkpoint_id"]
    assert isinstance(resume, str)
    assert resume in str(out["message"])
    assert [(a.kind, a.run_id) for a in actions] == [("stop_run", detection.run_id)]
    # Far fewer steps than the recursion limit would have allowed (400).
    steps = out["steps"]
    assert isinstance(steps, int)
    assert 8 <= steps < 100, out
    faulty = spans[detection.span_ids[-1]]  # the step that completed the fourth round trip
    raised_at = out["raised_at"]
    assert isinstance(raised_at, float)
    latency_ms = (raised_at - faulty.end_ns / 1e9) * 1000
    assert latency_ms > 0
    print(f"\nping_pong: faulty span end -> RunStoppedError in the app: {latency_ms:.0f} ms")


async def test_a_provider_outage_opens_a_breaker_the_app_routes_around(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    detections: list[Detection] = []
    async with Collector(
        _settings(tmp_path), MemoryStore(), on_detection=detections.append
    ) as collector:
        env = _env(
            collector,
            AGENTMESH_ROUTING_MODE="enforce",
            AGENTMESH_ROUTING_FALLBACKS=json.dumps({"gpt-4o": ["gpt-4o-mini"]}),
            # Local cooldowns off: with them this one app fails once, too little for the outage
            # detector; this test is about the collector's breaker (both together, with a
            # fleet of apps: tests/e2e/test_routing_enforce.py).
            AGENTMESH_ROUTING_COOLDOWN_S="0",
        )
        out = await _run_app(FALLING_BACK, [fake.openai_base_url, "4"], env)
        engine = collector.recovery
        assert engine is not None
        actions = list(engine.actions)
    requests = fake.requests

    outages = [d for d in detections if d.type == "provider_outage"]
    assert len(outages) == 1, [d.type for d in detections]
    assert outages[0].details["model"] == "gpt-4o"
    assert [a.kind for a in actions if a.model == "gpt-4o"][:1] == ["open_breaker"]
    calls = cast("list[dict[str, object]]", out["calls"])
    assert calls
    assert {call["model"] for call in calls} == {"gpt-4o-mini"}  # every call was answered
    opened_at = out["opened_at"]
    assert isinstance(opened_at, float), out  # the app saw the breaker open
    asked = [r for r in requests if r.route == "/v1/chat/completions"]
    before = [r.model for r in asked if r.time < opened_at]
    after = [r.model for r in asked if r.time > opened_at + 0.2]
    assert "gpt-4o" in before  # it was tried (and failed) until the breaker opened
    assert after
    assert set(after) == {"gpt-4o-mini"}  # then no call went to gpt-4o at all
    tipping = outages[0].detected_at_ns / 1e9
    print(
        f"\nprovider_outage: detection -> app sees the breaker: {(opened_at - tipping) * 1000:.0f}"
        f" ms; {len(before)} requests before, {len(after)} after (none to gpt-4o)"
    )


async def test_a_stuck_step_makes_the_next_step_warn(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    del fake
    detections: list[Detection] = []
    settings = _settings(tmp_path).model_copy(update={"detect_stuck_default_bound_seconds": 1.0})
    stderr: list[str] = []
    async with Collector(settings, MemoryStore(), on_detection=detections.append) as collector:
        out = await _run_app(STALLING_GRAPH, ["2.5"], _env(collector), stderr)
        await collector.drain()
        engine = collector.recovery
        assert engine is not None
        actions = list(engine.actions)

    assert out == {"done": ["slow", "after"]}  # a warning never stops the run
    stuck = [d for d in detections if d.type == "stuck"]
    # The slow agent is reported (with a 1 s bound, the workflow around it may be too, when the
    # agent's start marker arrives after the workflow's bound has passed).
    assert "slow" in [d.agent for d in stuck]
    assert {d.run_id for d in stuck} == {stuck[0].run_id}
    assert actions
    assert {(a.kind, a.run_id) for a in actions} == {("warn_run", stuck[0].run_id)}
    warned = [
        json.loads(line)
        for line in stderr[0].splitlines()
        if "agentmesh.control.run_warned" in line
    ]
    assert warned  # logged at the next step, once per detection
    assert {w["detection_id"] for w in warned} <= {d.id for d in stuck}
    assert len(warned) == len({w["detection_id"] for w in warned})
    print(f"\nstuck: detected {stuck[-1].explanation!r}; the next step logged the warning")
