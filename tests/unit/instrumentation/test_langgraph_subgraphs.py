"""Subgraphs and interrupts: nested workflow spans in the same run, interrupts that are not
errors, and resumes on the same thread.

Agents call the real OpenAI SDK against the fake provider.
"""

from __future__ import annotations

from typing import TypedDict

import openai
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CHECKPOINT_ID,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_LANGGRAPH_CHECKPOINT_NS,
    AGENTMESH_LANGGRAPH_INTERRUPTED,
    AGENTMESH_LANGGRAPH_RESUMED,
    AGENTMESH_RESUME_FROM_RUN_ID,
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_RESUMED,
    AGENTMESH_RUN_TASK_CLASS,
    ERROR_TYPE,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation.testing import FakeProviderThread

pytestmark = pytest.mark.usefixtures("langgraph_instrumented")

MODEL = "gpt-4o-mini"


class Counter(TypedDict):
    n: int


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _tree(exporter: InMemorySpanExporter) -> list[tuple[str, str | None]]:
    """(name, parent name) of every span, in start order."""
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    names = {s.context.span_id: s.name for s in spans}
    return [(s.name, names.get(s.parent.span_id) if s.parent else None) for s in spans]


def _research_team(fp: FakeProviderThread) -> CompiledStateGraph:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)

    def researcher(state: Counter) -> Counter:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "r"}])
        return {"n": state["n"] + 10}

    def reviewer(state: Counter) -> Counter:
        return {"n": state["n"] + 100}

    team = StateGraph(Counter)
    team.add_node("researcher", researcher)
    team.add_node("reviewer", reviewer)
    team.add_edge(START, "researcher")
    team.add_edge("researcher", "reviewer")
    return team.compile(name="research_team")


def test_subgraph_node_and_graph_invoked_by_a_node_get_nested_workflow_spans(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    team = _research_team(fake_provider)

    def editor(state: Counter) -> Counter:
        return {"n": team.invoke({"n": state["n"]})["n"]}

    outer = StateGraph(Counter)
    outer.add_node("team", team)
    outer.add_node("editor", editor)
    outer.add_edge(START, "team")
    outer.add_edge("team", "editor")
    result = outer.compile(name="newsroom").invoke(
        {"n": 1}, {"configurable": {"thread_id": "desk-1"}}
    )

    assert result == {"n": 221}
    assert _tree(exporter) == [
        ("invoke_workflow newsroom", None),
        ("invoke_agent team", "invoke_workflow newsroom"),
        ("invoke_workflow research_team", "invoke_agent team"),
        ("invoke_agent researcher", "invoke_workflow research_team"),
        (f"chat {MODEL}", "invoke_agent researcher"),
        ("invoke_agent reviewer", "invoke_workflow research_team"),
        ("invoke_agent editor", "invoke_workflow newsroom"),
        ("invoke_workflow research_team", "invoke_agent editor"),
        ("invoke_agent researcher", "invoke_workflow research_team"),
        (f"chat {MODEL}", "invoke_agent researcher"),
        ("invoke_agent reviewer", "invoke_workflow research_team"),
    ]
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    run_id = _attrs(spans[0])[AGENTMESH_RUN_ID]
    assert {_attrs(s)[AGENTMESH_RUN_ID] for s in spans} == {run_id}  # one run
    nested = [s for s in spans if s.name == "invoke_workflow research_team"]
    for workflow, node in zip(nested, ("team", "editor"), strict=True):
        attrs = _attrs(workflow)
        namespace = attrs[AGENTMESH_LANGGRAPH_CHECKPOINT_NS]
        assert isinstance(namespace, str)
        assert namespace.startswith(f"{node}:")
        assert attrs[GEN_AI_CONVERSATION_ID] == "desk-1"
    inner_agents = [s for s in spans if s.name == "invoke_agent researcher"]
    for agent in inner_agents:
        attrs = _attrs(agent)
        assert attrs[GEN_AI_WORKFLOW_NAME] == "research_team"
        assert str(attrs[AGENTMESH_LANGGRAPH_CHECKPOINT_NS]).count("|") == 1
        assert GEN_AI_AGENT_HANDOFF_SOURCE_NAME not in attrs  # the subgraph's entry
    (reviewer, _) = [s for s in spans if s.name == "invoke_agent reviewer"]
    assert _attrs(reviewer)[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "researcher"
    (editor_span,) = [s for s in spans if s.name == "invoke_agent editor"]
    assert _attrs(editor_span)[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "team"
    (outer_team,) = [s for s in spans if s.name == "invoke_agent team"]
    assert AGENTMESH_LANGGRAPH_CHECKPOINT_NS not in _attrs(outer_team)  # top level


def test_command_to_the_parent_graph_is_a_command_handoff(exporter: InMemorySpanExporter) -> None:
    def decide(state: Counter) -> Command[str]:  # no Literal: "closer" is the parent's node
        return Command(graph=Command.PARENT, goto="closer", update={"n": state["n"] + 1})

    inner = StateGraph(Counter)
    inner.add_node("decide", decide)
    inner.add_edge(START, "decide")

    outer = StateGraph(Counter)
    outer.add_node("team", inner.compile(name="team_graph"), destinations=("closer",))
    outer.add_node("closer", lambda s: {"n": s["n"] * 10})
    outer.add_edge(START, "team")
    outer.add_edge("closer", END)

    assert outer.compile(name="parent").invoke({"n": 1}) == {"n": 20}
    spans = {s.name: s for s in exporter.get_finished_spans()}
    closer = _attrs(spans["invoke_agent closer"])
    assert closer[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "team"
    assert closer[AGENTMESH_HANDOFF_KIND] == "command"
    for span in spans.values():  # the bubbling command is control flow, not an error
        assert span.status.status_code is StatusCode.UNSET, span.name


class Draft(TypedDict):
    text: str
    approved: bool


def _approval_graph(fp: FakeProviderThread) -> CompiledStateGraph:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)

    def writer(state: Draft) -> dict[str, str]:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "draft"}]
        )
        return {"text": reply.choices[0].message.content or ""}

    def approver(state: Draft) -> dict[str, bool]:
        answer = interrupt({"question": "publish?", "text": state["text"]})
        return {"approved": answer == "yes"}

    graph = StateGraph(Draft)
    graph.add_node("writer", writer)
    graph.add_node("approver", approver)
    graph.add_edge(START, "writer")
    graph.add_edge("writer", "approver")
    graph.add_edge("approver", END)
    return graph.compile(name="approval", checkpointer=InMemorySaver())


def test_interrupt_is_not_an_error_and_resume_is_marked(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    graph = _approval_graph(fake_provider)
    config = {
        "configurable": {"thread_id": "review-9"},
        "metadata": {"agentmesh_task_class": "editorial"},
    }

    paused = graph.invoke({"text": "", "approved": False}, config)

    assert "__interrupt__" in paused
    spans = {s.name: s for s in exporter.get_finished_spans()}
    workflow = _attrs(spans["invoke_workflow approval"])
    approver = spans["invoke_agent approver"]
    assert workflow[AGENTMESH_LANGGRAPH_INTERRUPTED] is True
    assert AGENTMESH_LANGGRAPH_RESUMED not in workflow
    assert AGENTMESH_RUN_RESUMED not in workflow
    assert workflow[GEN_AI_CONVERSATION_ID] == "review-9"
    assert workflow[AGENTMESH_RUN_TASK_CLASS] == "editorial"
    assert _attrs(approver)[AGENTMESH_LANGGRAPH_INTERRUPTED] is True
    # the handoff writer → approver points at the checkpoint the approver's step started from
    checkpoint_id = _attrs(approver)[AGENTMESH_HANDOFF_CHECKPOINT_ID]
    history = {
        snap.config["configurable"]["checkpoint_id"]: snap.next
        for snap in graph.get_state_history(config)
    }
    assert history[checkpoint_id] == ("approver",)
    # LangGraph's InMemorySaver keeps it in this process: the spans say so (a new process
    # cannot resume from it), on the handoff span and event and on the workflow span
    assert _attrs(approver)[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == "memory://"
    (handoff,) = [e for e in approver.events if e.name == EVENT_HANDOFF]
    assert handoff.attributes is not None
    assert handoff.attributes[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == "memory://"
    assert workflow[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == "memory://"
    assert AGENTMESH_HANDOFF_CHECKPOINT_ID not in _attrs(spans["invoke_agent writer"])
    assert AGENTMESH_LANGGRAPH_INTERRUPTED not in _attrs(spans["invoke_agent writer"])
    for span in spans.values():
        assert span.status.status_code is StatusCode.UNSET, span.name
        assert ERROR_TYPE not in _attrs(span)
        assert not [e for e in span.events if e.name == "exception"]
    exporter.clear()

    done = graph.invoke(Command(resume="yes"), config)

    assert done["approved"] is True
    assert _tree(exporter) == [
        ("invoke_workflow approval", None),
        ("invoke_agent approver", "invoke_workflow approval"),
    ]
    spans = {s.name: s for s in exporter.get_finished_spans()}
    resumed = _attrs(spans["invoke_workflow approval"])
    assert resumed[AGENTMESH_LANGGRAPH_RESUMED] is True
    assert resumed[AGENTMESH_RUN_RESUMED] is True
    assert resumed[GEN_AI_CONVERSATION_ID] == "review-9"
    assert AGENTMESH_LANGGRAPH_INTERRUPTED not in resumed
    assert AGENTMESH_LANGGRAPH_INTERRUPTED not in _attrs(spans["invoke_agent approver"])
    # the run that resumed names the run that paused (a new run id, the paused one's link)
    assert resumed[AGENTMESH_RESUME_FROM_RUN_ID] == workflow[AGENTMESH_RUN_ID]
    assert resumed[AGENTMESH_RUN_ID] != workflow[AGENTMESH_RUN_ID]

    def run_id_of_next_run(*args: object) -> str:
        exporter.clear()
        graph.invoke(*args)
        (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_w")]
        return str(_attrs(span)[AGENTMESH_RUN_ID])

    fresh = {"text": "", "approved": False}
    other = {"configurable": {"thread_id": "other"}}
    run_id_of_next_run(fresh, config)  # pauses review-9 ...
    latest = run_id_of_next_run(fresh, config)  # ... and a new run on it pauses it again
    other_paused = run_id_of_next_run(fresh, other)
    exporter.clear()
    graph.invoke(Command(resume="no"), config)
    graph.invoke(Command(resume="no"), other)
    links = {
        _attrs(s)[GEN_AI_CONVERSATION_ID]: _attrs(s)[AGENTMESH_RESUME_FROM_RUN_ID]
        for s in exporter.get_finished_spans()
        if s.name.startswith("invoke_workflow")
    }
    assert links == {"review-9": latest, "other": other_paused}


async def test_interrupt_inside_a_subgraph_marks_every_level(
    exporter: InMemorySpanExporter,
) -> None:
    def ask(state: Counter) -> Counter:
        return {"n": state["n"] + int(interrupt("how many?"))}

    inner = StateGraph(Counter)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    outer = StateGraph(Counter)
    outer.add_node("intake", inner.compile(name="intake_graph"))
    outer.add_edge(START, "intake")
    graph = outer.compile(name="front_desk", checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "desk-2"}}

    await graph.ainvoke({"n": 1}, config)

    spans = list(exporter.get_finished_spans())
    assert sorted(s.name for s in spans) == [
        "invoke_agent ask",
        "invoke_agent intake",
        "invoke_workflow front_desk",
        "invoke_workflow intake_graph",
    ]
    for span in spans:
        assert _attrs(span)[AGENTMESH_LANGGRAPH_INTERRUPTED] is True, span.name
        assert span.status.status_code is StatusCode.UNSET, span.name
    exporter.clear()

    assert await graph.ainvoke(Command(resume="41"), config) == {"n": 42}
    (outer_span,) = [
        s for s in exporter.get_finished_spans() if s.name == "invoke_workflow front_desk"
    ]
    assert _attrs(outer_span)[AGENTMESH_LANGGRAPH_RESUMED] is True
    assert _attrs(outer_span)[GEN_AI_CONVERSATION_ID] == "desk-2"


def test_breakpoint_and_continue_with_no_input(exporter: InMemorySpanExporter) -> None:
    graph = StateGraph(Counter)
    graph.add_node("first", lambda s: {"n": s["n"] + 1})
    graph.add_node("second", lambda s: {"n": s["n"] * 10})
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    app = graph.compile(name="stepper", checkpointer=InMemorySaver(), interrupt_before=["second"])
    config = {"configurable": {"thread_id": "t-break"}}

    app.invoke({"n": 1}, config)
    (paused,) = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_workflow")]
    assert AGENTMESH_LANGGRAPH_RESUMED not in _attrs(paused)
    assert _attrs(paused)[AGENTMESH_LANGGRAPH_INTERRUPTED] is True  # at the breakpoint
    exporter.clear()

    assert app.invoke(None, config) == {"n": 20}
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == ["invoke_agent second", "invoke_workflow stepper"]
    assert _attrs(spans["invoke_workflow stepper"])[AGENTMESH_LANGGRAPH_RESUMED] is True
    assert AGENTMESH_LANGGRAPH_INTERRUPTED not in _attrs(spans["invoke_workflow stepper"])
