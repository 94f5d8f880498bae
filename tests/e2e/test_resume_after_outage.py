"""Resume end to end: a run killed by a provider outage continues from its last good handoff.

A real :class:`Collector` runs in this process; the app, in a subprocess instrumented by
``agentmesh.instrumentation.init()``, is a LangGraph pipeline (researcher → writer → reviewer,
each calling the real ``openai`` SDK against the bundled fake provider) checkpointed by our
DuckDB saver in a file. The reviewer's model is down (503): the run dies at the reviewer. The
provider comes back; ``agentmesh resume RUN_ID --collector URL -- python app.py`` asks the
collector for the plan and runs the app again, which finishes the run from the checkpoint the
reviewer started from: the researcher and the writer are not run again (no request reaches
their models), and the new run's workflow span names the checkpoint and the run it continues.
The plan names the DuckDB file the checkpoints are in, and ``agentmesh resume`` checks it is there
before it runs the app. The same pipeline checkpointed by our ``MemorySaver`` is not resumed:
its checkpoints died with the process, and ``agentmesh resume`` says so without running the app.

A second app pauses a LangGraph run at an interrupt (a human approval) and resumes the thread in
the same process: the collector stores the first run as paused and links the two runs both ways
(``resumed_from`` on the new run, ``resumed_by`` on the paused one).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmesh.collector import Collector, CollectorSettings, MemoryStore, RunSummary
from agentmesh.core import semconv
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript

PIPELINE = textwrap.dedent(
    """
    import json, sys
    from typing import TypedDict

    import openai
    from langgraph.graph import END, START, StateGraph

    from agentmesh.checkpoint.langgraph import DuckDBSaver, MemorySaver
    from agentmesh.instrumentation import init

    init()
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)

    class State(TypedDict):
        topic: str
        notes: list[str]

    def agent(name: str, model: str):
        def run(state: State) -> State:
            answer = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"{name}: {state['topic']}"}]
            )
            return {"notes": [*state["notes"], f"{name}:{answer.choices[0].message.content}"]}
        return run

    graph = StateGraph(State)
    graph.add_node("researcher", agent("researcher", "gpt-4o-mini"))
    graph.add_node("writer", agent("writer", "gpt-4.1-mini"))
    graph.add_node("reviewer", agent("reviewer", "gpt-4o"))
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", "writer")
    graph.add_edge("writer", "reviewer")
    graph.add_edge("reviewer", END)
    saved = (
        MemorySaver.from_conn_string()
        if sys.argv[2] == "memory://"
        else DuckDBSaver.from_conn_string(sys.argv[2])
    )
    with saved as saver:
        app = graph.compile(checkpointer=saver)
        try:
            state = app.invoke(
                {"topic": "tides", "notes": []}, {"configurable": {"thread_id": "essay-1"}}
            )
            out = {"outcome": "completed", "notes": state["notes"]}
        except openai.APIStatusError as exc:
            out = {"outcome": "failed", "status": exc.status_code}
    print(json.dumps(out), flush=True)
    """
)


PAUSE_AND_RESUME = textwrap.dedent(
    """
    import contextlib, json, sys
    from typing import TypedDict

    import openai
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    from agentmesh.checkpoint.langgraph import DuckDBSaver
    from agentmesh.instrumentation import init

    init()
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    # argv[2], when given: "pause" or "resume", one step per process, the thread kept in a
    # DuckDB checkpoint file (argv[3]); else both steps in this process
    step = sys.argv[2] if len(sys.argv) > 2 else "both"

    class Draft(TypedDict):
        text: str
        approved: bool

    def writer(state: Draft) -> Draft:
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "draft"}]
        )
        return {"text": answer.choices[0].message.content or "", "approved": False}

    def approver(state: Draft) -> Draft:
        return {"text": state["text"], "approved": interrupt({"publish?": state["text"]}) == "yes"}

    graph = StateGraph(Draft)
    graph.add_node("writer", writer)
    graph.add_node("approver", approver)
    graph.add_edge(START, "writer")
    graph.add_edge("writer", "approver")
    graph.add_edge("approver", END)
    saved = (
        DuckDBSaver.from_conn_string(sys.argv[3])
        if step != "both"
        else contextlib.nullcontext(InMemorySaver())
    )
    with saved as saver:
        app = graph.compile(name="approval", checkpointer=saver)
        config = {"configurable": {"thread_id": "review-1"}}
        out = {}
        if step in ("pause", "both"):
            paused = app.invoke({"text": "", "approved": False}, config)
            out["paused"] = "__interrupt__" in paused
        if step in ("resume", "both"):
            done = app.invoke(Command(resume="yes"), config)  # the human said yes
            out["approved"] = done["approved"]
    print(json.dumps(out))
    """
)


def _env(collector: Collector) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMESH_"))}
    env.update(
        AGENTMESH_ENDPOINT=collector.endpoint,
        AGENTMESH_CONTROL_URL=collector.http_endpoint,
        AGENTMESH_SERVICE_NAME="resume-e2e",
        # the exit flush is not under test here: a loaded CI machine may need more than 1 s
        AGENTMESH_SHUTDOWN_TIMEOUT_S="10",
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, check=False)


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _last_json(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.stdout.strip(), done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _runs(collector: Collector, store: MemoryStore, count: int) -> list[RunSummary]:
    """The stored runs once there are ``count`` (or after 15 s).

    The app exports its last spans at exit; on a loaded machine the export can still be on its
    way when the process is gone, so the test waits for the runs rather than for one drain.
    """
    deadline = asyncio.get_running_loop().time() + 15.0
    while True:
        await collector.drain()
        runs = await store.runs()
        if len(runs) >= count or asyncio.get_running_loop().time() > deadline:
            return runs
        await asyncio.sleep(0.1)


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(default_script=ModelScript(content="ok", latency=0.01)) as provider:
        yield provider


async def test_a_run_killed_by_an_outage_resumes_without_repeating_completed_agents(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    saver_file = str(tmp_path / "checkpoints.duckdb")
    store = MemoryStore()
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, duckdb_path=tmp_path / "unused.duckdb"
    )
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    async with Collector(settings, store) as collector:
        env = _env(collector)
        app = [sys.executable, "-c", PIPELINE, fake.openai_base_url, saver_file]
        first = _last_json(await asyncio.to_thread(_run, app, env))
        (failed_run,) = await _runs(collector, store, 1)
        base = collector.http_endpoint
        assert base is not None
        plan = await asyncio.to_thread(_get_json, f"{base}/v1/runs/{failed_run.run_id}/resume")
        listed_failed = await asyncio.to_thread(_get_json, f"{base}/v1/runs?state=failed")

        fake.set_script("gpt-4o", ModelScript(content="ok", latency=0.01))  # the provider is back
        asked_before = len(fake.requests)
        command = [
            sys.executable,
            "-c",
            "import sys; from agentmesh.collector.cli import main; sys.exit(main())",
            "resume",
            failed_run.run_id,
            "--collector",
            base,
            "--",
            *app,
        ]
        resumed = await asyncio.to_thread(_run, command, env)
        second = _last_json(resumed)
        runs = await _runs(collector, store, 2)
        new_run = next(r for r in runs if r.run_id != failed_run.run_id)
        new_spans = await store.spans(new_run.trace_id)
        resumptions = await store.resumptions(failed_run.run_id, limit=10)
        (after,) = [r for r in runs if r.run_id == failed_run.run_id]

    assert first == {"outcome": "failed", "status": 503}
    # the run lists as failed, saying which step it failed in, until a run continues it
    assert failed_run.state == "failed"
    assert (failed_run.error or "").startswith("step 'reviewer' failed: ")
    listed = listed_failed["runs"]
    assert isinstance(listed, list)
    assert [(r["run_id"], r["state"]) for r in listed] == [(failed_run.run_id, "failed")]  # pyright: ignore[reportUnknownVariableType]
    assert (after.state, new_run.state, new_run.error) == ("resumed", "complete", None)
    assert plan["status"] == "failed"
    assert plan["thread_id"] == "essay-1"
    assert plan["framework"] == "langgraph"
    assert plan["resume_from"] == "reviewer"
    assert isinstance(plan["checkpoint_id"], str)
    assert plan["checkpoint_store"] == f"duckdb://{saver_file}"  # checked: the file is there
    assert f"checkpoints stored in duckdb://{saver_file}" in " ".join(resumed.stderr.split())

    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert second == {
        "outcome": "completed",
        "notes": ["researcher:ok", "writer:ok", "reviewer:ok"],
    }
    # Only the reviewer's model was asked again: the completed agents were not repeated.
    again = [r.model for r in fake.requests[asked_before:] if r.route == "/v1/chat/completions"]
    assert again == ["gpt-4o"]
    agents = [
        s.attributes.get(semconv.GEN_AI_AGENT_NAME)
        for s in new_spans
        if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.Operation.INVOKE_AGENT
    ]
    assert agents == ["reviewer"]
    (workflow,) = [
        s
        for s in new_spans
        if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.Operation.INVOKE_WORKFLOW
    ]
    assert workflow.attributes[semconv.AGENTMESH_RESUME_CHECKPOINT_ID] == plan["checkpoint_id"]
    assert workflow.attributes[semconv.AGENTMESH_RESUME_FROM_RUN_ID] == failed_run.run_id
    assert workflow.attributes[semconv.AGENTMESH_LANGGRAPH_RESUMED] is True
    assert workflow.attributes[semconv.AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == (
        f"duckdb://{saver_file}"
    )
    # the collector links the two runs both ways
    assert new_run.resumed_from == failed_run.run_id
    assert resumptions == [new_run]


async def test_a_run_checkpointed_in_memory_is_not_resumed_by_a_new_process(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    store = MemoryStore()
    fake.set_script("gpt-4o", ModelScript(error=ErrorScript(status=503)))
    async with Collector(_in_memory(tmp_path), store) as collector:
        env = _env(collector)
        app = [sys.executable, "-c", PIPELINE, fake.openai_base_url, "memory://"]
        first = _last_json(await asyncio.to_thread(_run, app, env))
        (failed_run,) = await _runs(collector, store, 1)
        base = collector.http_endpoint
        assert base is not None
        plan = await asyncio.to_thread(_get_json, f"{base}/v1/runs/{failed_run.run_id}/resume")
        fake.set_script("gpt-4o", ModelScript(content="ok", latency=0.01))
        asked_before = len(fake.requests)
        command = [
            sys.executable,
            "-c",
            "import sys; from agentmesh.collector.cli import main; sys.exit(main())",
            "resume",
            failed_run.run_id,
            "--collector",
            base,
            "--",
            *app,
        ]
        refused = await asyncio.to_thread(_run, command, env)
        runs = await _runs(collector, store, 1)

    assert first == {"outcome": "failed", "status": 503}
    assert (plan["status"], plan["resume_from"]) == ("failed", "reviewer")
    assert isinstance(plan["checkpoint_id"], str)
    assert plan["checkpoint_store"] == "memory://"
    assert refused.returncode == 2, refused.stderr[-4000:]
    said = " ".join(refused.stderr.split())
    assert f"run {failed_run.run_id} was checkpointed in memory (memory://)" in said
    assert "the command was not run (--force runs it anyway)" in said
    assert fake.requests[asked_before:] == []  # the app did not run: no agent started over
    assert [r.run_id for r in runs] == [failed_run.run_id]


def _in_memory(tmp_path: Path) -> CollectorSettings:
    return CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, duckdb_path=tmp_path / "unused.duckdb"
    )


def _assert_linked(runs: list[RunSummary], page: dict[str, object]) -> tuple[RunSummary, ...]:
    """Check the paused run and the run that resumed it link both ways; return them."""
    assert len(runs) == 2
    by_paused = {r.paused: r for r in runs}
    paused, resumed = by_paused[True], by_paused[False]
    assert paused.complete  # its workflow span ended: complete, but paused, not finished
    assert (paused.resumed_from, resumed.resumed_from) == (None, paused.run_id)
    assert resumed.agents == ("approver",)  # the writer did not run again
    resumed_by = page["resumed_by"]  # GET /v1/runs/{the paused run}
    assert isinstance(resumed_by, list)
    assert [r["run_id"] for r in resumed_by] == [resumed.run_id]  # pyright: ignore[reportUnknownVariableType]
    return paused, resumed


async def test_a_run_paused_for_a_human_and_the_run_that_resumes_it_are_linked(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    store = MemoryStore()
    async with Collector(_in_memory(tmp_path), store) as collector:
        app = [sys.executable, "-c", PAUSE_AND_RESUME, fake.openai_base_url]
        done = await asyncio.to_thread(_run, app, _env(collector))
        runs = await _runs(collector, store, 2)
        base = collector.http_endpoint
        assert base is not None
        paused = next(r for r in runs if r.paused)
        page = await asyncio.to_thread(_get_json, f"{base}/v1/runs/{paused.run_id}")

    assert done.returncode == 0, done.stderr[-4000:]
    assert _last_json(done) == {"paused": True, "approved": True}
    _assert_linked(runs, page)


async def test_a_thread_resumed_by_another_process_is_linked_to_the_run_that_paused(
    tmp_path: Path, fake: FakeProviderThread
) -> None:
    store = MemoryStore()
    checkpoints = str(tmp_path / "threads.duckdb")
    async with Collector(_in_memory(tmp_path), store) as collector:
        steps: list[subprocess.CompletedProcess[str]] = []
        for step, count in (("pause", 1), ("resume", 2)):  # a web request each, say
            app = [sys.executable, "-c", PAUSE_AND_RESUME, fake.openai_base_url, step, checkpoints]
            steps.append(await asyncio.to_thread(_run, app, _env(collector)))
            runs = await _runs(collector, store, count)
        base = collector.http_endpoint
        assert base is not None
        paused = next(r for r in runs if r.paused)
        page = await asyncio.to_thread(_get_json, f"{base}/v1/runs/{paused.run_id}")

    for done in steps:
        assert done.returncode == 0, done.stderr[-4000:]
    assert [_last_json(done) for done in steps] == [{"paused": True}, {"approved": True}]
    assert len(runs) == 2, steps[-1].stderr[-4000:]  # the resuming app's log says why not
    # the second process never saw the pause: the collector linked the runs by their thread
    paused, resumed = _assert_linked(runs, page)
    assert (paused.conversation_id, resumed.conversation_id) == ("review-1", "review-1")
    assert (paused.resumed, resumed.resumed) == (False, True)
    assert (paused.resumptions, resumed.resumptions) == (1, 0)
