"""Handoff checkpoints end to end: instrumented LangGraph and CrewAI runs with
``AGENTMESH_CHECKPOINT_URL`` set.

- A LangGraph graph WITHOUT a checkpointer: planner hands to researcher by ``Command(goto=…)``
  (then researcher → writer by a plain edge). Each handoff span carries a checkpoint id, the
  store kind and the context digest; the store holds that checkpoint under the run id, and the
  context stored there has the span's digest.
- A two-task CrewAI crew (researcher → writer, the research output as the writer's context):
  the same for the ``task_context`` handoff.
- With the URL pointing at a dead Redis, both apps complete and their spans still carry digests.
- Every span that records a checkpoint names its store's URL, password masked; a graph compiled
  with one of our savers names the saver's store.

Every agent calls the real OpenAI SDK against the local fake provider.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

for _name in ("CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_TRACKING"):
    os.environ.setdefault(_name, "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

import openai  # noqa: E402
import pytest  # noqa: E402
from crewai import LLM, Agent, Crew, Task  # noqa: E402
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.graph.state import CompiledStateGraph  # noqa: E402
from langgraph.types import Command  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import format_span_id, format_trace_id  # noqa: E402

from agentmesh.checkpoint.handoff_writer import (  # noqa: E402
    HandoffCheckpoint,
    HandoffCheckpointWriter,
    read_handoff,
)
from agentmesh.checkpoint.store.factory import open_store  # noqa: E402
from agentmesh.core.semconv import (  # noqa: E402
    AGENTMESH_HANDOFF_CHECKPOINT_ID,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_RUN_ID,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
)
from agentmesh.instrumentation.checkpoints import (  # noqa: E402
    handoff_writer,
    reset_handoff_writer,
)
from agentmesh.instrumentation.crewai import CrewAIInstrumentor  # noqa: E402
from agentmesh.instrumentation.handoff import context_digest  # noqa: E402
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor  # noqa: E402
from agentmesh.instrumentation.openai import OpenAIInstrumentor  # noqa: E402
from agentmesh.instrumentation.testing import (  # noqa: E402
    FakeProviderThread,
    ModelScript,
    ScriptedReply,
    ToolCallScript,
)

MODEL = "gpt-4o-mini"
RESEARCHER_MODEL = "researcher-model"
WRITER_MODEL = "writer-model"
SCRIPTS = {
    MODEL: ModelScript(content="Otters hold hands while they sleep."),
    RESEARCHER_MODEL: ModelScript(
        content="Thought: I know this.\nFinal Answer: Otters hold hands."
    ),
    WRITER_MODEL: ModelScript(content="Thought: Writing.\nFinal Answer: An article on otters."),
}
DEAD_REDIS = "redis://:s3cret@127.0.0.1:1/0"

# CrewAI reads its own deprecated fields (function_calling_llm…) on every run: not ours.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:crewai\.")

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider(shutdown_on_exit=False)
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def crewai_offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CREWAI_STORAGE_DIR", str(tmp_path_factory.mktemp("crewai-storage")))
        yield


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def instrumented(exporter: InMemorySpanExporter) -> Iterator[None]:
    instrumentors = [OpenAIInstrumentor(), LangGraphInstrumentor(), CrewAIInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=_PROVIDER)
    yield
    for instrumentor in reversed(instrumentors):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
def fake_provider() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(SCRIPTS) as provider:
        yield provider


def _use_store(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("AGENTMESH_CHECKPOINT_URL", url)
    reset_handoff_writer()


@pytest.fixture(autouse=True)
def forget_writer() -> Iterator[None]:
    reset_handoff_writer()
    yield
    reset_handoff_writer()


def _store_url(kind: str, tmp_path: Path) -> str:
    if kind == "duckdb":
        pytest.importorskip("agentmesh.checkpoint.store.duckdb")
        return f"duckdb:///{tmp_path / 'handoffs.duckdb'}"
    return "memory://"


def _writer() -> HandoffCheckpointWriter:
    writer = handoff_writer()
    assert writer is not None
    return writer


def _read_back(url: str, run_id: str, checkpoint_id: str) -> HandoffCheckpoint | None:
    """Read a checkpoint: through the writer for memory://, from the file after close else."""
    if url == "memory://":
        writer = _writer()
        assert writer.flush(30.0)
        return writer.read(run_id, checkpoint_id)
    assert reset_handoff_writer(timeout=30.0)  # flush and close the file

    async def read() -> HandoffCheckpoint | None:
        async with open_store(url) as store:
            return await read_handoff(store, run_id, checkpoint_id)

    return asyncio.run(read())


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _handoff_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    spans = [
        s
        for s in exporter.get_finished_spans()
        if s.name.startswith("invoke_agent ") and GEN_AI_AGENT_HANDOFF_SOURCE_NAME in _attrs(s)
    ]
    return sorted(spans, key=lambda s: s.start_time or 0)


def _check_stored(span: ReadableSpan, stored: HandoffCheckpoint | None, run_id: str) -> None:
    attrs = _attrs(span)
    assert stored is not None, span.name
    assert stored.run_id == run_id
    assert stored.checkpoint_id == attrs[AGENTMESH_HANDOFF_CHECKPOINT_ID]
    # the context that crossed: its digest is the span's
    assert context_digest(stored.context).digest == attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST]
    assert stored.metadata["digest"] == attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST]
    assert stored.metadata["source"] == attrs[GEN_AI_AGENT_HANDOFF_SOURCE_NAME]
    assert stored.metadata["target"] == attrs[GEN_AI_AGENT_HANDOFF_TARGET_NAME]
    assert stored.metadata["handoff_kind"] == attrs[AGENTMESH_HANDOFF_KIND]
    assert stored.metadata["kind"] == "handoff"
    assert stored.metadata["trace_id"] == format_trace_id(span.context.trace_id)
    assert stored.metadata["span_id"] == format_span_id(span.context.span_id)


# --- LangGraph ------------------------------------------------------------------------------


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: list[str]


def _graph(fp: FakeProviderThread, checkpointer: Any = None) -> CompiledStateGraph:
    client = openai.OpenAI(base_url=fp.openai_base_url, api_key="t", max_retries=0)

    def ask(text: str) -> str:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}]
        )
        return reply.choices[0].message.content or ""

    def planner(state: State) -> Command[Literal["researcher"]]:
        answer = ask("plan the research on otters")
        return Command(
            goto="researcher",
            update={"messages": [AIMessage(answer, id="plan")], "notes": ["plan: otters"]},
        )

    def researcher(state: State) -> dict[str, Any]:
        answer = ask("research otters")
        return {
            "messages": [AIMessage(answer, id="research")],
            "notes": [*state["notes"], "found: hands"],
        }

    def writer(state: State) -> dict[str, Any]:
        ask("write it up")
        return {"notes": [*state["notes"], "written"]}

    graph = StateGraph(State)
    graph.add_node("planner", planner)
    graph.add_node("researcher", researcher)
    graph.add_node("writer", writer)
    graph.add_edge(START, "planner")
    graph.add_edge("researcher", "writer")
    graph.add_edge("writer", END)
    return graph.compile(name="otter_graph", checkpointer=checkpointer)  # none by default


def _run_graph(fp: FakeProviderThread) -> dict[str, Any]:
    start: State = {"messages": [HumanMessage("tell me about otters", id="ask")], "notes": []}
    return _graph(fp).invoke(start)


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_langgraph_without_checkpointer_gets_handoff_checkpoints(
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exporter: InMemorySpanExporter,
    fake_provider: FakeProviderThread,
) -> None:
    url = _store_url(kind, tmp_path)
    _use_store(monkeypatch, url)

    result = _run_graph(fake_provider)
    assert result["notes"] == ["plan: otters", "found: hands", "written"]

    spans = _handoff_spans(exporter)
    assert [
        (
            _attrs(s)[GEN_AI_AGENT_HANDOFF_SOURCE_NAME],
            _attrs(s)[GEN_AI_AGENT_HANDOFF_TARGET_NAME],
            _attrs(s)[AGENTMESH_HANDOFF_KIND],
        )
        for s in spans
    ] == [("planner", "researcher", "command"), ("researcher", "writer", "edge")]
    run_ids = {_attrs(s)[AGENTMESH_RUN_ID] for s in spans}
    assert len(run_ids) == 1
    run_id = str(run_ids.pop())
    ids = [str(_attrs(s)[AGENTMESH_HANDOFF_CHECKPOINT_ID]) for s in spans]
    assert ids == sorted(ids)
    assert len(set(ids)) == 2
    for span in spans:
        attrs = _attrs(span)
        assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_STORE] == kind
        # where it lives: memory://, or the DuckDB file by its absolute path
        expected = "memory://" if kind == "memory" else f"duckdb://{tmp_path / 'handoffs.duckdb'}"
        assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == expected
        (event,) = [e for e in span.events if e.name == EVENT_HANDOFF]
        assert event.attributes is not None
        assert (
            event.attributes[AGENTMESH_HANDOFF_CHECKPOINT_ID]
            == attrs[AGENTMESH_HANDOFF_CHECKPOINT_ID]
        )
        assert event.attributes[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == expected

    # the Command(goto) handoff: the state the researcher started from
    command_span, edge_span = spans
    first = _read_back(url, run_id, ids[0]) if url == "memory://" else None
    if first is not None:
        _check_stored(command_span, first, run_id)
        assert first.context["notes"] == ["plan: otters"]
        assert [m.id for m in first.context["messages"]] == ["ask", "plan"]
    second = _read_back(url, run_id, ids[1])
    _check_stored(edge_span, second, run_id)
    assert second is not None
    assert second.parent_id == ids[0]  # chained to the run's previous handoff
    assert second.context["notes"] == ["plan: otters", "found: hands"]
    if url != "memory://":
        first = _read_back(url, run_id, ids[0])
        _check_stored(command_span, first, run_id)
        assert first is not None
        assert [m.id for m in first.context["messages"]] == ["ask", "plan"]


@pytest.mark.usefixtures("instrumented")
def test_langgraph_without_store_url_takes_no_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
    exporter: InMemorySpanExporter,
    fake_provider: FakeProviderThread,
) -> None:
    monkeypatch.delenv("AGENTMESH_CHECKPOINT_URL", raising=False)
    reset_handoff_writer()
    _run_graph(fake_provider)
    spans = _handoff_spans(exporter)
    assert len(spans) == 2
    for span in spans:
        assert AGENTMESH_HANDOFF_CONTEXT_DIGEST in _attrs(span)
        assert AGENTMESH_HANDOFF_CHECKPOINT_ID not in _attrs(span)
    assert handoff_writer() is None


@pytest.mark.usefixtures("instrumented")
def test_langgraph_with_our_saver_names_the_savers_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exporter: InMemorySpanExporter,
    fake_provider: FakeProviderThread,
) -> None:
    pytest.importorskip("agentmesh.checkpoint.store.duckdb")
    from agentmesh.checkpoint.langgraph import DuckDBSaver

    monkeypatch.delenv("AGENTMESH_CHECKPOINT_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # a relative file: named by its absolute path
    start: State = {"messages": [HumanMessage("tell me about otters", id="ask")], "notes": []}
    with DuckDBSaver.from_conn_string("threads.duckdb") as saver:
        assert saver.store_url == f"duckdb://{tmp_path / 'threads.duckdb'}"
        graph = _graph(fake_provider, saver)
        graph.invoke(start, {"configurable": {"thread_id": "otters-1"}})

    spans = _handoff_spans(exporter)
    assert len(spans) == 2
    for span in spans:
        attrs = _attrs(span)
        assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_ID]  # the graph's own checkpoint ...
        assert AGENTMESH_HANDOFF_CHECKPOINT_STORE not in attrs  # ... not a handoff checkpoint
        assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == saver.store_url
    (workflow,) = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_work")]
    assert _attrs(workflow)[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == saver.store_url


# --- CrewAI ---------------------------------------------------------------------------------


def _crew(fp: FakeProviderThread) -> tuple[Crew, Task]:
    def llm(model: str) -> LLM:
        return LLM(model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0)

    researcher = Agent(
        role="Researcher", goal="Find facts", backstory="Test agent.", llm=llm(RESEARCHER_MODEL)
    )
    writer = Agent(role="Writer", goal="Write", backstory="Test agent.", llm=llm(WRITER_MODEL))
    research = Task(
        name="research", description="Research otters.", expected_output="Notes.", agent=researcher
    )
    write = Task(
        name="write", description="Write about otters.", expected_output="An article.", agent=writer
    )
    crew = Crew(name="otter_crew", agents=[researcher, writer], tasks=[research, write])
    return crew, research


@pytest.mark.usefixtures("instrumented")
def test_crewai_task_context_gets_a_handoff_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
    exporter: InMemorySpanExporter,
    fake_provider: FakeProviderThread,
) -> None:
    _use_store(monkeypatch, "memory://")
    crew, research = _crew(fake_provider)

    result = crew.kickoff()
    assert result.raw == "An article on otters."

    (span,) = _handoff_spans(exporter)
    attrs = _attrs(span)
    assert attrs[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "Researcher"
    assert attrs[GEN_AI_AGENT_HANDOFF_TARGET_NAME] == "Writer"
    assert attrs[AGENTMESH_HANDOFF_KIND] == "task_context"
    assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_STORE] == "memory"
    assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == "memory://"
    # the crew's task checkpoints live there too: its workflow span says so
    (workflow,) = [
        s for s in exporter.get_finished_spans() if s.name == "invoke_workflow otter_crew"
    ]
    assert _attrs(workflow)[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == "memory://"
    assert research.output is not None
    assert attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest(research.output.raw).digest
    (event,) = [e for e in span.events if e.name == EVENT_HANDOFF]
    assert event.attributes is not None
    assert (
        event.attributes[AGENTMESH_HANDOFF_CHECKPOINT_ID] == attrs[AGENTMESH_HANDOFF_CHECKPOINT_ID]
    )

    run_id = str(attrs[AGENTMESH_RUN_ID])
    stored = _read_back("memory://", run_id, str(attrs[AGENTMESH_HANDOFF_CHECKPOINT_ID]))
    _check_stored(span, stored, run_id)
    assert stored is not None
    assert stored.context == research.output.raw  # the research output the writer started from
    assert _writer().history(run_id)[0].checkpoint_id == stored.checkpoint_id


@pytest.mark.usefixtures("instrumented")
def test_crewai_delegation_gets_a_handoff_checkpoint(
    monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter
) -> None:
    _use_store(monkeypatch, "memory://")
    arguments = {"task": "Write a poem.", "context": "About otters.", "coworker": "Writer"}
    call = ToolCallScript(name="delegate_work_to_coworker", arguments=arguments)
    scripts = {
        "lead-model": ModelScript(sequence=(ScriptedReply(tool_calls=(call,)), "Done.")),
        WRITER_MODEL: ModelScript(content="Thought: Writing.\nFinal Answer: A poem."),
    }
    with FakeProviderThread(scripts) as fp:

        def llm(model: str) -> LLM:
            return LLM(
                model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0
            )

        lead = Agent(
            role="Lead", goal="Lead.", backstory="b", llm=llm("lead-model"), allow_delegation=True
        )
        writer = Agent(role="Writer", goal="Write.", backstory="b", llm=llm(WRITER_MODEL))
        task = Task(name="poem", description="Get a poem.", expected_output="A poem.", agent=lead)
        assert Crew(name="poets", agents=[lead, writer], tasks=[task]).kickoff().raw == "Done."

    (span,) = _handoff_spans(exporter)
    attrs = _attrs(span)
    assert attrs[AGENTMESH_HANDOFF_KIND] == "delegation"
    assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_STORE] == "memory"
    run_id = str(attrs[AGENTMESH_RUN_ID])
    stored = _read_back("memory://", run_id, str(attrs[AGENTMESH_HANDOFF_CHECKPOINT_ID]))
    _check_stored(span, stored, run_id)
    assert stored is not None
    assert stored.context == {"task": "Write a poem.", "context": "About otters."}


# --- a dead store ---------------------------------------------------------------------------


@pytest.mark.usefixtures("instrumented")
def test_dead_redis_apps_complete_and_spans_keep_digests(
    monkeypatch: pytest.MonkeyPatch,
    exporter: InMemorySpanExporter,
    fake_provider: FakeProviderThread,
) -> None:
    pytest.importorskip("agentmesh.checkpoint.store.redis")
    _use_store(monkeypatch, DEAD_REDIS)

    result = _run_graph(fake_provider)
    assert result["notes"] == ["plan: otters", "found: hands", "written"]
    crew, _ = _crew(fake_provider)
    assert crew.kickoff().raw == "An article on otters."

    spans = _handoff_spans(exporter)
    assert len(spans) == 3  # two graph handoffs, one crew handoff
    for span in spans:
        attrs = _attrs(span)
        assert str(attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST]).startswith("sha256:")
        assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_STORE] == "redis"
        assert attrs[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] == "redis://:***@127.0.0.1:1/0"
    for span in exporter.get_finished_spans():  # never the password, on any span or event
        recorded = [_attrs(span), *(dict(e.attributes or {}) for e in span.events)]
        assert "s3cret" not in repr(recorded), span.name
    writer = _writer()
    assert writer.flush(60.0)
    stats = writer.stats()
    assert stats.submitted == 3
    assert stats.written == 0
    assert stats.store_failed == 3
