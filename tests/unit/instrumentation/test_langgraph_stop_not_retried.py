"""A stop is final: LangGraph's default retry policy does not run a stopped node again.

A real LangGraph graph whose node has ``retry_policy=RetryPolicy()`` (LangGraph's default
``retry_on``) calls the real OpenAI SDK against the fake provider; a real control server (the
collector's ``/v1/control`` semantics) stops the run while the node runs, so the node's next
model call raises :class:`~agentmesh.core.errors.RunStoppedError` from our provider hook.
LangGraph leaves ``RuntimeError`` (and ``ValueError``, ``TypeError``…) alone and retries any
other exception, with backoff: a stop that was a plain ``Exception`` ran the stopped node's body
three times before it got out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypedDict

import openai
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentmesh.core.errors import RunStoppedError
from agentmesh.core.semconv import ERROR_TYPE
from agentmesh.instrumentation import control, current_run_id
from agentmesh.instrumentation.control import ControlClient
from agentmesh.instrumentation.control.testing import ControlServerThread
from agentmesh.instrumentation.testing import FakeProviderThread

pytestmark = pytest.mark.usefixtures("langgraph_instrumented")

MODEL = "gpt-4o-mini"
STOP = {
    "action": "stop",
    "detection_id": "det-pp",
    "type": "ping_pong",
    "explanation": "supervisor → researcher → supervisor → researcher",
    "resume_checkpoint_id": None,
    "at": 1_700_000_000.0,
}


class State(TypedDict):
    turns: int


@pytest.fixture
def collector() -> Iterator[ControlServerThread]:
    with ControlServerThread() as server:
        yield server


@pytest.fixture
def client(collector: ControlServerThread) -> Iterator[ControlClient]:
    installed = control.configure_control(url=collector.base_url)
    assert installed is not None
    yield installed
    control.shutdown_control()


def _stop_current_run(collector: ControlServerThread, client: ControlClient) -> None:
    """The collector stops the run the caller belongs to; wait until the app knows."""
    run_id = current_run_id()
    assert run_id is not None
    version = collector.publish(runs={run_id: STOP})  # pyright: ignore[reportArgumentType]
    assert client.wait_for_version(version, 10.0)


def _graph(node: object, policy: RetryPolicy | None = None) -> StateGraph[State]:
    """One node; its retry policy LangGraph's default unless given (``None``: the graph's)."""
    graph = StateGraph(State)
    graph.add_node("researcher", node, retry_policy=policy)  # pyright: ignore[reportArgumentType, reportCallIssue]
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", END)
    return graph


def _stopping_node(
    fake_provider: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
    bodies: list[int],
) -> Callable[[State], State]:
    """A node whose first run has the collector stop the run, then calls the model."""
    sdk = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)

    def researcher(state: State) -> State:
        bodies.append(state["turns"])
        if len(bodies) == 1:
            _stop_current_run(collector, client)
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}])
        return {"turns": state["turns"] + 1}

    return researcher


def _stopping_async_node(
    fake_provider: FakeProviderThread,
    collector: ControlServerThread,
    client: ControlClient,
    bodies: list[int],
) -> Callable[[State], Awaitable[State]]:
    """The same node, async."""
    sdk = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)

    async def researcher(state: State) -> State:
        bodies.append(state["turns"])
        if len(bodies) == 1:
            await asyncio.to_thread(_stop_current_run, collector, client)
        await sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}])
        return {"turns": state["turns"] + 1}

    return researcher


def _assert_stopped_once(
    raised: pytest.ExceptionInfo[RunStoppedError],
    bodies: list[int],
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
) -> None:
    assert raised.value.detection_id == "det-pp"
    assert len(bodies) == 1  # the stopped node ran once: no retry, no backoff
    assert fake_provider.requests == []  # the stopped call never reached the provider
    chats = [s for s in exporter.get_finished_spans() if s.name == f"chat {MODEL}"]
    assert [(s.attributes or {}).get(ERROR_TYPE) for s in chats] == ["RunStoppedError"]
    (node,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent researcher"]
    assert node.status.status_code is StatusCode.ERROR
    assert (node.attributes or {})[ERROR_TYPE] == "RunStoppedError"


def test_a_stopped_node_is_not_retried_by_the_default_policy(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    bodies: list[int] = []
    researcher = _stopping_node(fake_provider, collector, client, bodies)

    with pytest.raises(RunStoppedError) as raised:
        _graph(researcher, RetryPolicy()).compile(name="stopped").invoke({"turns": 0})
    _assert_stopped_once(raised, bodies, fake_provider, exporter)


def test_a_stopped_async_node_is_not_retried_by_the_default_policy(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    bodies: list[int] = []
    researcher = _stopping_async_node(fake_provider, collector, client, bodies)

    app = _graph(researcher, RetryPolicy()).compile(name="stopped_async")
    with pytest.raises(RunStoppedError) as raised:
        asyncio.run(app.ainvoke({"turns": 0}))
    _assert_stopped_once(raised, bodies, fake_provider, exporter)


def test_langgraphs_default_retry_on_leaves_a_stop_alone() -> None:
    policy = RetryPolicy()
    stop = RunStoppedError("run-1", "runaway", "over its norm", "det-1")
    assert callable(policy.retry_on)
    assert policy.retry_on(stop) is False  # pyright: ignore[reportCallIssue]
    assert policy.retry_on(ConnectionError("flaky")) is True  # transient errors still are


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(retry_on=Exception, initial_interval=0.01, jitter=False),
        RetryPolicy(retry_on=(RuntimeError, OSError), initial_interval=0.01, jitter=False),
        RetryPolicy(retry_on=lambda exc: True, initial_interval=0.01, jitter=False),
    ],
    ids=["class", "sequence", "callable"],
)
def test_a_stopped_node_is_not_retried_by_a_policy_that_retries_everything(
    policy: RetryPolicy,
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    bodies: list[int] = []
    researcher = _stopping_node(fake_provider, collector, client, bodies)

    graph = _graph(researcher, policy)
    with pytest.raises(RunStoppedError) as raised:
        graph.compile(name="stopped_custom").invoke({"turns": 0})
    _assert_stopped_once(raised, bodies, fake_provider, exporter)


async def test_a_stopped_async_node_is_not_retried_by_the_graphs_own_policy(
    fake_provider: FakeProviderThread,
    exporter: InMemorySpanExporter,
    collector: ControlServerThread,
    client: ControlClient,
) -> None:
    bodies: list[int] = []
    researcher = _stopping_async_node(fake_provider, collector, client, bodies)

    graph = _graph(researcher)
    everything = RetryPolicy(retry_on=Exception, initial_interval=0.01, jitter=False)
    app = graph.compile(name="stopped_graph_policy")
    app.retry_policy = [everything]  # the graph's default for nodes without their own
    with pytest.raises(RunStoppedError) as raised:
        await app.ainvoke({"turns": 0})
    _assert_stopped_once(raised, bodies, fake_provider, exporter)


def test_other_failures_are_still_retried_by_the_nodes_policy(
    fake_provider: FakeProviderThread, exporter: InMemorySpanExporter
) -> None:
    tries: list[int] = []

    def flaky(state: State) -> State:
        tries.append(state["turns"])
        if len(tries) < 3:
            raise ValueError("not yet")
        return {"turns": state["turns"] + 1}

    policy = RetryPolicy(retry_on=ValueError, initial_interval=0.01, jitter=False)
    graph = _graph(flaky, policy)
    assert graph.compile(name="flaky").invoke({"turns": 0}) == {"turns": 1}
    assert len(tries) == 3
    (node,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent researcher"]
    assert node.status.status_code is not StatusCode.ERROR
