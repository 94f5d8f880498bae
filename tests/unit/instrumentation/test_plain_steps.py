"""``workflow`` and ``agent``: plain code declares its run and its agents' steps.

The spans go through the instrumentation tests' own provider; the real OpenAI SDK talks to the
fake provider, so the LLM call spans are real children of the steps.
"""

from __future__ import annotations

import asyncio

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_RUN_ID,
    ERROR_TYPE,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
)
from agentmesh.instrumentation import agent, current_run_id, run_scope, workflow
from agentmesh.instrumentation.testing import FakeProviderThread

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def _parents(spans: tuple[ReadableSpan, ...]) -> dict[str, str | None]:
    names = {span.context.span_id: span.name for span in spans if span.context is not None}
    return {s.name: names.get(s.parent.span_id) if s.parent else None for s in spans}


def test_one_run_with_its_agents_and_their_calls(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    tracer_provider: TracerProvider,
) -> None:
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)
    with workflow("compare", run_id="run-7", tracer_provider=tracer_provider) as run_id:
        assert (run_id, current_run_id()) == ("run-7", "run-7")
        with agent("planner", tracer_provider=tracer_provider):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    spans = exporter.get_finished_spans()
    assert _parents(spans) == {
        "chat gpt-4o-mini": "invoke_agent planner",
        "invoke_agent planner": "invoke_workflow compare",
        "invoke_workflow compare": None,
    }
    assert len({span.context.trace_id for span in spans if span.context is not None}) == 1
    by_name = {span.name: dict(span.attributes or {}) for span in spans}
    assert by_name["invoke_workflow compare"] == {
        GEN_AI_OPERATION_NAME: "invoke_workflow",
        GEN_AI_WORKFLOW_NAME: "compare",
        AGENTMESH_FRAMEWORK: "python",
        AGENTMESH_RUN_ID: "run-7",
    }
    assert by_name["invoke_agent planner"] == {
        GEN_AI_OPERATION_NAME: "invoke_agent",
        GEN_AI_AGENT_NAME: "planner",
    }
    assert current_run_id() is None  # the run's baggage left with the block


def test_decorated_functions_and_coroutines_are_steps(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    @agent("solver", tracer_provider=tracer_provider)
    def solve(x: int) -> int:
        return x * 2

    @agent("critic", tracer_provider=tracer_provider)
    async def critique(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    @workflow("pipeline", tracer_provider=tracer_provider)
    async def pipeline() -> list[int]:
        return await asyncio.gather(critique(solve(1)), critique(solve(2)))

    with run_scope("run-outer"):  # inside a run, a workflow joins it
        assert asyncio.run(pipeline()) == [3, 5]
    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == [
        "invoke_agent critic",
        "invoke_agent critic",
        "invoke_agent solver",
        "invoke_agent solver",
        "invoke_workflow pipeline",
    ]
    (root,) = [span for span in spans if span.name == "invoke_workflow pipeline"]
    assert (root.attributes or {})[AGENTMESH_RUN_ID] == "run-outer"
    assert all(span.parent is not None for span in spans if span is not root)


def test_the_apps_exception_passes_through_and_marks_the_step(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with (
        pytest.raises(KeyError, match="missing") as raised,
        workflow("w", tracer_provider=tracer_provider),
        agent("a", tracer_provider=tracer_provider),
    ):
        raise KeyError("missing")
    assert raised.type is KeyError  # untouched
    by_name = {span.name: span for span in exporter.get_finished_spans()}
    for name in ("invoke_agent a", "invoke_workflow w"):
        assert by_name[name].status.status_code is StatusCode.ERROR
        assert (by_name[name].attributes or {})[ERROR_TYPE] == "KeyError"
