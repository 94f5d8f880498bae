"""An interrupted operation is no failed one: Ctrl-C, ``sys.exit``, a cancelled task.

Only an ``Exception`` fails a span (status ``ERROR``, ``error.type``). A ``BaseException`` that
is not one (``KeyboardInterrupt``, ``SystemExit``, ``asyncio.CancelledError``) ends the span
with status ``UNSET``, the exception recorded as an event, as OpenTelemetry's own ``use_span``
does: the collector must not list a run the user stopped, or a stream the caller stopped
reading, as ``failed``, nor name a branch LangGraph cancelled (because its sibling failed) as
the step the run failed in.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Iterator
from typing import Annotated, TypedDict

import openai
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.semconv import ERROR_TYPE, METRIC_CLIENT_OPERATION_DURATION
from agentmesh.instrumentation import agent, workflow
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

instrumented = pytest.mark.usefixtures("langgraph_instrumented")


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def _interrupted(span: ReadableSpan, exc_type: str) -> None:
    """The span ended UNSET, without error.type, the exception kept as an event."""
    assert span.status.status_code is StatusCode.UNSET, span.name
    assert ERROR_TYPE not in (span.attributes or {}), span.name
    events = [e for e in span.events if e.name == "exception"]
    types = [str((e.attributes or {}).get("exception.type")) for e in events]
    assert [t.rpartition(".")[2] for t in types] == [exc_type]


@instrumented
@pytest.mark.parametrize(
    ("raised", "exc_type"),
    [(KeyboardInterrupt(), "KeyboardInterrupt"), (SystemExit(0), "SystemExit")],
)
def test_a_plain_run_stopped_by_ctrl_c_or_exit_is_not_failed(
    exporter: InMemorySpanExporter,
    tracer_provider: TracerProvider,
    raised: BaseException,
    exc_type: str,
) -> None:
    with (
        pytest.raises(type(raised)),
        workflow("stopped", tracer_provider=tracer_provider),
        agent("planner", tracer_provider=tracer_provider),
    ):
        raise raised
    spans = _by_name(exporter)
    _interrupted(spans["invoke_workflow stopped"], exc_type)
    _interrupted(spans["invoke_agent planner"], exc_type)


@instrumented
def test_a_plain_run_that_raises_still_fails(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with (
        pytest.raises(ValueError, match="broke"),
        workflow("broken", tracer_provider=tracer_provider),
        agent("planner", tracer_provider=tracer_provider),
    ):
        raise ValueError("broke")
    for span in _by_name(exporter).values():
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})[ERROR_TYPE] == "ValueError"


@instrumented
async def test_a_cancelled_plain_run_is_not_failed(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    @agent("planner", tracer_provider=tracer_provider)
    async def plan() -> None:
        await asyncio.sleep(10)

    @workflow("cancelled", tracer_provider=tracer_provider)
    async def run() -> None:
        await plan()

    task = asyncio.create_task(run())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    spans = _by_name(exporter)
    _interrupted(spans["invoke_workflow cancelled"], "CancelledError")
    _interrupted(spans["invoke_agent planner"], "CancelledError")


class _Branches(TypedDict):
    out: Annotated[list[str], operator.add]


@instrumented
async def test_a_branch_cancelled_because_its_sibling_failed_is_not_a_failed_step(
    exporter: InMemorySpanExporter,
) -> None:
    async def fast(state: _Branches) -> _Branches:
        await asyncio.sleep(0.01)
        raise ValueError("fast broke")

    async def slow(state: _Branches) -> _Branches:
        await asyncio.sleep(10)
        return {"out": ["slow"]}

    graph = StateGraph(_Branches)
    graph.add_node("fast", fast)
    graph.add_node("slow", slow)
    graph.add_edge(START, "fast")
    graph.add_edge(START, "slow")
    graph.add_edge("fast", END)
    graph.add_edge("slow", END)
    with pytest.raises(ValueError, match="fast broke"):
        await graph.compile(name="branches").ainvoke({"out": []})
    spans = _by_name(exporter)
    # the collector names the failed step that ended last: the cancelled branch ends after
    assert (spans["invoke_agent fast"].attributes or {})[ERROR_TYPE] == "ValueError"
    assert spans["invoke_agent fast"].status.status_code is StatusCode.ERROR
    _interrupted(spans["invoke_agent slow"], "CancelledError")
    assert spans["invoke_workflow branches"].status.status_code is StatusCode.ERROR


class _Text(TypedDict):
    text: str


def _two_steps() -> CompiledStateGraph[_Text]:
    graph = StateGraph(_Text)
    graph.add_node("first", lambda state: {"text": state["text"] + "a"})
    graph.add_node("second", lambda state: {"text": state["text"] + "b"})
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_edge("second", END)
    return graph.compile(name="two_steps")


@instrumented
def test_an_astream_left_unclosed_at_loop_shutdown_is_not_failed(
    exporter: InMemorySpanExporter,
) -> None:
    """``async for … : break`` then ``asyncio.run`` ends: the generator's close is cancelled."""
    app = _two_steps()

    async def read_one() -> None:
        async for _ in app.astream({"text": ""}):
            break

    asyncio.run(read_one())
    workflow_span = _by_name(exporter)["invoke_workflow two_steps"]
    assert workflow_span.status.status_code is StatusCode.UNSET
    assert ERROR_TYPE not in (workflow_span.attributes or {})


@pytest.fixture
def slow_provider() -> Iterator[FakeProviderThread]:
    with FakeProviderThread({"slow": ModelScript(content="late", latency=10)}) as provider:
        yield provider


@instrumented
async def test_a_cancelled_model_call_is_not_failed(
    exporter: InMemorySpanExporter, slow_provider: FakeProviderThread
) -> None:
    client = openai.AsyncOpenAI(base_url=slow_provider.openai_base_url, api_key="k", max_retries=0)
    task = asyncio.create_task(
        client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])
    )
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.close()
    _interrupted(_by_name(exporter)["chat slow"], "CancelledError")


@pytest.fixture
def reader(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[InMemoryMetricReader]:
    metric_reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metric_reader])
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield metric_reader
    instrumentor.uninstrument()
    meter_provider.shutdown()


async def test_a_cancelled_model_call_counts_no_error(
    reader: InMemoryMetricReader, slow_provider: FakeProviderThread
) -> None:
    client = openai.AsyncOpenAI(base_url=slow_provider.openai_base_url, api_key="k", max_retries=0)
    task = asyncio.create_task(
        client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])
    )
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.close()
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == METRIC_CLIENT_OPERATION_DURATION
        for point in metric.data.data_points
        if isinstance(point, HistogramDataPoint)
    ]
    assert len(points) == 1
    assert ERROR_TYPE not in (points[0].attributes or {})
