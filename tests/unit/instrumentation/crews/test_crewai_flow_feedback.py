"""A real CrewAI flow paused for human feedback and resumed later: each half is a traced run.

``ApprovalFlow``: ``draft`` (start, ``@human_feedback`` with a provider that pauses the flow,
as a Slack or webhook provider does) → ``publish`` (listening to ``draft``). The kickoff returns
``HumanFeedbackPending``; ``ApprovalFlow.from_pending(flow_id).resume(...)`` (CrewAI's own
persistence, SQLite under ``CREWAI_STORAGE_DIR``) runs ``publish`` with the feedback. Without
the resume wrapper, ``publish`` produced no span at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from crewai.flow import Flow, human_feedback, listen, start
from crewai.flow.async_feedback import (
    HumanFeedbackPending,
    HumanFeedbackProvider,
    PendingFeedbackContext,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_RESUME_FROM_RUN_ID,
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_PAUSED,
    AGENTMESH_RUN_RESUMED,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_CONVERSATION_ID,
)
from agentmesh.instrumentation.crewai import CrewAIInstrumentor


class _Pause(HumanFeedbackProvider):
    """Asks elsewhere for the feedback, so the flow pauses."""

    def request_feedback(self, context: PendingFeedbackContext, flow: Flow[object]) -> str:
        raise HumanFeedbackPending(context=context, callback_info={"ticket": "T-1"})


class ApprovalFlow(Flow[dict[str, object]]):
    @start()
    @human_feedback(message="Publish this draft?", provider=_Pause())
    def draft(self) -> str:
        return "Otters hold hands."

    @listen(draft)
    def publish(self, feedback: object) -> str:
        return f"published after: {getattr(feedback, 'feedback', feedback)}"


def _workflows(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return sorted(
        (s for s in spans if s.name == "invoke_workflow ApprovalFlow"),
        key=lambda s: s.start_time or 0,
    )


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


@pytest.mark.usefixtures("crewai_instrumented")
def test_a_flow_resumed_after_human_feedback_is_a_run_that_names_the_paused_one(
    exporter: InMemorySpanExporter,
) -> None:
    paused = ApprovalFlow().kickoff()
    assert isinstance(paused, HumanFeedbackPending)
    state_id = paused.context.flow_id

    result = ApprovalFlow.from_pending(state_id).resume("ship it")
    assert result == "published after: ship it"

    spans = exporter.get_finished_spans()
    first, second = _workflows(spans)
    assert first.status.status_code != StatusCode.ERROR  # a pause is no failure
    assert _attrs(first)[AGENTMESH_RUN_PAUSED] is True
    assert AGENTMESH_RUN_PAUSED not in _attrs(second)  # it ran to the end
    assert _attrs(first)[GEN_AI_CONVERSATION_ID] == state_id
    assert _attrs(second)[GEN_AI_CONVERSATION_ID] == state_id
    assert _attrs(second)[AGENTMESH_RESUME_FROM_RUN_ID] == _attrs(first)[AGENTMESH_RUN_ID]
    assert (_attrs(first).get(AGENTMESH_RUN_RESUMED), _attrs(second)[AGENTMESH_RUN_RESUMED]) == (
        None,
        True,
    )
    assert _attrs(second)[AGENTMESH_RUN_ID] != _attrs(first)[AGENTMESH_RUN_ID]
    assert first.context is not None
    assert second.context is not None
    assert first.context.trace_id != second.context.trace_id
    publish = next(s for s in spans if s.name == "invoke_node publish")
    assert publish.context is not None
    assert publish.parent is not None
    assert publish.context.trace_id == second.context.trace_id
    assert publish.parent.span_id == second.context.span_id
    assert _attrs(publish)[AGENTMESH_RUN_ID] == _attrs(second)[AGENTMESH_RUN_ID]
    assert _attrs(publish)[GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "draft"


def test_a_flow_paused_elsewhere_is_still_traced_when_resumed(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    paused = ApprovalFlow().kickoff()  # not instrumented: as in another process
    assert isinstance(paused, HumanFeedbackPending)
    assert exporter.get_finished_spans() == ()
    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        ApprovalFlow.from_pending(paused.context.flow_id).resume("ok")
    finally:
        instrumentor.uninstrument()
    [resumed] = _workflows(exporter.get_finished_spans())
    assert _attrs(resumed)[GEN_AI_CONVERSATION_ID] == paused.context.flow_id
    assert AGENTMESH_RESUME_FROM_RUN_ID not in _attrs(resumed)  # that run was not seen here
    assert _attrs(resumed)[AGENTMESH_RUN_RESUMED] is True  # the collector links it by the state
    assert [s.name for s in exporter.get_finished_spans()].count("invoke_node publish") == 1

    exporter.clear()
    again = ApprovalFlow().kickoff()
    assert isinstance(again, HumanFeedbackPending)
    ApprovalFlow.from_pending(again.context.flow_id).resume("ok")
    assert exporter.get_finished_spans() == ()  # uninstrumented: resume is unwrapped too
