"""Resuming a LangGraph run in the app from a resume plan (``AGENTMESH_RESUME`` or ``resume()``)."""

from __future__ import annotations

import json
import operator
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core import ConfigError, ResumeError
from agentmesh.core.semconv import (
    AGENTMESH_LANGGRAPH_RESUMED,
    AGENTMESH_RESUME_CHECKPOINT_ID,
    AGENTMESH_RESUME_FROM_RUN_ID,
    GEN_AI_OPERATION_NAME,
)
from agentmesh.core.settings import RESUME_ENV
from agentmesh.instrumentation.resume import ResumeTarget, claim_langgraph, clear_resume, resume


class State(TypedDict):
    done: list[str]


@pytest.fixture(autouse=True)
def _no_plan(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(RESUME_ENV, raising=False)
    clear_resume()
    yield
    clear_resume()


def _stepper(ran: list[str], fail_at: str | None) -> Callable[[str], Callable[[State], State]]:
    """Node functions that note their name in ``ran``; the one named ``fail_at`` raises."""

    def step(name: str) -> Callable[[State], State]:
        def run(state: State) -> State:
            ran.append(name)
            if name == fail_at:
                raise RuntimeError(f"{name} failed")
            return {"done": [*state["done"], name]}

        return run

    return step


def _pipeline(ran: list[str], fail_at: str | None):
    step = _stepper(ran, fail_at)
    graph = StateGraph(State)
    for name in ("a", "b", "c"):
        graph.add_node(name, step(name))
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", END)
    return graph


@pytest.mark.usefixtures("langgraph_instrumented")
def test_the_next_run_of_the_plans_thread_continues_from_its_checkpoint(
    exporter: InMemorySpanExporter,
) -> None:
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "t-1"}}
    ran: list[str] = []
    with pytest.raises(RuntimeError, match="c failed"):
        _pipeline(ran, fail_at="c").compile(checkpointer=saver).invoke({"done": []}, config)
    # The checkpoint c started from: after b.
    history = list(saver.list(config))
    before_c = next(h for h in history if h.checkpoint["channel_values"].get("done") == ["a", "b"])
    checkpoint_id = before_c.config["configurable"]["checkpoint_id"]
    resume({"run_id": "run-old", "thread_id": "t-1", "checkpoint_id": checkpoint_id})
    exporter.clear()

    ran.clear()
    app = _pipeline(ran, fail_at=None).compile(checkpointer=saver)
    result = app.invoke({"done": ["ignored: the plan replaces the input"]}, config)

    assert ran == ["c"]  # a and b are not run again
    assert result == {"done": ["a", "b", "c"]}
    (workflow,) = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes and s.attributes.get(GEN_AI_OPERATION_NAME) == "invoke_workflow"
    ]
    assert workflow.attributes is not None
    assert workflow.attributes[AGENTMESH_RESUME_CHECKPOINT_ID] == checkpoint_id
    assert workflow.attributes[AGENTMESH_RESUME_FROM_RUN_ID] == "run-old"
    assert workflow.attributes[AGENTMESH_LANGGRAPH_RESUMED] is True

    ran.clear()  # the plan is used once: the next run starts as asked
    app.invoke({"done": []}, {"configurable": {"thread_id": "t-1"}})
    assert ran == ["a", "b", "c"]


@pytest.mark.usefixtures("langgraph_instrumented")
def test_a_plan_from_the_environment_waits_for_its_own_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saver = InMemorySaver()
    ran: list[str] = []
    app = _pipeline(ran, fail_at=None).compile(checkpointer=saver)
    app.invoke({"done": []}, {"configurable": {"thread_id": "t-2"}})
    head = saver.get_tuple({"configurable": {"thread_id": "t-2"}})
    assert head is not None
    first = list(saver.list({"configurable": {"thread_id": "t-2"}}))[-2]  # the input checkpoint
    plan = {
        "run_id": "r",
        "thread_id": "t-2",
        "checkpoint_id": first.config["configurable"]["checkpoint_id"],
        "framework": "langgraph",
    }
    monkeypatch.setenv(RESUME_ENV, json.dumps(plan))
    from agentmesh.instrumentation import resume as module

    module._PENDING._loaded = False  # pyright: ignore[reportPrivateUsage] - re-read the env

    ran.clear()
    app.invoke({"done": []}, {"configurable": {"thread_id": "other"}})  # not the plan's thread
    assert ran == ["a", "b", "c"]
    ran.clear()
    app.invoke({"done": []}, {"configurable": {"thread_id": "t-2"}})
    assert ran == ["a", "b", "c"]  # resumed from the input checkpoint: every step still to run


def test_malformed_plans_are_refused_in_plain_words_and_the_environment_is_fail_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="not JSON"):
        ResumeTarget.parse("{")
    with pytest.raises(ConfigError, match="no run_id"):
        ResumeTarget.parse({"thread_id": "t"})
    with pytest.raises(ConfigError, match="JSON object"):
        ResumeTarget.parse("[1]")
    monkeypatch.setenv(RESUME_ENV, "{broken")
    from agentmesh.instrumentation import resume as module

    module._PENDING._loaded = False  # pyright: ignore[reportPrivateUsage]
    assert claim_langgraph("t") is None  # logged and ignored


def test_a_plan_for_another_framework_or_without_thread_is_not_claimed() -> None:
    resume(ResumeTarget("r", "t", "c", framework="crewai"))
    assert claim_langgraph("t") is None
    resume(ResumeTarget("r", "t", "c"))
    assert claim_langgraph(None) is None
    assert claim_langgraph("t") == ResumeTarget("r", "t", "c")
    assert claim_langgraph("t") is None  # used once


# -- what a failed run leaves behind: parallel branches and subgraph steps that completed -----


class Fanned(TypedDict):
    done: Annotated[list[str], operator.add]


def _fan_out(ran: list[str], fail: set[str]) -> StateGraph[Fanned]:
    """A planner sends three researchers at once (``Send``); those in ``fail`` raise."""

    def planner(state: Fanned) -> Fanned:
        ran.append("planner")
        return {"done": ["planner"]}

    def research(topic: str) -> Fanned:
        ran.append(topic)
        if topic in fail:
            raise RuntimeError(f"{topic} failed")
        return {"done": [topic]}

    def fan(state: Fanned) -> list[Send]:
        return [Send("researcher", topic) for topic in ("jobs", "housing", "schools")]

    graph = StateGraph(Fanned)
    graph.add_node("planner", planner)
    graph.add_node("researcher", research)
    graph.add_edge(START, "planner")
    graph.add_conditional_edges("planner", fan, ["researcher"])
    graph.add_edge("researcher", END)
    return graph


def _latest_checkpoint(saver: InMemorySaver, thread: str) -> str:
    latest = saver.get_tuple({"configurable": {"thread_id": thread}})
    assert latest is not None
    return str(latest.checkpoint["id"])


@pytest.mark.usefixtures("langgraph_instrumented")
def test_parallel_branches_that_completed_are_not_run_again() -> None:
    saver = InMemorySaver()
    config: RunnableConfig = {"configurable": {"thread_id": "t-fan"}}
    ran: list[str] = []
    with pytest.raises(RuntimeError, match="housing failed"):
        _fan_out(ran, {"housing"}).compile(checkpointer=saver).invoke({"done": []}, config)
    resume(
        {
            "run_id": "run-fan",
            "thread_id": "t-fan",
            "checkpoint_id": _latest_checkpoint(saver, "t-fan"),
        }
    )
    ran.clear()
    result = _fan_out(ran, set()).compile(checkpointer=saver).invoke({"done": []}, config)
    assert ran == ["housing"]  # jobs and schools had finished: their writes are kept
    assert sorted(result["done"]) == ["housing", "jobs", "planner", "schools"]


@pytest.mark.usefixtures("langgraph_instrumented")
async def test_parallel_branches_are_kept_in_async_runs_too() -> None:
    saver = InMemorySaver()
    config: RunnableConfig = {"configurable": {"thread_id": "t-afan"}}
    ran: list[str] = []
    with pytest.raises(RuntimeError, match="schools failed"):
        await _fan_out(ran, {"schools"}).compile(checkpointer=saver).ainvoke({"done": []}, config)
    resume(
        {
            "run_id": "run-afan",
            "thread_id": "t-afan",
            "checkpoint_id": _latest_checkpoint(saver, "t-afan"),
        }
    )
    ran.clear()
    await _fan_out(ran, set()).compile(checkpointer=saver).ainvoke({"done": []}, config)
    assert ran == ["schools"]


def _with_subgraph(ran: list[str], fail_at: str | None) -> StateGraph[State]:
    """planner → team (a subgraph: drafter → checker) → publisher."""
    step = _stepper(ran, fail_at)

    team = StateGraph(State)
    team.add_node("drafter", step("drafter"))
    team.add_node("checker", step("checker"))
    team.add_edge(START, "drafter")
    team.add_edge("drafter", "checker")
    team.add_edge("checker", END)
    graph = StateGraph(State)
    graph.add_node("planner", step("planner"))
    graph.add_node("team", team.compile())
    graph.add_node("publisher", step("publisher"))
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "team")
    graph.add_edge("team", "publisher")
    graph.add_edge("publisher", END)
    return graph


@pytest.mark.usefixtures("langgraph_instrumented")
def test_a_subgraph_resumes_at_its_failed_step() -> None:
    saver = InMemorySaver()
    config: RunnableConfig = {"configurable": {"thread_id": "t-sub"}}
    ran: list[str] = []
    with pytest.raises(RuntimeError, match="checker failed"):
        _with_subgraph(ran, "checker").compile(checkpointer=saver).invoke({"done": []}, config)
    # the plan names the checkpoint the failing top-level step (team) started from
    resume(
        {
            "run_id": "run-sub",
            "thread_id": "t-sub",
            "checkpoint_id": _latest_checkpoint(saver, "t-sub"),
        }
    )
    ran.clear()
    result = _with_subgraph(ran, None).compile(checkpointer=saver).invoke({"done": []}, config)
    assert ran == ["checker", "publisher"]  # the drafter finished: not run again
    assert result == {"done": ["planner", "drafter", "checker", "publisher"]}


@pytest.mark.usefixtures("langgraph_instrumented")
def test_an_older_checkpoint_is_forked_from() -> None:
    saver = InMemorySaver()
    config: RunnableConfig = {"configurable": {"thread_id": "t-old"}}
    ran: list[str] = []
    _pipeline(ran, fail_at=None).compile(checkpointer=saver).invoke({"done": []}, config)
    history = list(saver.list(config))
    before_b = next(h for h in history if h.checkpoint["channel_values"].get("done") == ["a"])
    resume({"run_id": "run-old", "thread_id": "t-old", "checkpoint_id": before_b.checkpoint["id"]})
    ran.clear()
    result = _pipeline(ran, fail_at=None).compile(checkpointer=saver).invoke({"done": []}, config)
    assert ran == ["b", "c"]
    assert result == {"done": ["a", "b", "c"]}


@pytest.mark.usefixtures("langgraph_instrumented")
def test_a_checkpoint_the_graph_cannot_find_is_refused_in_plain_words(
    exporter: InMemorySpanExporter,
) -> None:
    ran: list[str] = []
    config: RunnableConfig = {"configurable": {"thread_id": "t-elsewhere"}}
    resume({"run_id": "run-x", "thread_id": "t-elsewhere", "checkpoint_id": "1f0-not-here"})
    app = _pipeline(ran, fail_at=None).compile(checkpointer=InMemorySaver())
    with pytest.raises(
        ResumeError, match="checkpoint 1f0-not-here of thread 't-elsewhere' is not in"
    ):
        app.invoke({"done": []}, config)
    assert ran == []  # nothing ran again from the start
    resume({"run_id": "run-x", "thread_id": "t-elsewhere", "checkpoint_id": "1f0-not-here"})
    bare = _pipeline(ran, fail_at=None).compile()
    with pytest.raises(ResumeError, match="this graph has no checkpointer"):
        bare.invoke({"done": []}, config)
    assert ran == []
    (workflow, *_) = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes and s.attributes.get(GEN_AI_OPERATION_NAME) == "invoke_workflow"
    ]
    assert workflow.status.status_code.name == "ERROR"


def test_a_completed_or_already_resumed_run_is_refused_unless_forced() -> None:
    with pytest.raises(ResumeError, match="run r1 completed: there is nothing to resume"):
        resume({"run_id": "r1", "thread_id": "t", "checkpoint_id": "c", "status": "completed"})
    again = {"run_id": "r2", "thread_id": "t", "checkpoint_id": "c", "resumed_by": "r3"}
    with pytest.raises(ResumeError, match="run r2 was already resumed by run r3"):
        resume(json.dumps(again))
    assert claim_langgraph("t") is None  # nothing waits
    assert resume(again, force=True).run_id == "r2"
    assert claim_langgraph("t") is not None


def test_a_run_id_without_a_collector_and_the_collectors_own_words() -> None:
    with pytest.raises(ConfigError, match=r"resume\('run-9'\): a run id needs collector_url="):
        resume("run-9")

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"error": "no run matches 'run-9'; `agentmesh runs` lists them"})
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ConfigError, match="no run matches 'run-9'; `agentmesh runs` lists"):
            resume("run-9", collector_url=url)
    finally:
        server.shutdown()
        server.server_close()
