"""Plain code's runs are watched while they run, as LangGraph's are: a real collector, real apps.

Plain code declares its run and agents with ``workflow()`` and ``agent()``; each step exports a
start marker as it begins. Each test runs a real :class:`Collector` in this process and an app in
a subprocess (``agentmesh.instrumentation.init()``, the real ``openai`` SDK against the bundled
fake provider), as ``test_recovery.py`` does for LangGraph:

- an agent step that hangs past its bound is reported ``stuck`` while it hangs, and the next
  step logs the warning;
- each call is scored against its own agent's norms: a new agent's first, longer call is no
  spike against another agent's history, while a spike of an agent is reported as that agent's;
- a run far over its workflow's norm is stopped while it runs, at its next call.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from test_recovery import (  # the LangGraph recovery tests' app runner and settings
    _env,  # pyright: ignore[reportPrivateUsage]
    _run_app,  # pyright: ignore[reportPrivateUsage]
    _settings,  # pyright: ignore[reportPrivateUsage]
)

from agentmesh.collector import Collector, Detection, MemoryStore

STALLING_STEPS = textwrap.dedent(
    """
    import json, sys, time

    import openai

    from agentmesh.instrumentation import agent, init, workflow
    from agentmesh.instrumentation.testing import FakeProviderThread

    init()
    done = []
    with FakeProviderThread() as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
        with workflow("stalling") as run_id:
            with agent("planner"):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "plan"}]
                )
                done.append("planner")
            with agent("slowpoke"):
                time.sleep(float(sys.argv[1]))  # far past the step's bound
                done.append("slowpoke")
            with agent("finisher"):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "finish"}]
                )
                done.append("finisher")
    print(json.dumps({"run_id": run_id, "done": done}), flush=True)
    """
)

TWO_AGENTS = textwrap.dedent(
    """
    import json

    import openai

    from agentmesh.instrumentation import agent, init, workflow
    from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

    init()
    SHORT = ModelScript(content="yes", input_tokens=1, output_tokens=1)
    LONG = ModelScript(content="summary " * 20, input_tokens=1, output_tokens=40)
    with FakeProviderThread({"gpt-4o-mini": SHORT}) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)

        def call(workflow_name, agent_name):
            with workflow(workflow_name) as run_id:
                with agent(agent_name):
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "go"}]
                    )
            return run_id

        for _ in range(25):  # the classifier's norm: one-token answers
            call("triage", "classifier")
        fake.set_script("gpt-4o-mini", LONG)
        summariser = call("summarise", "summariser")  # a new agent: no norm of its own yet
        classifier = call("triage", "classifier")  # 20 times the classifier's norm
    print(json.dumps({"summariser": summariser, "classifier": classifier}), flush=True)
    """
)

NORM_OVERRUN = textwrap.dedent(
    """
    import json, sys, time

    import openai

    from agentmesh.core.errors import RunStoppedError
    from agentmesh.instrumentation import agent, init, workflow
    from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

    init()
    CHEAP = ModelScript(content="ok", input_tokens=5, output_tokens=5)
    DEAR = ModelScript(content="x", input_tokens=5, output_tokens=5000)
    cheap_runs, most_calls = int(sys.argv[1]), int(sys.argv[2])
    with FakeProviderThread({"gpt-4o": CHEAP}) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)

        def call():
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "q"}]
            )

        for _ in range(cheap_runs):
            with workflow("nightly"):
                with agent("spender"):
                    call()
        fake.set_script("gpt-4o", DEAR)
        calls = 0
        out = {}
        try:
            with workflow("nightly") as run_id:
                out["run_id"] = run_id
                with agent("spender"):
                    for _ in range(most_calls):
                        call()
                        calls += 1
                        time.sleep(0.1)
            out["outcome"] = "finished"
        except RunStoppedError as exc:
            out.update(outcome="stopped", type=exc.detection_type, detection_id=exc.detection_id)
    out["calls"] = calls
    print(json.dumps(out), flush=True)
    """
)


async def test_a_plain_step_that_hangs_is_reported_stuck_while_it_hangs(tmp_path: Path) -> None:
    detections: list[Detection] = []
    settings = _settings(tmp_path).model_copy(update={"detect_stuck_default_bound_seconds": 1.0})
    stderr: list[str] = []
    async with Collector(settings, MemoryStore(), on_detection=detections.append) as collector:
        out = await _run_app(STALLING_STEPS, ["2.5"], _env(collector), stderr)
        await collector.drain()
        engine = collector.recovery
        assert engine is not None
        actions = list(engine.actions)

    assert out["done"] == ["planner", "slowpoke", "finisher"]  # a warning never stops the run
    stuck = [d for d in detections if d.type == "stuck"]
    # The hanging agent is reported (with a 1 s bound, the workflow around it may be too).
    (slowpoke,) = [d for d in stuck if d.agent == "slowpoke"]
    assert slowpoke.run_id == out["run_id"]
    assert slowpoke.details["step_kind"] == "agent"
    assert {d.run_id for d in stuck} == {out["run_id"]}
    assert {(a.kind, a.run_id) for a in actions} == {("warn_run", out["run_id"])}
    warned = [
        json.loads(line)
        for line in stderr[0].splitlines()
        if "agentmesh.control.run_warned" in line
    ]
    assert warned  # logged at the next step (the finisher)
    assert {w["detection_id"] for w in warned} <= {d.id for d in stuck}


async def test_plain_calls_are_scored_against_their_own_agents_norms(tmp_path: Path) -> None:
    detections: list[Detection] = []
    async with Collector(
        _settings(tmp_path), MemoryStore(), on_detection=detections.append
    ) as collector:
        out = await _run_app(TWO_AGENTS, [], _env(collector))
        await collector.drain()

    spikes = [d for d in detections if d.type in {"token_spike", "cost_spike"}]
    # the summariser's first call is not compared with the classifier's history...
    assert [d for d in spikes if d.run_id == out["summariser"]] == []
    # ...and the classifier's own spike is the classifier's
    assert {(d.type, d.agent, d.run_id) for d in spikes} >= {
        ("token_spike", "classifier", out["classifier"])
    }
    assert {d.agent for d in spikes} == {"classifier"}


async def test_a_plain_run_far_over_its_workflows_norm_is_stopped_while_it_runs(
    tmp_path: Path,
) -> None:
    detections: list[Detection] = []
    settings = _settings(tmp_path).model_copy(update={"detect_runaway_min_runs": 5})
    async with Collector(settings, MemoryStore(), on_detection=detections.append) as collector:
        out = await _run_app(NORM_OVERRUN, ["6", "100"], _env(collector))
        await collector.drain()

    (runaway,) = [d for d in detections if d.type == "runaway"]
    assert runaway.run_id == out["run_id"]
    assert runaway.details["basis"] == "norm"
    assert runaway.details["workflow"] == "nightly"
    # stopped at a call of the run itself, long before its 100 calls were made
    assert out["outcome"] == "stopped", out
    assert (out["type"], out["detection_id"]) == ("runaway", runaway.id)
    calls = out["calls"]
    assert isinstance(calls, int)
    assert calls < 100
