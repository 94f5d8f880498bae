"""Failed runs end to end: every way of running agents, failed, recovered, or interrupted.

A real :class:`Collector` runs in this process; one app process, instrumented by
``agentmesh.instrumentation.init()``, runs every scenario in turn, each in its own run (the run
id given by ``run_scope``), its model calls going to the bundled fake provider (``down``
answers 500; ``flaky`` fails its first call only). The collector must list as ``failed``, with
the step that failed and its error, a run whose error reached the app: (a) a LangGraph graph
whose node or model call fails (``invoke``, ``ainvoke``, ``stream``, ``astream``), (b) a CrewAI
crew whose agent's model fails (``kickoff``, ``kickoff_async``, ``akickoff``) and a Flow whose
step raises, (c) plain code's ``workflow``/``agent`` whose body raises, (d) an OpenAI or
Anthropic call alone. A run whose step error was caught or retried is ``complete``, and so is
one whose stream the caller stopped reading and closed. A run that was interrupted (a cancelled
task, Ctrl-C, ``sys.exit``, an async stream left unclosed, which the loop cancels at its end) is
``interrupted``, not ``failed``: an interruption is no failure (see
``agentmesh.instrumentation._failopen``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentmesh.collector import Collector, CollectorSettings, MemoryStore, RunSummary
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript

APP = textwrap.dedent(
    """
    import asyncio, json, operator, sys
    from typing import Annotated, TypedDict

    import anthropic, openai
    from crewai import LLM, Agent, Crew, Task
    from crewai.flow.flow import Flow, listen, start
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode
    from langgraph.types import RetryPolicy

    from agentmesh.instrumentation import agent, init, run_scope, workflow

    init()
    OPENAI, ANTHROPIC = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=OPENAI, api_key="k", max_retries=0)

    def aclient():  # one per event loop
        return openai.AsyncOpenAI(base_url=OPENAI, api_key="k", max_retries=0)

    ask = [{"role": "user", "content": "hi"}]

    class Text(TypedDict):
        text: str

    def pipeline(name, worker, retry=None):
        graph = StateGraph(Text)
        graph.add_node("first", lambda s: {"text": s["text"] + "a"})
        graph.add_node("worker", worker, retry_policy=retry)
        graph.add_edge(START, "first")
        graph.add_edge("first", "worker")
        graph.add_edge("worker", END)
        return graph.compile(name=name)

    def broken_tool(state):
        raise ValueError("tool broke")

    def model_down(state):
        client.chat.completions.create(model="down", messages=ask)

    async def amodel_down(state):
        await aclient().chat.completions.create(model="down", messages=ask)

    def caught(state):
        try:
            client.chat.completions.create(model="down", messages=ask)
        except openai.APIStatusError:
            return {"text": "fallback"}

    tries = []

    def flaky(state):
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("first try")
        return {"text": "ok"}

    def consume(app, how):
        if how == "invoke":
            app.invoke({"text": ""})
        elif how == "ainvoke":
            asyncio.run(app.ainvoke({"text": ""}))
        elif how == "stream":
            for _ in app.stream({"text": ""}):
                pass
        elif how == "astream":
            async def read():
                async for _ in app.astream({"text": ""}):
                    pass
            asyncio.run(read())
        elif how == "break":
            for _ in app.stream({"text": ""}):
                break
        elif how == "abreak":  # never closed: asyncio.run cancels its close at the end
            async def read_one():
                async for _ in app.astream({"text": ""}):
                    break
            asyncio.run(read_one())
        elif how == "cancel":
            async def cancelled():
                task = asyncio.create_task(app.ainvoke({"text": ""}))
                await asyncio.sleep(0.05)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            asyncio.run(cancelled())

    def slow_worker_graph():
        async def slow(state):
            await asyncio.sleep(10)
        return pipeline("slow", slow)

    class Branches(TypedDict):
        out: Annotated[list, operator.add]

    def branches():
        async def fast(state):
            await asyncio.sleep(0.01)
            raise ValueError("fast broke")
        async def slow(state):
            await asyncio.sleep(10)
        graph = StateGraph(Branches)
        graph.add_node("fast", fast)
        graph.add_node("slow", slow)
        graph.add_edge(START, "fast")
        graph.add_edge(START, "slow")
        return graph.compile(name="branches")

    def tool_node(handled):
        @tool
        def lookup(q: str) -> str:
            \"\"\"Look something up.\"\"\"
            raise ValueError("lookup broke")
        call = {"name": "lookup", "args": {"q": "x"}, "id": "c1"}
        graph = StateGraph(MessagesState)
        graph.add_node("planner", lambda s: {"messages": [AIMessage("", tool_calls=[call])]})
        graph.add_node("tools", ToolNode([lookup], handle_tool_errors=handled))
        graph.add_edge(START, "planner")
        graph.add_edge("planner", "tools")
        return graph.compile(name="tool_node")

    def crew(model, retries=0):
        llm = LLM(model=f"openai/{model}", base_url=OPENAI, api_key="k", max_retries=0)
        researcher = Agent(
            role="Researcher", goal="g", backstory="b", llm=llm, max_retry_limit=retries
        )
        task = Task(description="Research.", expected_output="Notes.", agent=researcher)
        return Crew(name="crew", agents=[researcher], tasks=[task])

    class Review(Flow):
        @start()
        def draft(self):
            return "draft"

        @listen(draft)
        def publish(self, text):
            raise RuntimeError("publish broke")

    def plain(how):
        with workflow("plain"):
            if how == "caught":
                try:
                    with agent("planner"):
                        raise ValueError("planner broke")
                except ValueError:
                    pass
            with agent("solver"):
                if how == "raise":
                    raise ValueError("solver broke")
                if how == "model":
                    client.chat.completions.create(model="down", messages=ask)
                if how == "ctrl-c":
                    raise KeyboardInterrupt
                if how == "exit":
                    sys.exit(0)

    def plain_cancelled():
        @workflow("plain")
        async def run():
            with agent("solver"):
                await asyncio.sleep(10)
        async def cancel():
            task = asyncio.create_task(run())
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        asyncio.run(cancel())

    def anthropic_down(kind):
        messages = {"model": "down", "max_tokens": 8, "messages": ask}
        if kind == "sync":
            anthropic.Anthropic(base_url=ANTHROPIC, api_key="k", max_retries=0).messages.create(
                **messages
            )
        else:
            asyncio.run(
                anthropic.AsyncAnthropic(
                    base_url=ANTHROPIC, api_key="k", max_retries=0
                ).messages.create(**messages)
            )

    def openai_stream_down():
        for _ in client.chat.completions.create(model="down", messages=ask, stream=True):
            pass

    SCENARIOS = {
        **{f"lg-tool-{how}": (lambda how=how: consume(pipeline("tool", broken_tool), how))
           for how in ("invoke", "ainvoke", "stream", "astream")},
        **{f"lg-model-{how}": (lambda how=how: consume(pipeline("model", model_down), how))
           for how in ("invoke", "stream")},
        **{f"lg-model-{how}": (lambda how=how: consume(pipeline("amodel", amodel_down), how))
           for how in ("ainvoke", "astream")},
        "lg-caught": lambda: consume(pipeline("caught", caught), "invoke"),
        "lg-retried": lambda: consume(
            pipeline("retried", flaky, RetryPolicy(initial_interval=0.01, retry_on=ValueError)),
            "invoke",
        ),
        "lg-tool-node": lambda: tool_node(False).invoke({"messages": []}),
        "lg-tool-node-handled": lambda: tool_node(True).invoke({"messages": []}),
        "lg-branches": lambda: asyncio.run(branches().ainvoke({"out": []})),
        "lg-break": lambda: consume(pipeline("tool", broken_tool), "break"),
        "lg-abreak": lambda: consume(pipeline("tool", broken_tool), "abreak"),
        "lg-cancel": lambda: consume(slow_worker_graph(), "cancel"),
        "crew-kickoff": lambda: crew("down").kickoff(),
        "crew-kickoff_async": lambda: asyncio.run(crew("down").kickoff_async()),
        "crew-akickoff": lambda: asyncio.run(crew("down").akickoff()),
        "crew-retried": lambda: crew("flaky", retries=2).kickoff(),
        "flow-kickoff": lambda: Review().kickoff(),
        "flow-kickoff_async": lambda: asyncio.run(Review().kickoff_async()),
        **{f"plain-{how}": (lambda how=how: plain(how))
           for how in ("raise", "model", "caught", "ctrl-c", "exit")},
        "plain-cancel": plain_cancelled,
        "sdk-openai": lambda: client.chat.completions.create(model="down", messages=ask),
        "sdk-openai-async": lambda: asyncio.run(
            aclient().chat.completions.create(model="down", messages=ask)
        ),
        "sdk-openai-stream": openai_stream_down,
        "sdk-openai-retried": lambda: openai.OpenAI(
            base_url=OPENAI, api_key="k", max_retries=1
        ).chat.completions.create(model="flaky-sdk", messages=ask),
        "sdk-anthropic": lambda: anthropic_down("sync"),
        "sdk-anthropic-async": lambda: anthropic_down("async"),
    }
    for name, scenario in SCENARIOS.items():
        try:
            with run_scope(name):
                scenario()
            outcome = "ok"
        except BaseException as exc:
            outcome = type(exc).__name__
        print("OUTCOME", json.dumps([name, outcome]), flush=True)
    """
)

# scenario: (what the app saw, the run's state, the run's error)
EXPECTED: dict[str, tuple[str, str, str | None]] = {
    **{
        f"lg-tool-{how}": ("ValueError", "failed", "step 'worker' failed: ValueError")
        for how in ("invoke", "ainvoke", "stream", "astream")
    },
    **{
        f"lg-model-{how}": (
            "InternalServerError",
            "failed",
            "step 'worker' failed: InternalServerError",
        )
        for how in ("invoke", "ainvoke", "stream", "astream")
    },
    "lg-caught": ("ok", "complete", None),
    "lg-retried": ("ok", "complete", None),
    "lg-tool-node": ("ValueError", "failed", "step 'tools' failed: ValueError in tool 'lookup'"),
    "lg-tool-node-handled": ("ok", "complete", None),
    # the branch LangGraph cancelled when its sibling failed is not named
    "lg-branches": ("ValueError", "failed", "step 'fast' failed: ValueError"),
    "lg-break": ("ok", "complete", None),
    # a stream left unclosed is cancelled at the loop's shutdown: stopped before it finished
    "lg-abreak": ("ok", "interrupted", None),
    "lg-cancel": ("ok", "interrupted", None),
    **{
        f"crew-{how}": (
            "InternalServerError",
            "failed",
            "step 'Researcher' failed: InternalServerError",
        )
        for how in ("kickoff", "kickoff_async", "akickoff")
    },
    "crew-retried": ("ok", "complete", None),
    **{
        f"flow-{how}": ("RuntimeError", "failed", "step 'publish' failed: RuntimeError")
        for how in ("kickoff", "kickoff_async")
    },
    "plain-raise": ("ValueError", "failed", "step 'solver' failed: ValueError"),
    "plain-model": ("InternalServerError", "failed", "step 'solver' failed: InternalServerError"),
    "plain-caught": ("ok", "complete", None),
    "plain-ctrl-c": ("KeyboardInterrupt", "interrupted", None),
    "plain-exit": ("SystemExit", "interrupted", None),
    "plain-cancel": ("ok", "interrupted", None),
    **{
        f"sdk-{kind}": ("InternalServerError", "failed", "InternalServerError")
        for kind in (
            "openai",
            "openai-async",
            "openai-stream",
            "anthropic",
            "anthropic-async",
        )
    },
    "sdk-openai-retried": ("ok", "complete", None),
}
_MARK = "OUTCOME "


def _env(collector: Collector, storage: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMESH_"))}
    env.update(
        AGENTMESH_ENDPOINT=collector.endpoint,
        AGENTMESH_SERVICE_NAME="failures-e2e",
        AGENTMESH_SHUTDOWN_TIMEOUT_S="10",
        CREWAI_DISABLE_TELEMETRY="true",
        CREWAI_DISABLE_TRACKING="true",
        CREWAI_TRACING_ENABLED="false",
        CREWAI_STORAGE_DIR=str(storage),
    )
    return env


async def _run_all(tmp: Path, fake: FakeProviderThread) -> tuple[dict[str, str], list[RunSummary]]:
    store = MemoryStore()
    settings = CollectorSettings.load(
        grpc_port=0, http_port=0, decode_workers=0, duckdb_path=tmp / "unused.duckdb"
    )
    async with Collector(settings, store) as collector:
        command = [sys.executable, "-c", APP, fake.openai_base_url, fake.anthropic_base_url]
        done = await asyncio.to_thread(
            subprocess.run,
            command,
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(collector, tmp / "crewai"),
            check=False,
        )
        outcomes = dict(
            json.loads(line.removeprefix(_MARK))
            for line in done.stdout.splitlines()
            if line.startswith(_MARK)
        )
        assert done.returncode == 0, done.stderr[-4000:]
        assert len(outcomes) == len(EXPECTED), done.stderr[-4000:]
        deadline = asyncio.get_running_loop().time() + 15.0
        while True:  # the last spans may still be on their way when the app is gone
            await collector.drain()
            runs = await store.runs(limit=1000)
            if len(runs) >= len(EXPECTED) or asyncio.get_running_loop().time() > deadline:
                return outcomes, runs
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def results(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, str], dict[str, RunSummary]]:
    scripts = {
        "down": ModelScript(error=ErrorScript(status=500), latency=0.01),
        "flaky": ModelScript(content="ok", error=ErrorScript(status=500, fail_times=1)),
        "flaky-sdk": ModelScript(content="ok", error=ErrorScript(status=500, fail_times=1)),
    }
    default = ModelScript(content="Thought: done.\nFinal Answer: ok", latency=0.01)
    with FakeProviderThread(scripts, default_script=default) as fake:
        outcomes, runs = asyncio.run(_run_all(tmp_path_factory.mktemp("failures"), fake))
    return outcomes, {run.run_id: run for run in runs}


@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_the_run_is_failed_only_when_its_error_reached_the_app(
    results: tuple[dict[str, str], dict[str, RunSummary]], scenario: str
) -> None:
    outcomes, runs = results
    seen, state, error = EXPECTED[scenario]
    assert outcomes[scenario] == seen
    run = runs[scenario]
    assert (run.state, run.error) == (state, error)
