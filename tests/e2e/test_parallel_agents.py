"""Agents working in parallel are not ping-pong: a real collector, real apps, end to end.

Each test runs a real :class:`Collector` in this process (default settings: the loop rules and
the recovery policy that stops a looping run) and an app in a subprocess, instrumented by
``agentmesh.instrumentation.init()`` and calling the real ``openai`` SDK against the bundled
fake provider (the helpers of ``test_recovery.py``):

- plain code: two ``agent()`` workers under ``asyncio.gather``, each handling 12 items of its
  own; their spans interleave by start time, which the collector once read as
  ``invoice_reader → receipt_reader → invoice_reader…`` and stopped the run for ``ping_pong``;
- LangGraph: START fans out to two branches that each loop on themselves 8 times;
- and, so the fix does not hide real loops, the same shapes with a supervisor ↔ researcher
  ping-pong in one of the parallel branches: that run is still stopped, for that pair only.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from test_recovery import _env, _run_app, _settings

from agentmesh.collector import Collector, Detection, MemoryStore
from agentmesh.collector.store.base import StoredGraph
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

GATHERED = textwrap.dedent(
    """
    import asyncio, json, sys

    import openai

    from agentmesh.core.errors import RunStoppedError
    from agentmesh.instrumentation import agent, init, workflow

    init()
    client = openai.AsyncOpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    LOOP = sys.argv[2] == "loop"

    async def step(name, item):
        with agent(name):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"{name} {item}"}]
            )
            await asyncio.sleep(0.1)

    async def worker(name, items):
        for item in items:
            await step(name, item)
        return len(items)

    async def ping_pong(rounds):
        for i in range(rounds):  # nobody decides to stop before the rounds run out
            await step("supervisor", i)
            await step("researcher", i)
        return rounds

    async def main():
        run_id = None
        try:
            with workflow("parallel-workers") as run_id:
                first = ping_pong(30) if LOOP else worker("invoice_reader", range(12))
                done = await asyncio.gather(first, worker("receipt_reader", range(12)))
            out = {"outcome": "finished", "done": done}
        except RunStoppedError as exc:
            out = {"outcome": "stopped", "type": exc.detection_type, "message": str(exc)}
        out["run_id"] = run_id
        print(json.dumps(out), flush=True)

    asyncio.run(main())
    """
)

BRANCHES = textwrap.dedent(
    """
    import json, operator, sys, time
    from typing import Annotated, TypedDict

    import openai
    from langgraph.graph import END, START, StateGraph

    from agentmesh.core.errors import RunStoppedError
    from agentmesh.instrumentation import init

    init()
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    LOOP = sys.argv[2] == "loop"
    N = 8

    class State(TypedDict):
        a: Annotated[list[int], operator.add]
        b: Annotated[list[int], operator.add]

    def node(key):
        def run(state):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": key}]
            )
            time.sleep(0.1)
            return {key: [len(state[key])]}
        return run

    graph = StateGraph(State)
    graph.add_node("receipt_reader", node("b"))
    graph.add_edge(START, "receipt_reader")
    graph.add_conditional_edges(
        "receipt_reader", lambda s: "receipt_reader" if len(s["b"]) < N else END
    )
    if LOOP:  # a supervisor and a researcher that hand work back and forth for ever
        graph.add_node("supervisor", node("a"))
        graph.add_node("researcher", node("a"))
        graph.add_edge(START, "supervisor")
        graph.add_edge("supervisor", "researcher")
        graph.add_edge("researcher", "supervisor")
    else:
        graph.add_node("invoice_reader", node("a"))
        graph.add_edge(START, "invoice_reader")
        graph.add_conditional_edges(
            "invoice_reader", lambda s: "invoice_reader" if len(s["a"]) < N else END
        )
    try:
        final = graph.compile(name="parallel_graph").invoke(
            {"a": [], "b": []}, {"recursion_limit": 200}
        )
        out = {"outcome": "finished", "done": [len(final["a"]), len(final["b"])]}
    except RunStoppedError as exc:
        out = {"outcome": "stopped", "type": exc.detection_type, "message": str(exc)}
    print(json.dumps(out), flush=True)
    """
)

_LOOP_TYPES = ("ping_pong", "handoff_loop")


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    # As in test_recovery.py: each answer takes 50 ms.
    with FakeProviderThread(default_script=ModelScript(content="ok", latency=0.05)) as provider:
        yield provider


async def _run(
    tmp_path: Path, fake: FakeProviderThread, source: str, mode: str
) -> tuple[dict[str, object], list[Detection], StoredGraph]:
    detections: list[Detection] = []
    store = MemoryStore()
    async with Collector(_settings(tmp_path), store, on_detection=detections.append) as collector:
        out = await _run_app(source, [fake.openai_base_url, mode], _env(collector))
        await collector.drain()
        (run,) = await store.runs()
        graph = await store.graph(run.trace_id)
    assert graph is not None
    return out, [d for d in detections if d.type in _LOOP_TYPES], graph


def _agents_of(graph: StoredGraph) -> dict[str, int]:
    return {agent.name: agent.invocations for agent in graph.agents}


async def test_gathered_plain_workers_run_to_the_end(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    out, loops, graph = await _run(tmp_path, fake, GATHERED, "healthy")
    assert out["outcome"] == "finished", out
    assert out["done"] == [12, 12]
    assert loops == []
    assert _agents_of(graph) == {"invoice_reader": 12, "receipt_reader": 12}
    assert graph.handoffs == []  # neither worker ever handed work to the other


async def test_parallel_langgraph_branches_run_to_the_end(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    out, loops, graph = await _run(tmp_path, fake, BRANCHES, "healthy")
    assert out["outcome"] == "finished", out
    assert out["done"] == [8, 8]
    assert loops == []
    assert _agents_of(graph) == {"invoice_reader": 8, "receipt_reader": 8}
    pairs = {(h.source, h.target) for h in graph.handoffs}
    assert ("invoice_reader", "receipt_reader") not in pairs
    assert ("receipt_reader", "invoice_reader") not in pairs


async def test_a_ping_pong_beside_a_gathered_worker_is_still_stopped(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    out, loops, _ = await _run(tmp_path, fake, GATHERED, "loop")
    assert out["outcome"] == "stopped", out
    assert out["type"] == "ping_pong"
    assert [d.details["cycle"] for d in loops] == [["supervisor", "researcher"]]


async def test_a_ping_pong_in_a_parallel_langgraph_branch_is_still_stopped(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    out, loops, _ = await _run(tmp_path, fake, BRANCHES, "loop")
    assert out["outcome"] == "stopped", out
    assert out["type"] == "ping_pong"
    assert [sorted(cast("list[str]", d.details["cycle"])) for d in loops] == [
        ["researcher", "supervisor"]
    ]
