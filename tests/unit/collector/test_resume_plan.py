"""Where a run resumes: the last good handoff before the failure, from stored spans."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.model import SpanEventRecord, SpanRecord
from agentmesh.collector.resume import find_plan, resume_plan, resume_routes
from agentmesh.collector.resume.endpoint import RunNotFoundError
from agentmesh.collector.store.memory_store import MemoryStore
from agentmesh.core import semconv
from agentmesh.core.resume_plan import resume_refusal

TRACE = "ab" * 16
_ids = itertools.count(1)


def _span(
    operation: str,
    start: int,
    *,
    agent: str | None = None,
    source: str | None = None,
    checkpoint: str | None = None,
    error: bool = False,
    parent: str | None = "0" * 15 + "1",
    extra: dict[str, object] | None = None,
) -> SpanRecord:
    attributes: dict[str, object] = {
        semconv.GEN_AI_OPERATION_NAME: operation,
        semconv.AGENTMESH_RUN_ID: "run-1",
    }
    if agent is not None:
        attributes[semconv.GEN_AI_AGENT_NAME] = agent
    if source is not None:
        attributes[semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME] = source
        attributes[semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME] = agent
    if checkpoint is not None:
        attributes[semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID] = checkpoint
    attributes.update(extra or {})
    return SpanRecord(
        trace_id=TRACE,
        span_id=f"{next(_ids):016x}",
        parent_span_id=parent,
        name=f"{operation} {agent or ''}",
        kind="internal",
        start_ns=start,
        end_ns=start + 5,
        status_code="error" if error else "ok",
        status_message="503 from gpt-4o" if error else "",
        attributes=attributes,  # pyright: ignore[reportArgumentType]
    )


def _workflow(*, error: bool = False) -> SpanRecord:
    return _span(
        semconv.Operation.INVOKE_WORKFLOW,
        0,
        error=error,
        parent=None,
        extra={
            semconv.AGENTMESH_FRAMEWORK: "langgraph",
            semconv.GEN_AI_WORKFLOW_NAME: "essay",
            semconv.GEN_AI_CONVERSATION_ID: "thread-7",
        },
    )


def _pipeline(*, reviewer_fails: bool) -> list[SpanRecord]:
    return [
        _workflow(error=reviewer_fails),
        _span(semconv.Operation.INVOKE_AGENT, 10, agent="researcher"),
        _span(
            semconv.Operation.INVOKE_AGENT,
            20,
            agent="writer",
            source="researcher",
            checkpoint="ck-writer",
        ),
        _span(
            semconv.Operation.INVOKE_AGENT,
            30,
            agent="reviewer",
            source="writer",
            checkpoint="ck-reviewer",
            error=reviewer_fails,
        ),
    ]


def test_a_failed_run_resumes_from_the_checkpoint_its_failing_step_started_from() -> None:
    plan = resume_plan(_pipeline(reviewer_fails=True), [])
    assert plan is not None
    assert (plan.status, plan.checkpoint_id, plan.resume_from) == (
        "failed",
        "ck-reviewer",
        "reviewer",
    )
    assert (plan.run_id, plan.trace_id, plan.thread_id) == ("run-1", TRACE, "thread-7")
    assert (plan.framework, plan.workflow_name) == ("langgraph", "essay")
    assert "reviewer" in plan.reason
    assert "503" in plan.reason


def test_a_step_that_failed_and_was_retried_is_not_where_the_run_resumes() -> None:
    # the writer's first try failed (a 503) and its retry finished; the reviewer failed after
    spans = _pipeline(reviewer_fails=True)
    first_try = _span(semconv.Operation.INVOKE_AGENT, 15, agent="writer", error=True)
    plan = resume_plan([*spans, first_try], [])
    assert plan is not None
    assert (plan.status, plan.checkpoint_id, plan.resume_from) == (
        "failed",
        "ck-reviewer",
        "reviewer",
    )
    assert plan.reason == "step 'reviewer' failed: 503 from gpt-4o"


def test_a_failed_plan_names_the_tool_its_step_failed_through() -> None:
    spans = _pipeline(reviewer_fails=True)
    reviewer = spans[-1]
    tool = _span(
        semconv.Operation.EXECUTE_TOOL,
        31,
        error=True,
        parent=reviewer.span_id,
        extra={semconv.GEN_AI_TOOL_NAME: "fact_check"},
    )
    plan = resume_plan([*spans, replace(tool, end_ns=33)], [])
    assert plan is not None
    assert plan.reason == "step 'reviewer' failed: 503 from gpt-4o in tool 'fact_check'"


def _interrupted(span: SpanRecord, kind: str) -> SpanRecord:
    """The span as the instrumentation ends an interrupted one: no error, the exception kept."""
    event = SpanEventRecord("exception", span.end_ns, {"exception.type": kind})
    return replace(span, status_code="unset", status_message="", events=(event,))


def test_an_interrupted_run_resumes_from_the_step_the_interruption_stopped() -> None:
    # Ctrl-C while the reviewer ran: the reviewer and the workflow end without error status
    workflow, researcher, writer, reviewer = _pipeline(reviewer_fails=False)
    spans = [
        _interrupted(workflow, "KeyboardInterrupt"),
        researcher,
        writer,
        _interrupted(reviewer, "KeyboardInterrupt"),
    ]
    plan = resume_plan(spans, [])
    assert plan is not None
    assert (plan.status, plan.checkpoint_id, plan.resume_from) == (
        "interrupted",
        "ck-reviewer",
        "reviewer",
    )
    assert plan.reason == "step 'reviewer' was interrupted: KeyboardInterrupt"
    assert resume_refusal(plan.to_json()) is None  # agentmesh resume continues it
    # a task cancelled between steps (only the workflow span says so): the last checkpoint
    spans = [_interrupted(workflow, "asyncio.exceptions.CancelledError"), researcher, writer]
    plan = resume_plan(spans, [])
    assert plan is not None
    assert (plan.status, plan.checkpoint_id) == ("interrupted", "ck-writer")
    assert plan.reason == "the run was interrupted: CancelledError"
    # an exception the app recorded and handled is no interruption
    handled = SpanEventRecord("exception", 1, {"exception.type": "ValueError"})
    plan = resume_plan([replace(workflow, events=(handled,)), researcher, writer], [])
    assert plan is not None
    assert plan.status == "completed"


def test_a_context_loss_at_the_failing_handoff_moves_the_resume_point_back() -> None:
    spans = _pipeline(reviewer_fails=True)
    loss = Detection(
        "d1",
        "context_loss",
        "warning",
        TRACE,
        "run-1",
        "reviewer",
        (spans[3].span_id,),
        "context changed",
        1,
    )
    plan = resume_plan(spans, [loss])
    assert plan is not None
    assert (plan.checkpoint_id, plan.resume_from) == ("ck-writer", "writer")


def test_a_stopped_run_resumes_before_the_steps_its_detection_names() -> None:
    spans = _pipeline(reviewer_fails=False)
    loop = Detection(
        "d2",
        "ping_pong",
        "error",
        TRACE,
        "run-1",
        "reviewer",
        (spans[3].span_id,),
        "writer and reviewer hand back and forth",
        2,
    )
    plan = resume_plan(spans, [loop])
    assert plan is not None
    assert (plan.status, plan.checkpoint_id) == ("stopped", "ck-writer")
    assert plan.reason.startswith("ping_pong")


def test_a_completed_run_names_its_last_checkpoint_and_a_run_without_any_starts_over() -> None:
    done = resume_plan(_pipeline(reviewer_fails=False), [])
    assert done is not None
    assert (done.status, done.checkpoint_id) == ("completed", "ck-reviewer")
    bare = resume_plan(
        [
            _workflow(error=True),
            _span(semconv.Operation.INVOKE_AGENT, 10, agent="solo", error=True),
        ],
        [],
    )
    assert bare is not None
    assert (bare.status, bare.checkpoint_id, bare.thread_id) == ("failed", None, "thread-7")
    assert resume_plan([], []) is None


async def test_the_plan_is_found_by_run_id_prefix_and_served_over_http() -> None:
    store = MemoryStore()
    await store.open()
    spans = _pipeline(reviewer_fails=True)
    await store.write_spans(spans)
    builder = GraphBuilder()
    builder.add(spans)
    graph = builder.get(TRACE)
    assert graph is not None
    await store.write_graph(graph)
    plan = await find_plan(store, "RUN-")
    assert plan.checkpoint_id == "ck-reviewer"
    with pytest.raises(RunNotFoundError, match="no run matches 'nope'"):
        await find_plan(store, "nope")

    app = web.Application()
    app.add_routes(resume_routes(store))
    async with TestClient(TestServer(app)) as client:
        ok = await client.get("/v1/runs/run-1/resume")
        assert ok.status == 200
        body = await ok.json()
        assert body["checkpoint_id"] == "ck-reviewer"
        assert body["thread_id"] == "thread-7"
        missing = await client.get("/v1/runs/zzz/resume")
        assert missing.status == 404
        assert "agentmesh runs" in (await missing.json())["error"]


STORE = semconv.AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL


def _stored_at(span: SpanRecord, url: str) -> SpanRecord:
    return replace(span, attributes={**span.attributes, STORE: url})


def test_the_plan_names_the_store_of_its_checkpoint_from_the_handoff_span() -> None:
    workflow, researcher, writer, reviewer = _pipeline(reviewer_fails=True)
    spans = [
        _stored_at(workflow, "redis://:***@cache:6379/0"),
        researcher,
        _stored_at(writer, "duckdb:///var/lib/app/writer.duckdb"),
        _stored_at(reviewer, "duckdb:///var/lib/app/threads.duckdb"),
    ]
    plan = resume_plan(spans, [])
    assert plan is not None
    assert plan.checkpoint_id == "ck-reviewer"
    assert plan.checkpoint_store == "duckdb:///var/lib/app/threads.duckdb"  # the chosen handoff
    assert plan.to_json()["checkpoint_store"] == plan.checkpoint_store


def test_without_a_store_on_the_handoff_span_the_plan_takes_the_workflow_spans() -> None:
    workflow, *agents = _pipeline(reviewer_fails=True)
    plan = resume_plan([_stored_at(workflow, "memory://"), *agents], [])
    assert plan is not None
    assert (plan.checkpoint_id, plan.checkpoint_store) == ("ck-reviewer", "memory://")
    # a resumed run that failed before a handoff of its own: only its workflow span says
    resumed = _span(
        semconv.Operation.INVOKE_WORKFLOW,
        0,
        error=True,
        parent=None,
        extra={
            semconv.AGENTMESH_RESUME_CHECKPOINT_ID: "ck-reviewer",
            STORE: "postgresql://app:***@db/agentmesh",
        },
    )
    again = resume_plan([resumed, _span(semconv.Operation.INVOKE_AGENT, 10, error=True)], [])
    assert again is not None
    assert (again.checkpoint_id, again.checkpoint_store) == (
        "ck-reviewer",
        "postgresql://app:***@db/agentmesh",
    )


def test_spans_that_name_no_store_give_a_plan_without_one() -> None:
    plan = resume_plan(_pipeline(reviewer_fails=True), [])  # older instrumentation
    assert plan is not None
    assert plan.checkpoint_id == "ck-reviewer"
    assert plan.checkpoint_store is None
    assert plan.to_json()["checkpoint_store"] is None


async def test_the_served_plan_carries_the_store() -> None:
    store = MemoryStore()
    await store.open()
    workflow, researcher, writer, reviewer = _pipeline(reviewer_fails=True)
    spans = [workflow, researcher, writer, _stored_at(reviewer, "redis://:***@cache:6379/0")]
    await store.write_spans(spans)
    builder = GraphBuilder()
    builder.add(spans)
    graph = builder.get(TRACE)
    assert graph is not None
    await store.write_graph(graph)
    app = web.Application()
    app.add_routes(resume_routes(store))
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/v1/runs/run-1/resume")
        assert answer.status == 200
        body = await answer.json()
    assert body["checkpoint_id"] == "ck-reviewer"
    assert body["checkpoint_store"] == "redis://:***@cache:6379/0"
