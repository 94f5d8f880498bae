"""The received-context digest of CrewAI ``task_context`` handoffs, next to the sent one.

A real two-task sequential crew (Researcher → Writer) against the fake provider. The sent digest
is of what the research task produced (its output, as CrewAI joins outputs into a context), the
received one of the context text the Writer was given. Normally equal; a ``pre_step`` hook that
cuts the context on its way to the Writer makes them differ.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from crewai import LLM, Agent, Crew, Task
from crewai.hooks.contexts import StepContext
from crewai.hooks.dispatch import InterceptionPoint, register_scoped, scoped_hooks
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_HANDOFF_RECEIVED_DIGEST,
    EVENT_HANDOFF,
)
from agentmesh.instrumentation.handoff import context_digest
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

pytestmark = pytest.mark.usefixtures("crewai_instrumented")

NOTES = "Otters hold hands. They sleep afloat."
SCRIPTS = {
    "researcher-model": ModelScript(content=f"Thought: I know this.\nFinal Answer: {NOTES}"),
    "writer-model": ModelScript(content="Thought: Writing.\nFinal Answer: An article."),
}


def _agent(fp: FakeProviderThread, role: str, model: str) -> Agent:
    llm = LLM(model=f"openai/{model}", base_url=fp.openai_base_url, api_key="x", max_retries=0)
    return Agent(role=role, goal=f"Be a good {role}", backstory="Test agent.", llm=llm)


def _writer_span(
    hook: Callable[[StepContext], None] | None, exporter: InMemorySpanExporter
) -> ReadableSpan:
    with FakeProviderThread(SCRIPTS) as fp, scoped_hooks():
        if hook is not None:
            register_scoped(InterceptionPoint.PRE_STEP, hook)
        researcher = _agent(fp, "Researcher", "researcher-model")
        writer = _agent(fp, "Writer", "writer-model")
        research = Task(description="Research otters.", expected_output="Notes.", agent=researcher)
        write = Task(description="Write about otters.", expected_output="An article.", agent=writer)
        Crew(name="otter_crew", agents=[researcher, writer], tasks=[research, write]).kickoff()
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent Writer"]
    return span


def test_received_equals_sent_in_a_normal_run(exporter: InMemorySpanExporter) -> None:
    attrs = dict(_writer_span(None, exporter).attributes or {})

    assert attrs[AGENTMESH_HANDOFF_KIND] == "task_context"
    assert attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest(NOTES).digest
    assert attrs[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST]


def test_a_hook_that_cuts_the_context_gives_two_digests(exporter: InMemorySpanExporter) -> None:
    def cut(step: StepContext) -> None:
        if step.agent_role == "Writer" and isinstance(step.payload, str):
            step.payload = step.payload.split(".")[0] + "."  # the first sentence only

    span = _writer_span(cut, exporter)

    attrs = dict(span.attributes or {})
    assert attrs[AGENTMESH_HANDOFF_CONTEXT_DIGEST] == context_digest(NOTES).digest  # produced
    assert attrs[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == context_digest("Otters hold hands.").digest
    (event,) = [e for e in span.events if e.name == EVENT_HANDOFF]
    assert (event.attributes or {})[AGENTMESH_HANDOFF_RECEIVED_DIGEST] == (
        attrs[AGENTMESH_HANDOFF_RECEIVED_DIGEST]
    )
