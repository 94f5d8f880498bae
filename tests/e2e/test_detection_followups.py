"""Warnings, cascades and resume points end to end: real collector, instrumented apps.

A real :class:`Collector` runs in this process; each app runs in a subprocess instrumented by
``agentmesh.instrumentation.init()`` (spans exported every 200 ms, the control document
long-polled), calling the real ``openai`` SDK against the bundled fake provider:

- one call that is a latency, a token and a cost spike at once: three warn detections within
  milliseconds; the control document the collector serves lists all three for the run (an app
  released before the list reads the entry as before and logs the warning it names);
- plain code whose three steps each fail once and succeed when the app retries them: no
  ``error_cascade`` (and no warning in the app); three steps failing one after another without
  retries: an ``error_cascade``, found while the run is live;
- a LangGraph graph with a checkpointer, planner → supervisor ↔ researcher forever: the run is
  stopped with the checkpoint of the planner → supervisor handoff (the state before the loop
  began), and the resume plan the collector serves names the same checkpoint and step.
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

import aiohttp
import pytest

from agentmesh.collector import Collector, CollectorSettings, Detection, MemoryStore
from agentmesh.collector.resume import find_plan
from agentmesh.core import semconv
from agentmesh.instrumentation.control._document import ControlDocument as AppDocument
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

SPIKY_CALL = textwrap.dedent(
    """
    import json, sys, time

    import openai

    from agentmesh.instrumentation import agent, init, workflow
    from agentmesh.instrumentation.control import current
    from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

    init()
    quick = ModelScript(content="yes", input_tokens=2, output_tokens=2, latency=0.03)
    with FakeProviderThread({"gpt-4o-mini": quick}) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)

        def call() -> None:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}]
            )

        for _ in range(25):  # the spike detectors' cold start: 20 values
            with workflow("multi"):
                with agent("worker"):
                    call()
        slow = ModelScript(content="x " * 200, input_tokens=2, output_tokens=400, latency=1.5)
        fake.set_script("gpt-4o-mini", slow)
        with workflow("multi") as run_id:
            with agent("worker"):
                call()  # slow, many tokens, costly: three spikes on one call
            fake.set_script("gpt-4o-mini", quick)
            deadline = time.time() + 20
            while time.time() < deadline and not open(sys.argv[1]).read():
                time.sleep(0.1)  # until the test saw the three warnings
            while time.time() < deadline and run_id not in current().runs:
                time.sleep(0.05)  # and the app has the document that lists them
            with agent("worker"):
                call()  # the next step: the warning is logged here
    print(json.dumps({"run_id": run_id}), flush=True)
    """
)

PLAIN_STEPS = textwrap.dedent(
    """
    import json, sys, time

    from agentmesh.instrumentation import agent, init, workflow
    from agentmesh.instrumentation.control import current

    init()
    retry = sys.argv[1] == "retry"
    with workflow("steps-" + sys.argv[1]) as run_id:
        for name in ("fetcher", "analyst", "writer"):
            failures = 1
            for attempt in range(2 if retry else 1):
                try:
                    with agent(name):
                        if failures:
                            failures -= 1
                            raise TimeoutError(f"{name}: transient timeout")
                    break
                except TimeoutError:
                    time.sleep(0.3)
            time.sleep(0.3)
        deadline = time.time() + (1.0 if retry else 30.0)
        while time.time() < deadline and run_id not in current().runs:
            time.sleep(0.05)  # a cascade: until the collector's decision arrived
        with agent("reporter"):  # a step after the failures: a warning would be logged here
            pass
    print(json.dumps({"run_id": run_id}), flush=True)
    """
)

PING_PONG_GRAPH = textwrap.dedent(
    """
    import json, sys, time
    from typing import TypedDict

    import openai
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, StateGraph

    from agentmesh.core.errors import RunStoppedError
    from agentmesh.instrumentation import init

    init()
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)

    class State(TypedDict):
        turns: int

    def step(state: State) -> State:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "next?"}]
        )
        return {"turns": state["turns"] + 1}

    graph = StateGraph(State)
    graph.add_node("planner", step)
    graph.add_node("supervisor", step)
    graph.add_node("researcher", step)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "supervisor")
    graph.add_edge("supervisor", "researcher")
    graph.add_edge("researcher", "supervisor")  # nobody ever decides to stop
    try:
        graph.compile(checkpointer=InMemorySaver()).invoke(
            {"turns": 0}, {"recursion_limit": 400, "configurable": {"thread_id": "t1"}}
        )
        out = {"outcome": "finished"}
    except RunStoppedError as exc:
        out = {
            "outcome": "stopped",
            "type": exc.detection_type,
            "run_id": exc.run_id,
            "resume_checkpoint_id": exc.resume_checkpoint_id,
        }
    print(json.dumps(out), flush=True)
    """
)


def _env(collector: Collector) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMESH_"))}
    env.update(
        AGENTMESH_ENDPOINT=collector.endpoint,
        AGENTMESH_CONTROL_URL=collector.http_endpoint,
        AGENTMESH_CONTROL_ENABLED="true",
        AGENTMESH_SERVICE_NAME="followups-e2e",
        # the exit flush is not under test here: a loaded CI machine may need more than 1 s
        AGENTMESH_SHUTDOWN_TIMEOUT_S="10",
    )
    return env


def _start(source: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", source, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def _finish(app: subprocess.Popen[str]) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The app's last JSON line, and the control logs it wrote (warnings, stops)."""
    try:
        out, err = await asyncio.to_thread(app.communicate, timeout=120)
    except subprocess.TimeoutExpired:
        app.kill()
        app.communicate()
        raise
    assert app.returncode == 0, err[-4000:]
    logs = [json.loads(line) for line in err.splitlines() if "agentmesh.control.run_" in line]
    return json.loads(out.strip().splitlines()[-1]), logs


def _settings(tmp_path: Path, **values: object) -> CollectorSettings:
    return CollectorSettings.load(
        grpc_port=0,
        http_port=0,
        decode_workers=0,
        duckdb_path=tmp_path / "unused.duckdb",
        **values,
    )


async def _control(collector: Collector) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{collector.http_endpoint}/v1/control") as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_every_warning_decided_together_is_served_for_the_run(tmp_path: Path) -> None:
    detections: list[Detection] = []
    # runaway off: the spiky run also costs far more than the 25 before it, and its stop
    # would win over the warnings
    settings = _settings(tmp_path, detectors_disabled="runaway")
    gate = tmp_path / "seen"
    gate.write_text("")
    async with Collector(settings, MemoryStore(), on_detection=detections.append) as collector:
        app = _start(SPIKY_CALL, [str(gate)], _env(collector))
        deadline = asyncio.get_running_loop().time() + 60
        spikes: list[Detection] = []
        while len(spikes) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            spikes = [d for d in detections if d.type.endswith("_spike")]
        text = await _control(collector)
        gate.write_text("go")
        out, logs = await _finish(app)

    assert sorted(d.type for d in spikes) == ["cost_spike", "latency_spike", "token_spike"]
    run_id = out["run_id"]
    assert isinstance(run_id, str)
    assert {d.run_id for d in spikes} == {run_id}
    entry = json.loads(text)["runs"][run_id]
    listed = entry["warnings"]
    assert sorted(w["detection_id"] for w in listed) == sorted(d.id for d in spikes)
    assert all(w["action"] == "warn" for w in listed)
    assert (entry["action"], entry["detection_id"]) == ("warn", listed[-1]["detection_id"])
    # the app's reader takes the entry as before, and the list beside it ...
    parsed = AppDocument.parse(text).runs[run_id]
    assert parsed.detection_id == entry["detection_id"]
    assert [w.detection_id for w in parsed.warnings] == [w["detection_id"] for w in listed]
    # ... and logs each warning, once
    warned = [log for log in logs if log["event"] == "agentmesh.control.run_warned"]
    assert sorted(w["detection_id"] for w in warned) == sorted(d.id for d in spikes)


async def test_steps_retried_with_success_are_no_cascade_and_unretried_ones_are(
    tmp_path: Path,
) -> None:
    detections: list[Detection] = []
    async with Collector(
        _settings(tmp_path), MemoryStore(), on_detection=detections.append
    ) as collector:
        retried, retried_logs = await _finish(_start(PLAIN_STEPS, ["retry"], _env(collector)))
        cascade, cascade_logs = await _finish(_start(PLAIN_STEPS, ["cascade"], _env(collector)))
        await collector.drain()

    cascades = [d for d in detections if d.type == "error_cascade"]
    assert [d.run_id for d in cascades] == [cascade["run_id"]]
    assert retried_logs == []  # nothing to warn about: every step succeeded in the end
    agents = cascades[0].details["agents"]
    assert isinstance(agents, list)
    assert agents[:2] == ["fetcher", "analyst"]
    # found while the run was live: the app's step after the failures logged the warning
    assert [log["detection_type"] for log in cascade_logs] == ["error_cascade"]
    assert retried["run_id"] != cascade["run_id"]


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(default_script=ModelScript(content="ok", latency=0.05)) as provider:
        yield provider


async def test_a_stopped_loop_resumes_from_the_state_before_the_loop(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    detections: list[Detection] = []
    store = MemoryStore()
    async with Collector(_settings(tmp_path), store, on_detection=detections.append) as collector:
        out, _ = await _finish(_start(PING_PONG_GRAPH, [fake.openai_base_url], _env(collector)))
        await collector.drain()
        run_id = out.get("run_id")
        assert isinstance(run_id, str), out
        plan = await find_plan(store, run_id)
        spans = await store.spans(plan.trace_id)

    assert (out["outcome"], out["type"]) == ("stopped", "ping_pong")
    into_loop = [
        s
        for s in spans
        if s.attributes.get(semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME) == "planner"
        and s.attributes.get(semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME) == "supervisor"
    ]
    (handoff,) = into_loop
    checkpoint = handoff.attributes.get(semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID)
    assert isinstance(checkpoint, str)  # the state after the planner, before the loop
    assert out["resume_checkpoint_id"] == checkpoint
    assert (plan.status, plan.checkpoint_id, plan.resume_from, plan.thread_id) == (
        "stopped",
        checkpoint,
        "supervisor",
        "t1",
    )
