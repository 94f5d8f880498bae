"""A supervisor graph whose agents call the real OpenAI SDK: workflow, agent and handoff spans.

supervisor → worker_a (conditional edge) → supervisor (edge) → worker_b (``Command(goto=…)``)
→ supervisor (edge) → END (conditional edge).
"""

from __future__ import annotations

from typing import Literal, TypedDict

import openai
import pytest
from langgraph.graph import END, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_LANGGRAPH_NODE,
    AGENTMESH_LANGGRAPH_STEP,
    AGENTMESH_RUN_ID,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation import context_digest, current_run_id, with_run_id
from agentmesh.instrumentation.testing import FakeProviderThread

pytestmark = pytest.mark.usefixtures("langgraph_instrumented")

MODEL = "gpt-4o-mini"
GRAPH = "supervisor_graph"


class State(TypedDict):
    log: list[str]
    turn: int


def build_graph(fp: FakeProviderThread, seen_run_ids: list[str | None]) -> CompiledStateGraph:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)

    def ask(agent: str) -> str:
        seen_run_ids.append(current_run_id())
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"I am {agent}"}]
        )
        return reply.choices[0].message.content or ""

    def supervisor(state: State) -> State | Command[Literal["worker_b"]]:
        ask("supervisor")
        update: State = {"log": [*state["log"], "supervisor"], "turn": state["turn"] + 1}
        if state["turn"] == 1:  # second visit: hand over to worker_b by command
            return Command(goto="worker_b", update=update)
        return update

    def route(state: State) -> str:
        return "worker_a" if state["turn"] == 1 else END

    def worker_a(state: State) -> dict[str, list[str]]:
        ask("worker_a")
        return {"log": [*state["log"], "worker_a"]}

    def worker_b(state: State) -> dict[str, list[str]]:
        ask("worker_b")
        return {"log": [*state["log"], "worker_b"]}

    graph = StateGraph(State)
    graph.add_node("supervisor", supervisor)
    graph.add_node("worker_a", worker_a)
    graph.add_node("worker_b", worker_b)
    graph.set_entry_point("supervisor")
    graph.add_conditional_edges("supervisor", route, ["worker_a", END])
    graph.add_edge("worker_a", "supervisor")
    graph.add_edge("worker_b", "supervisor")
    return graph.compile(name=GRAPH)


EXPECTED_NODES = ["supervisor", "worker_a", "supervisor", "worker_b", "supervisor"]
EXPECTED_HANDOFFS: list[tuple[str, str, str] | None] = [
    None,
    ("supervisor", "worker_a", "conditional"),
    ("worker_a", "supervisor", "edge"),
    ("supervisor", "worker_b", "command"),
    ("worker_b", "supervisor", "edge"),
]
# The state each node starts from (what crossed the handoff).
EXPECTED_INPUTS: list[State] = [
    {"log": [], "turn": 0},
    {"log": ["supervisor"], "turn": 1},
    {"log": ["supervisor", "worker_a"], "turn": 1},
    {"log": ["supervisor", "worker_a", "supervisor"], "turn": 2},
    {"log": ["supervisor", "worker_a", "supervisor", "worker_b"], "turn": 2},
]


def _by_start(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return sorted(spans, key=lambda s: s.start_time or 0)


def _split(
    exporter: InMemorySpanExporter,
) -> tuple[ReadableSpan, list[ReadableSpan], list[ReadableSpan]]:
    spans = list(exporter.get_finished_spans())
    workflows = [s for s in spans if s.name.startswith("invoke_workflow ")]
    nodes = _by_start([s for s in spans if s.name.startswith("invoke_agent ")])
    chats = _by_start([s for s in spans if s.name.startswith("chat ")])
    assert len(workflows) == 1, [s.name for s in spans]
    return workflows[0], nodes, chats


def _check_run(
    exporter: InMemorySpanExporter, seen_run_ids: list[str | None], *, thread_id: str | None
) -> tuple[ReadableSpan, list[ReadableSpan]]:
    workflow, nodes, chats = _split(exporter)

    # one workflow span, the root
    assert workflow.name == f"invoke_workflow {GRAPH}"
    assert workflow.kind is SpanKind.INTERNAL
    assert workflow.parent is None
    wf_attrs = dict(workflow.attributes or {})
    assert wf_attrs[GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert wf_attrs[GEN_AI_WORKFLOW_NAME] == GRAPH
    assert wf_attrs[AGENTMESH_FRAMEWORK] == "langgraph"
    if thread_id is None:
        assert GEN_AI_CONVERSATION_ID not in wf_attrs
    else:
        assert wf_attrs[GEN_AI_CONVERSATION_ID] == thread_id
    run_id = wf_attrs[AGENTMESH_RUN_ID]
    assert isinstance(run_id, str)
    assert run_id

    # agent spans, children of the workflow span, in order
    assert [s.name for s in nodes] == [f"invoke_agent {n}" for n in EXPECTED_NODES]
    steps: list[int] = []
    for node, name in zip(nodes, EXPECTED_NODES, strict=True):
        assert node.parent is not None
        assert node.parent.span_id == workflow.context.span_id
        assert node.context.trace_id == workflow.context.trace_id
        attrs = dict(node.attributes or {})
        assert attrs[GEN_AI_OPERATION_NAME] == "invoke_agent"
        assert attrs[GEN_AI_AGENT_NAME] == name
        assert attrs[GEN_AI_AGENT_ID] == f"{GRAPH}:{name}"
        assert attrs[GEN_AI_WORKFLOW_NAME] == GRAPH
        assert attrs[AGENTMESH_FRAMEWORK] == "langgraph"
        assert attrs[AGENTMESH_LANGGRAPH_NODE] == name
        assert attrs[AGENTMESH_RUN_ID] == run_id
        step = attrs[AGENTMESH_LANGGRAPH_STEP]
        assert isinstance(step, int)
        steps.append(step)
    assert steps == sorted(steps)
    assert len(set(steps)) == len(steps)

    # each chat span nests under the agent that made it
    assert len(chats) == len(nodes)
    for chat, node in zip(chats, nodes, strict=True):
        assert chat.parent is not None
        assert chat.parent.span_id == node.context.span_id
        assert (chat.attributes or {})[AGENTMESH_RUN_ID] == run_id

    # the run id was in baggage inside every node
    assert seen_run_ids == [run_id] * len(nodes)
    return workflow, nodes


def _handoffs(nodes: list[ReadableSpan]) -> list[tuple[str, str, str] | None]:
    found: list[tuple[str, str, str] | None] = []
    for node in nodes:
        attrs = dict(node.attributes or {})
        if GEN_AI_AGENT_HANDOFF_SOURCE_NAME not in attrs:
            found.append(None)
            continue
        found.append(
            (
                str(attrs[GEN_AI_AGENT_HANDOFF_SOURCE_NAME]),
                str(attrs[GEN_AI_AGENT_HANDOFF_TARGET_NAME]),
                str(attrs[AGENTMESH_HANDOFF_KIND]),
            )
        )
    return found


def _digests(nodes: list[ReadableSpan]) -> list[object]:
    return [(n.attributes or {}).get(AGENTMESH_HANDOFF_CONTEXT_DIGEST) for n in nodes]


def test_supervisor_graph_spans_nesting_and_handoffs(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    seen: list[str | None] = []
    result = build_graph(fake_provider, seen).invoke(
        {"log": [], "turn": 0}, config={"configurable": {"thread_id": "thread-7"}}
    )

    assert result["log"] == EXPECTED_NODES
    workflow, nodes = _check_run(exporter, seen, thread_id="thread-7")
    assert _handoffs(nodes) == EXPECTED_HANDOFFS
    for node, state, handoff in zip(nodes, EXPECTED_INPUTS, EXPECTED_HANDOFFS, strict=True):
        attrs = dict(node.attributes or {})
        if handoff is None:
            assert AGENTMESH_HANDOFF_CONTEXT_DIGEST not in attrs
            assert not [e for e in node.events if e.name == EVENT_HANDOFF]
            continue
        expected = context_digest(state)
        assert attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == expected.digest
        assert attrs[AGENTMESH_HANDOFF_CONTEXT_SIZE] == expected.size
        (event,) = [e for e in node.events if e.name == EVENT_HANDOFF]
        assert (event.attributes or {})[AGENTMESH_HANDOFF_KIND] == handoff[2]
    # the run id was also sent to the provider as W3C baggage
    run_id = (workflow.attributes or {})[AGENTMESH_RUN_ID]
    assert all(f"agentmesh.run.id={run_id}" in r.headers["baggage"] for r in fake_provider.requests)


def test_digest_is_stable_across_runs_and_run_ids_differ(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    graph = build_graph(fake_provider, [])
    graph.invoke({"log": [], "turn": 0})
    first_workflow, first_nodes, _ = _split(exporter)
    exporter.clear()
    graph.invoke({"log": [], "turn": 0})
    second_workflow, second_nodes, _ = _split(exporter)

    assert _digests(first_nodes) == _digests(second_nodes)
    assert len({d for d in _digests(first_nodes) if d is not None}) == 4  # states all differ
    first_run = (first_workflow.attributes or {})[AGENTMESH_RUN_ID]
    assert first_run != (second_workflow.attributes or {})[AGENTMESH_RUN_ID]


def test_run_id_from_baggage_is_kept(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    seen: list[str | None] = []
    token = otel_context.attach(with_run_id("run-from-upstream"))
    try:
        build_graph(fake_provider, seen).invoke({"log": [], "turn": 0})
    finally:
        otel_context.detach(token)

    workflow, _ = _check_run(exporter, seen, thread_id=None)
    assert (workflow.attributes or {})[AGENTMESH_RUN_ID] == "run-from-upstream"


def test_stream_is_one_workflow_and_the_caller_context_stays_clean(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    seen: list[str | None] = []
    updates: list[object] = []
    for update in build_graph(fake_provider, seen).stream({"log": [], "turn": 0}):
        assert current_run_id() is None  # the workflow context never leaks to the caller
        updates.append(update)

    assert len(updates) == len(EXPECTED_NODES)
    _check_run(exporter, seen, thread_id=None)


def test_stopping_a_stream_early_ends_the_workflow_span(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    stream = build_graph(fake_provider, []).stream({"log": [], "turn": 0})
    next(stream)
    stream.close()

    workflow, nodes, _ = _split(exporter)
    assert workflow.end_time is not None
    assert [n.name for n in nodes] == ["invoke_agent supervisor"]
