"""CrewCheckpoints: task-level checkpoints of real CrewAI crews against the fake provider.

Three tasks run in sequence (Researcher → Checker → Writer, one fake model each, so the
provider's request log tells which tasks ran). The Writer's model answers 500: the run fails
after two tasks were checkpointed. Resumed with the same run id (a new crew and a new
checkpoints object on the same storage, as another process would), the first two tasks are not
run again (no request for their models), their stored outputs reach the Writer as context, and
the crew completes.
"""

from __future__ import annotations

import os

for _name in ("CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_TRACKING"):
    os.environ.setdefault(_name, "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

import asyncio  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from crewai import LLM, Agent, Crew, Process, Task  # noqa: E402
from crewai.crews.crew_output import CrewOutput  # noqa: E402
from crewai.tasks.task_output import TaskOutput  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from structlog.testing import capture_logs  # noqa: E402

from agentmesh.checkpoint.crewai import TASKS_NAMESPACE, CrewCheckpoints  # noqa: E402
from agentmesh.checkpoint.store import (  # noqa: E402
    Blob,
    CheckpointRecord,
    ListQuery,
    MemoryCheckpointStore,
)
from agentmesh.core.errors import CheckpointError, ConfigError  # noqa: E402
from agentmesh.instrumentation.testing import (  # noqa: E402
    ErrorScript,
    FakeProviderThread,
    ModelScript,
    ResponseRule,
)

pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:crewai\.")

RESEARCHER = "researcher-model"
CHECKER = "checker-model"
WRITER = "writer-model"
MANAGER = "manager-model"

NOTES = '{"title": "Otters", "fact": "Otters hold hands while they sleep."}'
CHECKED = "Checked: otters sleep in rafts."
ARTICLE = "An article on otters."


class Notes(BaseModel):
    title: str
    fact: str


def _answer(text: str) -> ModelScript:
    return ModelScript(content=f"Thought: I know this.\nFinal Answer: {text}")


SCRIPTS = {
    RESEARCHER: ModelScript(content=NOTES),  # structured output: the JSON itself
    CHECKER: _answer(CHECKED),
    WRITER: ModelScript(error=ErrorScript(status=500)),
}


@pytest.fixture(scope="module", autouse=True)
def crewai_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("crewai-storage")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CREWAI_STORAGE_DIR", str(path))
        yield path


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(SCRIPTS) as provider:
        yield provider


def _llm(fp: FakeProviderThread, model: str) -> LLM:
    return LLM(model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0)


def build_crew(
    fp: FakeProviderThread,
    *,
    hierarchical: bool = False,
    research_description: str = "Research otters.",
    check_description: str = "Check the notes.",
    write_callback: Callable[[TaskOutput], None] | None = None,
) -> Crew:
    """The three-task crew (built anew for each run, as a new process would)."""
    researcher = Agent(
        role="Researcher", goal="Find facts", backstory="Test.", llm=_llm(fp, RESEARCHER)
    )
    checker = Agent(role="Checker", goal="Check facts", backstory="Test.", llm=_llm(fp, CHECKER))
    writer = Agent(role="Writer", goal="Write", backstory="Test.", llm=_llm(fp, WRITER))
    tasks = [
        Task(
            name="research",
            description=research_description,
            expected_output="Notes.",
            agent=None if hierarchical else researcher,
            output_pydantic=Notes,
        ),
        Task(
            name="check",
            description=check_description,
            expected_output="Checked notes.",
            agent=None if hierarchical else checker,
        ),
        Task(
            name="write",
            description="Write about otters.",
            expected_output="An article.",
            agent=None if hierarchical else writer,
            callback=write_callback,
        ),
    ]
    if hierarchical:
        return Crew(
            name="otter_crew",
            agents=[researcher, checker, writer],
            tasks=tasks,
            process=Process.hierarchical,
            manager_llm=_llm(fp, MANAGER),
        )
    return Crew(name="otter_crew", agents=[researcher, checker, writer], tasks=tasks)


def kickoff(crew: Crew) -> CrewOutput:
    """``crew.kickoff()``, typed (these crews do not stream)."""
    result = crew.kickoff()  # pyright: ignore[reportUnknownMemberType]
    assert isinstance(result, CrewOutput)
    return result


async def akickoff(crew: Crew) -> CrewOutput:
    """``crew.akickoff()``, typed."""
    result = await crew.akickoff()  # pyright: ignore[reportUnknownMemberType]
    assert isinstance(result, CrewOutput)
    return result


def _models(fp: FakeProviderThread) -> list[str | None]:
    return [request.model for request in fp.requests]


def _prompt(fp: FakeProviderThread, model: str) -> str:
    bodies = [r.body for r in fp.requests if r.model == model and r.body is not None]
    assert bodies, f"no request for {model}"
    messages: Any = bodies[-1]["messages"]
    return "\n".join(str(message["content"]) for message in messages)


StoreFactory = Callable[[], object]


@pytest.fixture(params=["memory", "duckdb", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of stores over the same storage (as successive processes would open)."""
    if request.param == "memory":
        store = MemoryCheckpointStore()
        yield lambda: store
    elif request.param == "duckdb":
        from agentmesh.checkpoint.store.duckdb import DuckDBCheckpointStore

        path = tmp_path / "tasks.duckdb"
        yield lambda: DuckDBCheckpointStore(path)
    else:
        import redis

        from agentmesh.checkpoint.store.redis import RedisCheckpointStore

        host, port = request.getfixturevalue("redis_address")
        prefix = f"test:ckpt-crewai-tasks:{uuid.uuid4().hex}"
        yield lambda: RedisCheckpointStore(f"redis://{host}:{port}/0", prefix=prefix)
        client = redis.Redis(host=host, port=port, db=0)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType, reportUnknownVariableType]
            if keys:
                client.delete(*keys)  # pyright: ignore[reportUnknownArgumentType]
        finally:
            client.close()


def test_failed_crew_resumes_after_the_last_completed_task(
    fake: FakeProviderThread, make_store: StoreFactory
) -> None:
    run_id = f"run-{uuid.uuid4().hex}"
    with CrewCheckpoints(make_store()) as checkpoints:
        crew = build_crew(fake)
        with checkpoints.attach(crew, run_id) as run, pytest.raises(Exception, match="500"):
            kickoff(crew)
        assert run.saved == [0, 1]
        assert run.restored == []
        assert set(_models(fake)) == {RESEARCHER, CHECKER, WRITER}

    fake.clear_requests()
    fake.set_script(WRITER, _answer(ARTICLE))
    with CrewCheckpoints(make_store()) as checkpoints:  # "another process"
        crew = build_crew(fake)
        with checkpoints.resume(crew, run_id) as resumed:
            result = kickoff(crew)

        assert result.raw == ARTICLE
        assert _models(fake) == [WRITER]  # tasks 1 and 2 made no LLM call
        assert resumed.restored == [0, 1]
        assert resumed.saved == [2]
        writer_prompt = _prompt(fake, WRITER)
        assert "Otters hold hands while they sleep." in writer_prompt  # task 1's output
        assert CHECKED in writer_prompt  # task 2's output
        restored_notes = crew.tasks[0].output
        assert restored_notes is not None
        assert restored_notes.pydantic == Notes(
            title="Otters", fact="Otters hold hands while they sleep."
        )
        assert restored_notes.agent == "Researcher"
        assert [output.raw for output in result.tasks_output][1:] == [CHECKED, ARTICLE]

        completed = checkpoints.completed(crew, run_id)
        assert sorted(completed) == [0, 1, 2]
        assert completed[2].raw == ARTICLE
        assert completed[2].agent == "Writer"


def test_checkpoints_are_stored_under_the_run_and_tasks_namespace(
    fake: FakeProviderThread,
) -> None:
    store = MemoryCheckpointStore()
    fake.set_script(WRITER, _answer(ARTICLE))
    with CrewCheckpoints(store, crew_key="otters") as checkpoints:
        checkpoints.kickoff(build_crew(fake), run_id="run-layout")

    async def listing() -> list[tuple[str, str, Mapping[str, Any], str | None]]:
        return [
            (item.record.thread_id, item.record.namespace, item.record.metadata, item.record.run_id)
            async for item in store.list(ListQuery(thread_id="run-layout"))
        ]

    saved = asyncio.run(listing())
    assert [meta["task_index"] for _, _, meta, _ in saved] == [2, 1, 0]  # newest first
    assert {(thread, ns, run) for thread, ns, _, run in saved} == {
        ("run-layout", TASKS_NAMESPACE, "run-layout")
    }
    assert [meta["agent"] for _, _, meta, _ in saved] == ["Writer", "Checker", "Researcher"]
    assert all(meta["crew"] == "otters" for _, _, meta, _ in saved)


def test_a_completed_run_kicked_off_again_makes_no_llm_call(fake: FakeProviderThread) -> None:
    fake.set_script(WRITER, _answer(ARTICLE))
    with CrewCheckpoints("memory://") as checkpoints:
        first = checkpoints.kickoff(build_crew(fake), run_id="run-again")
        fake.clear_requests()
        again = checkpoints.kickoff(build_crew(fake), run_id="run-again")
    assert again.raw == first.raw == ARTICLE
    assert fake.requests == []


def test_a_changed_task_runs_again_and_so_do_the_tasks_after_it(
    fake: FakeProviderThread,
) -> None:
    with CrewCheckpoints(MemoryCheckpointStore(), crew_key="otters") as checkpoints:
        crew = build_crew(fake)
        with pytest.raises(Exception, match="500"):
            checkpoints.kickoff(crew, run_id="run-changed")
        fake.clear_requests()
        fake.set_script(WRITER, _answer(ARTICLE))
        changed = build_crew(fake, check_description="Check the notes twice.")
        with checkpoints.resume(changed, "run-changed") as run:
            kickoff(changed)
    assert run.restored == [0]
    assert _models(fake) == [CHECKER, WRITER]


_PUBLISHING = {"fails": True}


def write_done(output: TaskOutput) -> None:
    """Task callback (module level: CrewAI warns about closures) that fails while told to."""
    if _PUBLISHING["fails"]:
        raise RuntimeError("publishing failed")


def test_other_inputs_do_not_pick_up_the_stored_outputs(fake: FakeProviderThread) -> None:
    with CrewCheckpoints(MemoryCheckpointStore()) as checkpoints:
        crew = build_crew(fake, research_description="Research {topic}.")
        with pytest.raises(Exception, match="500"):
            checkpoints.kickoff(crew, run_id="run-inputs", inputs={"topic": "otters"})
        fake.clear_requests()
        fake.set_script(WRITER, _answer(ARTICLE))
        crew = build_crew(fake, research_description="Research {topic}.")
        with capture_logs() as logs, checkpoints.resume(crew, "run-inputs") as run:
            crew.kickoff(inputs={"topic": "beavers"})  # pyright: ignore[reportUnknownMemberType]
    assert run.restored == []
    assert _models(fake) == [RESEARCHER, CHECKER, WRITER]
    mismatches = [entry for entry in logs if entry["event"] == "crewai_task_checkpoint_mismatch"]
    assert [entry["task_index"] for entry in mismatches] == [0]


def test_streaming_crews_are_refused_by_kickoff(fake: FakeProviderThread) -> None:
    crew = build_crew(fake)
    crew.stream = True
    with CrewCheckpoints("memory://") as checkpoints, pytest.raises(ConfigError, match="stream"):
        checkpoints.kickoff(crew, run_id="run-stream")
    assert fake.requests == []


def test_hierarchical_crew_resumes(fake: FakeProviderThread) -> None:
    fake.set_script(
        MANAGER,
        ModelScript(
            content="Thought: I will do it.\nFinal Answer: Managed.",
            rules=(ResponseRule(pattern="Research otters", content=NOTES),),
        ),
    )
    _PUBLISHING["fails"] = True
    with CrewCheckpoints(MemoryCheckpointStore()) as checkpoints:
        crew = build_crew(fake, hierarchical=True, write_callback=write_done)
        with pytest.raises(RuntimeError, match="publishing failed"):
            checkpoints.kickoff(crew, run_id="run-hierarchical")
        assert _models(fake) == [MANAGER] * 3

        fake.clear_requests()
        _PUBLISHING["fails"] = False
        crew = build_crew(fake, hierarchical=True, write_callback=write_done)
        with checkpoints.resume(crew, "run-hierarchical") as run:
            kickoff(crew)
    assert run.restored == [0, 1]
    assert _models(fake) == [MANAGER]  # only the third task ran
    assert "Otters hold hands while they sleep." in _prompt(fake, MANAGER)


def test_native_async_kickoff_resumes(fake: FakeProviderThread) -> None:
    async def scenario() -> tuple[list[int], str]:
        with CrewCheckpoints(MemoryCheckpointStore()) as checkpoints:
            with pytest.raises(Exception, match="500"):
                await checkpoints.akickoff(build_crew(fake), run_id="run-async")
            fake.clear_requests()
            fake.set_script(WRITER, _answer(ARTICLE))
            crew = build_crew(fake)
            with checkpoints.resume(crew, "run-async") as run:
                result = await akickoff(crew)
            return run.restored, result.raw

    restored, raw = asyncio.run(scenario())
    assert restored == [0, 1]
    assert raw == ARTICLE
    assert _models(fake) == [WRITER]


def test_run_id_comes_from_agentmesh_baggage(fake: FakeProviderThread) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentmesh.core.semconv import AGENTMESH_RUN_ID
    from agentmesh.instrumentation import run_scope
    from agentmesh.instrumentation.crewai import CrewAIInstrumentor

    fake.set_script(WRITER, _answer(ARTICLE))
    with CrewCheckpoints(MemoryCheckpointStore()) as checkpoints:
        with run_scope("run-from-scope"), checkpoints.attach(build_crew(fake)) as scoped:
            pass
        assert scoped.run_id == "run-from-scope"

        # Inside a kickoff, the CrewAI instrumentation's run id (taken when the first task runs).
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        instrumentor = CrewAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            crew = build_crew(fake)
            with checkpoints.attach(crew) as run:
                assert run.run_id is None
                kickoff(crew)
        finally:
            instrumentor.uninstrument()
        workflow = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_work")]
        assert len(workflow) == 1
        assert workflow[0].attributes is not None
        run_id = run.run_id
        assert run_id is not None
        assert run_id == workflow[0].attributes[AGENTMESH_RUN_ID]
        assert sorted(checkpoints.completed(crew, run_id)) == [0, 1, 2]


class _FailingStore(MemoryCheckpointStore):
    """A memory store whose writes fail like a backend losing its connection."""

    async def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        raise ConnectionResetError("connection reset by peer")


def test_a_failed_checkpoint_write_fails_the_crew_unless_told_to_log(
    fake: FakeProviderThread,
) -> None:
    fake.set_script(WRITER, _answer(ARTICLE))
    with (
        CrewCheckpoints(_FailingStore()) as checkpoints,
        pytest.raises(CheckpointError, match="connection reset by peer"),
    ):
        checkpoints.kickoff(build_crew(fake), run_id="run-failing")
    assert _models(fake) == [RESEARCHER]  # the crew stopped at the first failed write

    fake.clear_requests()
    with CrewCheckpoints(_FailingStore(), on_error="log") as checkpoints, capture_logs() as logs:
        result = checkpoints.kickoff(build_crew(fake), run_id="run-logging")
    assert result.raw == ARTICLE
    failures = [entry for entry in logs if entry["event"] == "crewai_checkpoint_write_failed"]
    assert [entry["task_index"] for entry in failures] == [0, 1, 2]


def test_the_hook_is_installed_only_while_needed(fake: FakeProviderThread) -> None:
    original = Task.__dict__["_execute_core"]
    checkpoints = CrewCheckpoints(MemoryCheckpointStore())
    try:
        crew = build_crew(fake)
        with checkpoints.attach(crew, "run-hook"):
            assert Task.__dict__["_execute_core"] is not original
            with pytest.raises(Exception, match="already attached"):
                checkpoints.attach(crew, "run-other").__enter__()
        assert Task.__dict__["_execute_core"] is original

        CrewCheckpoints.install()
        assert Task.__dict__["_execute_core"] is not original
        with checkpoints.attach(crew, "run-hook"):
            pass
        assert Task.__dict__["_execute_core"] is not original  # install() keeps it
        CrewCheckpoints.uninstall()
        assert Task.__dict__["_execute_core"] is original

        # A crew that is not attached runs as usual, with no checkpoint written.
        fake.set_script(WRITER, _answer(ARTICLE))
        CrewCheckpoints.install()
        try:
            assert kickoff(build_crew(fake)).raw == ARTICLE
        finally:
            CrewCheckpoints.uninstall()
        assert checkpoints.completed(crew, "run-hook") == {}
    finally:
        checkpoints.close()
