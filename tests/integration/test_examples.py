"""The examples run offline under ``agentmesh-instrument`` and emit the span trees they promise.

Each example runs in a subprocess against a fake provider this test serves (with the
example's own scripts), exporting over OTLP/gRPC to a receiver the test runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from test_zero_code import RecordingTraceService, _attributes  # pyright: ignore[reportPrivateUsage]

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_TASK_CLASS,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_TOOL_CALL_ID,
)
from agentmesh.instrumentation._markers import MARKER_NAME
from agentmesh.instrumentation.testing import FakeProviderThread

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def receiver() -> Iterator[tuple[RecordingTraceService, int]]:
    service = RecordingTraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, port
    server.stop(grace=None)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_example(name: str, base_url: str, port: int) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    env = {
        **clean,
        "AGENTMESH_ENDPOINT": f"http://127.0.0.1:{port}",
        "AGENTMESH_SHUTDOWN_TIMEOUT_S": "10",
    }
    argv = ["agentmesh-instrument", "python", str(EXAMPLES / f"{name}.py"), "--base-url", base_url]
    uv = shutil.which("uv")
    command = (
        [uv, "run", "--no-sync", "--project", str(ROOT), *argv]
        if uv is not None
        else [str(Path(sys.executable).parent / argv[0]), *argv[1:]]
    )
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False, cwd=ROOT
    )


def _tree(spans: list[ProtoSpan]) -> Counter[tuple[str, str | None]]:
    """The span tree by (name, parent name); start markers are left out (one per step)."""
    names = {span.span_id: span.name for span in spans}
    return Counter(
        (s.name, names.get(s.parent_span_id) if s.parent_span_id else None)
        for s in spans
        if s.name != MARKER_NAME
    )


def _markers(spans: list[ProtoSpan]) -> Counter[str | None]:
    """Start markers by the name of the step they announce."""
    names = {span.span_id: span.name for span in spans}
    return Counter(names.get(s.parent_span_id) for s in spans if s.name == MARKER_NAME)


def test_langgraph_tools_example(receiver: tuple[RecordingTraceService, int]) -> None:
    service, port = receiver
    example = _load("langgraph_tools")
    with FakeProviderThread(example.scripts()) as fp:
        result = _run_example("langgraph_tools", fp.openai_base_url, port)
        requests = fp.requests

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "supervisor (visit 1): Three topics to research."
    assert sorted(lines[1:4]) == [
        "researcher[climate]: Warmer summers ahead.",
        "researcher[housing]: Rents up 3 percent.",
        "researcher[transport]: Metro line 15 opens.",
    ]
    assert lines[4:] == [
        "supervisor (visit 2): Research done, over to the analyst.",
        "analyst: calls get_weather, get_population",
        "analyst: Paris: sunny, about 2.1 million people.",
        "notes: ['climate', 'housing', 'transport']",
        "answer: Paris: sunny, about 2.1 million people.",
    ]

    spans = [span for _, span in service.spans()]
    workflow = "invoke_workflow supervisor_tools"
    assert _tree(spans) == Counter(
        {
            (workflow, None): 1,
            ("invoke_agent supervisor", workflow): 2,
            ("invoke_agent researcher", workflow): 3,
            ("invoke_agent analyst", workflow): 2,
            ("execute_tool tools", workflow): 1,
            ("chat gpt-4o-mini", "invoke_agent supervisor"): 2,
            ("chat gpt-4o-mini", "invoke_agent researcher"): 3,
            ("chat gpt-4o", "invoke_agent analyst"): 2,
            ("execute_tool get_weather", "execute_tool tools"): 1,
            ("execute_tool get_population", "execute_tool tools"): 1,
        }
    )
    # Every step announced itself when it started (the collector's stuck detection).
    assert _markers(spans) == Counter(
        {
            workflow: 1,
            "invoke_agent supervisor": 2,
            "invoke_agent researcher": 3,
            "invoke_agent analyst": 2,
            "execute_tool tools": 1,
            "execute_tool get_weather": 1,
            "execute_tool get_population": 1,
        }
    )
    agents = sorted(
        (s for s in spans if s.name.startswith("invoke_agent ")),
        key=lambda s: (s.start_time_unix_nano, s.name),
    )
    handoffs = [
        (
            a.name.removeprefix("invoke_agent "),
            _attributes(a.attributes).get(GEN_AI_AGENT_HANDOFF_SOURCE_NAME),
            _attributes(a.attributes).get(AGENTMESH_HANDOFF_KIND),
        )
        for a in agents
    ]
    assert handoffs == [
        ("supervisor", None, None),
        *[("researcher", "supervisor", "send")] * 3,
        ("supervisor", "researcher", "edge"),
        ("analyst", "supervisor", "command"),
        ("analyst", None, None),  # back from its own tools: no handoff
    ]
    (root,) = [s for s in spans if s.name == workflow]
    run_id = _attributes(root.attributes)[AGENTMESH_RUN_ID]
    assert _attributes(root.attributes)[GEN_AI_CONVERSATION_ID] == "example-thread"
    assert {_attributes(s.attributes).get(AGENTMESH_RUN_ID) for s in spans} == {run_id}
    assert {s.trace_id for s in spans} == {root.trace_id}
    tool_ids = sorted(
        _attributes(s.attributes)[GEN_AI_TOOL_CALL_ID]
        for s in spans
        if s.name.count(" ") == 1 and s.name.startswith("execute_tool get_")
    )
    assert tool_ids == ["c1", "c2"]
    assert all(f"{AGENTMESH_RUN_ID}={run_id}" in r.headers["baggage"] for r in requests)


def _anthropic_instrumented() -> bool:
    names = {ep.name for ep in entry_points(group="opentelemetry_instrumentor")}
    return "agentmesh_anthropic" in names and importlib.util.find_spec("anthropic") is not None


def test_plain_async_example(receiver: tuple[RecordingTraceService, int]) -> None:
    service, port = receiver
    example = _load("plain_async")
    with FakeProviderThread(example.scripts()) as fp:
        result = _run_example("plain_async", fp.url, port)
        requests = fp.requests

    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    run_id = first.removeprefix("run ")
    critic_reply = (
        "Critique: the benchmark lacks a cold start."
        if example.has_anthropic()
        else "Findings: the cache cuts latency by half."
    )
    assert rest == [
        "lead: Findings: the cache cuts latency by half.",
        "researcher_1: Findings: the cache cuts latency by half.",
        "researcher_2: Findings: the cache cuts latency by half.",
        f"critic: {critic_reply}",
    ]
    assert len(requests) == 4
    assert {r.route for r in requests} == (
        {"/v1/chat/completions", "/v1/messages"}
        if example.has_anthropic()
        else {"/v1/chat/completions"}
    )
    assert all(f"{AGENTMESH_RUN_ID}={run_id}" in r.headers["baggage"] for r in requests)

    spans = [span for _, span in service.spans()]
    workflow = "invoke_workflow plain_async"
    expected = Counter(
        {
            (workflow, None): 1,
            ("invoke_agent lead", workflow): 1,
            ("invoke_agent researcher_1", workflow): 1,
            ("invoke_agent researcher_2", workflow): 1,
            ("invoke_agent critic", workflow): 1,
            ("chat gpt-4o-mini", "invoke_agent lead"): 1,
            ("chat gpt-4o-mini", "invoke_agent researcher_1"): 1,
            ("chat gpt-4o-mini", "invoke_agent researcher_2"): 1,
        }
    )
    tree = _tree(spans)
    if not example.has_anthropic():
        expected["chat gpt-4o-mini", "invoke_agent critic"] = 1
    else:
        # The Anthropic call's span depends on what instruments it: our instrumentor
        # (``chat {model}``) or the SDK's own tracing (``anthropic.messages.create``).
        critic_calls = {k: n for k, n in tree.items() if k[1] == "invoke_agent critic"}
        assert set(critic_calls) <= {
            ("chat claude-3-5-haiku-latest", "invoke_agent critic"),
            ("anthropic.messages.create", "invoke_agent critic"),
        }, critic_calls
        assert all(n == 1 for n in critic_calls.values())
        if _anthropic_instrumented():
            assert ("chat claude-3-5-haiku-latest", "invoke_agent critic") in critic_calls
        expected.update(critic_calls)
    assert tree == expected
    (root,) = [s for s in spans if s.name == workflow]
    assert {s.trace_id for s in spans} == {root.trace_id}
    for span in spans:  # stamped from baggage onto every span, the app's own included
        attrs = _attributes(span.attributes)
        assert attrs[AGENTMESH_RUN_ID] == run_id, span.name
        assert attrs[AGENTMESH_RUN_TASK_CLASS] == "research", span.name


async def test_the_plain_openai_example_is_one_run_with_two_agents_in_the_collector() -> None:
    # without workflow() and agent() each of its four LLM calls was a run of its own
    from agentmesh.collector import Collector, CollectorSettings, MemoryStore

    settings = CollectorSettings.load(grpc_port=0, http_port=0, decode_workers=0)
    store = MemoryStore()
    async with Collector(settings, store) as collector:
        with FakeProviderThread() as fp:
            result = await asyncio.to_thread(
                _run_example, "plain_openai", fp.openai_base_url, collector.grpc_port
            )
        assert result.returncode == 0, result.stderr
        await collector.drain()
        (run,) = await store.runs()
        graph = await store.graph(run.trace_id)
    assert graph is not None
    assert (run.workflow_name, run.llm_calls, run.complete) == ("compare-databases", 4, True)
    assert {a.name: a.llm_calls for a in graph.agents} == {"planner": 1, "solver": 3}
    assert [(h.source, h.target) for h in graph.handoffs] == [("planner", "solver")]
