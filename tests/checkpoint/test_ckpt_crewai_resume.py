"""Resuming an instrumented crew from a resume plan, with the instrumentation's task checkpoints.

With ``AGENTMESH_CHECKPOINT_URL`` set, the CrewAI instrumentation stores each completed task's
output under the kickoff's run id. The Writer's model answers 500 and the run fails; with a
CrewAI resume plan for that run waiting (what ``agentmesh resume RUN_ID -- …`` sets up), the next
kickoff restores the first two tasks and asks only the Writer's model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs
from test_ckpt_crewai_tasks import (  # pyright: ignore[reportMissingImports]
    _PUBLISHING,  # pyright: ignore[reportPrivateUsage]
    ARTICLE,
    MANAGER,
    NOTES,
    SCRIPTS,
    WRITER,
    _answer,  # pyright: ignore[reportPrivateUsage]
    akickoff,
    build_crew,
    kickoff,
    write_done,
)

from agentmesh.core.semconv import (
    AGENTMESH_CREWAI_TASK_ID,
    AGENTMESH_CREWAI_TASK_NAME,
    AGENTMESH_RESUME_CHECKPOINT_ID,
    AGENTMESH_RESUME_FROM_RUN_ID,
    AGENTMESH_RUN_ID,
    GEN_AI_OPERATION_NAME,
)
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.resume import ResumeTarget, clear_resume, resume
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript, ResponseRule

pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:crewai\.")


@pytest.fixture
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread(dict(SCRIPTS)) as provider:
        yield provider


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    clear_resume()
    yield spans
    clear_resume()
    instrumentor.uninstrument()


def _workflow(spans: InMemorySpanExporter) -> dict[str, object]:
    (workflow,) = [
        dict(s.attributes or {})
        for s in spans.get_finished_spans()
        if (s.attributes or {}).get(GEN_AI_OPERATION_NAME) == "invoke_workflow"
    ]
    return workflow


def test_a_failed_crew_resumes_from_its_task_checkpoints(
    fake: FakeProviderThread,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTMESH_CHECKPOINT_URL", f"duckdb:///{tmp_path / 'tasks.duckdb'}")
    with pytest.raises(Exception, match="500"):
        kickoff(build_crew(fake))
    failed_run = _workflow(exporter)[AGENTMESH_RUN_ID]
    assert isinstance(failed_run, str)

    exporter.clear()
    fake.clear_requests()
    fake.set_script(WRITER, _answer(ARTICLE))
    resume(ResumeTarget(failed_run, None, "ck-task-2", framework="crewai"))
    result = kickoff(build_crew(fake))

    assert result.raw == ARTICLE
    assert [r.model for r in fake.requests] == [WRITER]  # tasks 1 and 2 were restored
    workflow = _workflow(exporter)
    assert workflow[AGENTMESH_RESUME_FROM_RUN_ID] == failed_run
    assert workflow[AGENTMESH_RESUME_CHECKPOINT_ID] == "ck-task-2"
    assert workflow[AGENTMESH_RUN_ID] != failed_run


def test_a_plan_whose_task_checkpoints_are_in_another_store_says_so(
    fake: FakeProviderThread,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTMESH_CHECKPOINT_URL", f"duckdb:///{tmp_path / 'other.duckdb'}")
    fake.set_script(WRITER, _answer(ARTICLE))
    resume(ResumeTarget("run-elsewhere", None, "ck-task-2", framework="crewai"))
    with capture_logs() as logs:
        kickoff(build_crew(fake))
    assert len({r.model for r in fake.requests}) == 3  # every task ran again...
    (said,) = [e for e in logs if e["event"] == "crew_resume_found_no_task_checkpoints"]
    assert said["log_level"] == "error"  # ...and the log says why
    assert said["run_id"] == "run-elsewhere"
    assert "another AGENTMESH_CHECKPOINT_URL" in said["reason"]


def test_without_a_checkpoint_url_a_crew_runs_as_usual_and_a_plan_is_ignored(
    fake: FakeProviderThread, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTMESH_CHECKPOINT_URL", raising=False)
    fake.set_script(WRITER, _answer(ARTICLE))
    resume(ResumeTarget("run-old", None, None, framework="crewai"))
    result = kickoff(build_crew(fake))
    assert result.raw == ARTICLE
    assert len({r.model for r in fake.requests}) == 3  # every task ran
    assert AGENTMESH_RESUME_FROM_RUN_ID not in _workflow(exporter)


def _agent_tasks(spans: InMemorySpanExporter) -> list[tuple[object, object]]:
    """The task name and id on each ``invoke_agent`` span, in the order they ended."""
    return [
        (attributes.get(AGENTMESH_CREWAI_TASK_NAME), attributes.get(AGENTMESH_CREWAI_TASK_ID))
        for attributes in (dict(s.attributes or {}) for s in spans.get_finished_spans())
        if attributes.get(GEN_AI_OPERATION_NAME) == "invoke_agent"
    ]


@pytest.mark.parametrize("variant", ["kickoff", "akickoff", "hierarchical"])
def test_the_agent_spans_of_a_resumed_crew_name_their_tasks(
    variant: str,
    fake: FakeProviderThread,
    exporter: InMemorySpanExporter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tasks run after the restored ones carry ``agentmesh.crewai.task.*`` as before.

    A QA report said they lost them on resume; they do not: the restore hook
    (``Task._execute_core``) gives the remaining tasks to CrewAI's own execution, whose
    ``Agent.execute_task`` / ``aexecute_task`` the instrumentation names the span from.
    """
    monkeypatch.setenv("AGENTMESH_CHECKPOINT_URL", f"duckdb:///{tmp_path / 'tasks.duckdb'}")
    hierarchical = variant == "hierarchical"
    if hierarchical:  # the manager runs every task; the write task's callback fails
        fake.set_script(
            MANAGER,
            ModelScript(
                content="Thought: I will do it.\nFinal Answer: Managed.",
                rules=(ResponseRule(pattern="Research otters", content=NOTES),),
            ),
        )
        monkeypatch.setitem(_PUBLISHING, "fails", True)

    def run_crew() -> list[str]:
        crew = build_crew(
            fake, hierarchical=hierarchical, write_callback=write_done if hierarchical else None
        )
        if variant == "akickoff":
            asyncio.run(akickoff(crew))
        else:
            kickoff(crew)
        return [str(task.id) for task in crew.tasks]

    with pytest.raises(Exception, match=r"500|publishing failed"):
        run_crew()
    failed_run = _workflow(exporter)[AGENTMESH_RUN_ID]
    assert isinstance(failed_run, str)
    original = _agent_tasks(exporter)
    assert [name for name, _ in original] == ["research", "check", "write"]
    assert all(isinstance(task_id, str) for _, task_id in original)

    exporter.clear()
    fake.clear_requests()
    fake.set_script(WRITER, _answer(ARTICLE))
    monkeypatch.setitem(_PUBLISHING, "fails", False)
    resume(ResumeTarget(failed_run, None, "ck-task-2", framework="crewai"))
    task_ids = run_crew()

    assert len(fake.requests) == 1  # the first two tasks were restored, not run
    assert _workflow(exporter)[AGENTMESH_RESUME_FROM_RUN_ID] == failed_run
    assert _agent_tasks(exporter) == [("write", task_ids[2])]
