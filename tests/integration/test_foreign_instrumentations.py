"""LangGraph apps traced by other GenAI instrumentations get graphs, costs and detections.

For each of OpenInference, OpenLLMetry and the official OpenTelemetry GenAI instrumentation, a
throwaway venv (made once and cached by the overhead benchmark's ``bench/_overhead/venvs.py``)
holds that library, ``langgraph`` at the workspace's version and ``openai``, and nothing of
AgentMesh. In it a LangGraph supervisor app (supervisor → worker_a → supervisor → worker_b →
supervisor; every node calls the openai SDK against the fake provider this test runs) is
instrumented only by that library and exports OTLP/gRPC to a :class:`Collector` this test runs.
The collector's normaliser must turn the spans into a run graph with the nodes as agents,
handoffs inferred in order, priced LLM calls attributed to their agents; a looping variant
(supervisor ↔ worker_a five times) must yield exactly one ``ping_pong`` detection.

What each library needs from the app, as its documentation says:

- OpenInference does not make LangChain runs the current OpenTelemetry context, so SDK calls
  inside a node would start traces of their own; its documented remedy is to run them under
  ``trace.use_span(get_current_span())`` (``openinference.instrumentation.langchain``).
- The official ``opentelemetry-instrumentation-genai-langchain`` records no span per LangGraph
  node unless the node declares itself an agent (``metadata={"agent_name": …}``); without it
  the trace has the workflow and the chat spans only (see the last test).
- OpenLLMetry needs nothing.

Making a venv needs ``uv`` and PyPI; when either is missing the test fails with the reason.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

from agentmesh.collector import Collector, CollectorSettings, MemoryStore
from agentmesh.collector.store.base import StoredGraph
from agentmesh.instrumentation.testing import FakeProviderThread
from agentmesh.router import default_catalog

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _overhead import peers, venvs  # noqa: E402 - bench/ is not a package of the workspace

LANGGRAPH = f"langgraph=={version('langgraph')}"
BASE = (LANGGRAPH, "opentelemetry-exporter-otlp-proto-grpc>=1.30")
LIBRARIES: dict[str, peers.Peer] = {
    "openinference": peers.Peer(
        name="foreign-openinference",
        label="OpenInference",
        dist="openinference-instrumentation-langchain",
        requirements=(
            *BASE,
            "openinference-instrumentation-langchain==0.1.80",
            "openinference-instrumentation-openai==0.1.66",
        ),
    ),
    "openllmetry": peers.Peer(
        name="foreign-openllmetry",
        label="OpenLLMetry",
        dist="opentelemetry-instrumentation-langchain",
        requirements=(
            *BASE,
            "opentelemetry-instrumentation-langchain==0.62.4",
            "opentelemetry-instrumentation-openai==0.62.4",
        ),
    ),
    "otel_genai": peers.Peer(
        name="foreign-otel-genai",
        label="OpenTelemetry GenAI",
        dist="opentelemetry-instrumentation-genai-langchain",
        requirements=(
            *BASE,
            "opentelemetry-instrumentation-genai-openai==1.3b0",
            "opentelemetry-instrumentation-genai-langchain==1.3b0",
            "opentelemetry-util-genai==1.3b0",
            "langchain==1.5.2",  # the LangChain instrumentation requires it, not langchain-core
        ),
    ),
}
LOOPS = 5  # supervisor ↔ worker_a five times: one loop past the default bound of 3

# Runs inside the library's venv: argv = library, OTLP endpoint, fake provider URL, loops,
# whether nodes declare themselves agents (official GenAI instrumentation only).
APP = textwrap.dedent(
    """
    import sys
    from typing import TypedDict

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    lib, endpoint, base_url, loops, agent_metadata = sys.argv[1:6]
    provider = TracerProvider(resource=Resource.create({"service.name": "foreign-" + lib}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    if lib == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif lib == "openllmetry":
        from opentelemetry.instrumentation.langchain import (
            LangchainInstrumentor as LangChainInstrumentor,
        )
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.genai.langchain import LangChainInstrumentor
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    LangChainInstrumentor().instrument(tracer_provider=provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)

    import openai
    from langgraph.graph import END, START, StateGraph

    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)


    class State(TypedDict):
        plan: list[str]
        notes: list[str]


    def ask(who, state):
        messages = [{"role": "user", "content": who + ": " + " ".join(state["notes"])}]
        if lib == "openinference":
            from openinference.instrumentation.langchain import get_current_span

            with trace.use_span(get_current_span(), end_on_exit=False):
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        else:
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return state["notes"] + [reply.choices[0].message.content or ""]


    def supervisor(state):
        return {"notes": ask("supervisor", state)}


    def worker(name):
        def run(state):
            return {"notes": ask(name, state), "plan": state["plan"][1:]}

        return run


    graph = StateGraph(State)
    for name, node in (
        ("supervisor", supervisor),
        ("worker_a", worker("worker_a")),
        ("worker_b", worker("worker_b")),
    ):
        graph.add_node(name, node, metadata={"agent_name": name} if agent_metadata == "1" else None)
    graph.add_edge(START, "supervisor")
    graph.add_conditional_edges("supervisor", lambda s: s["plan"][0] if s["plan"] else END)
    graph.add_edge("worker_a", "supervisor")
    graph.add_edge("worker_b", "supervisor")
    plan = ["worker_a"] * int(loops) if int(loops) else ["worker_a", "worker_b"]
    graph.compile().invoke({"plan": plan, "notes": []}, {"recursion_limit": 100})
    provider.shutdown()
    """
)


@dataclass(frozen=True)
class Run:
    """What the collector made of one app run."""

    graph: StoredGraph
    detections: list[str]


def _python(library: str) -> Path:
    try:
        return venvs.ensure(LIBRARIES[library], venvs.default_cache_dir()).python
    except RuntimeError as exc:
        pytest.fail(f"cannot make the {library} venv (uv and PyPI are needed): {exc}")


def _app(python: Path, library: str, endpoint: str, base_url: str, loops: int, meta: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    env.pop("VIRTUAL_ENV", None)
    command = [
        str(python),
        "-c",
        APP,
        library,
        endpoint,
        base_url,
        str(loops),
        "1" if meta else "0",
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{library} app failed:\n{done.stdout}\n{done.stderr[-3000:]}"


async def _run(
    tmp_path: Path, library: str, *, loops: int = 0, agent_metadata: bool | None = None
) -> Run:
    python = await asyncio.to_thread(_python, library)
    meta = library == "otel_genai" if agent_metadata is None else agent_metadata
    settings = CollectorSettings.load(
        grpc_host="127.0.0.1", grpc_port=0, http_port=0, duckdb_path=tmp_path / "unused.duckdb"
    )
    with FakeProviderThread() as fake:
        async with Collector(settings, MemoryStore()) as collector:
            await asyncio.to_thread(
                _app, python, library, collector.endpoint, fake.openai_base_url, loops, meta
            )
            await collector.drain()
            runs = await collector.store.runs()
            assert len(runs) == 1, f"{library}: one trace expected, got {runs}"
            graph = await collector.store.graph(runs[0].trace_id)
            assert graph is not None
            detections = await collector.store.detections(runs[0].trace_id)
    return Run(graph, [d.type for d in detections])


@pytest.mark.parametrize("library", list(LIBRARIES))
async def test_nodes_become_agents_with_handoffs_tokens_and_cost(
    tmp_path: Path, library: str
) -> None:
    run = await _run(tmp_path, library)
    graph = run.graph
    assert {a.name for a in graph.agents} == {"supervisor", "worker_a", "worker_b"}
    assert [(h.source, h.target) for h in graph.handoffs] == [
        ("supervisor", "worker_a"),
        ("worker_a", "supervisor"),
        ("supervisor", "worker_b"),
        ("worker_b", "supervisor"),
    ]
    agents = {a.name: a for a in graph.agents}
    assert [agents[n].llm_calls for n in ("supervisor", "worker_a", "worker_b")] == [3, 1, 1]
    for agent in agents.values():
        assert agent.input_tokens > 0
        assert agent.output_tokens > 0
        expected = default_catalog().cost_usd(
            "gpt-4o-mini", agent.input_tokens, agent.output_tokens
        )
        assert agent.cost_usd == pytest.approx(expected)
    assert graph.run.llm_calls == 5
    assert graph.run.workflow_name == "LangGraph"
    assert graph.run.service_name == f"foreign-{library}"
    assert run.detections == []


@pytest.mark.parametrize("library", list(LIBRARIES))
async def test_a_looping_graph_yields_one_ping_pong(tmp_path: Path, library: str) -> None:
    run = await _run(tmp_path, library, loops=LOOPS)
    assert len(run.graph.handoffs) == LOOPS * 2
    assert run.detections == ["ping_pong"]


async def test_official_langchain_instrumentation_without_agent_metadata(tmp_path: Path) -> None:
    # Nodes that do not declare themselves agents get no span: the run has priced calls but no
    # agents, so no handoffs can be inferred.
    run = await _run(tmp_path, "otel_genai", agent_metadata=False)
    assert run.graph.agents == []
    assert run.graph.handoffs == []
    assert run.graph.run.llm_calls == 5
    assert run.graph.run.cost_usd > 0
    assert run.graph.run.workflow_name == "LangGraph"
