"""Trace context and baggage across two processes, both run with ``agentmesh-instrument``.

Process A runs a LangGraph graph whose ``planner`` agent delegates to an "agent service" (process
B) through the plain OpenAI SDK. Process B is an OpenAI-compatible HTTP server: it continues
A's context from the request headers (``continue_from``), runs its own agent step, which calls
the fake LLM provider, and answers with that completion. Both export over OTLP/gRPC to a
receiver the test runs. B's spans must share A's trace id, hang under A's call, and carry A's
run id and task class.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from test_zero_code import RecordingTraceService, _attributes  # pyright: ignore[reportPrivateUsage]

from agentmesh.core.semconv import AGENTMESH_RUN_ID, AGENTMESH_RUN_TASK_CLASS
from agentmesh.instrumentation._markers import MARKER_NAME
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gpt-4o-mini"
REPLY = "B researched it."

SERVICE_B = textwrap.dedent(
    """
    import http.server
    import json

    import openai
    from opentelemetry import trace

    from agentmesh.core.semconv import GEN_AI_AGENT_NAME, GEN_AI_OPERATION_NAME
    from agentmesh.instrumentation import continue_from

    upstream = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL: the fake provider
    tracer = trace.get_tracer("service_b")


    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with continue_from(self.headers):
                attributes = {
                    GEN_AI_OPERATION_NAME: "invoke_agent",
                    GEN_AI_AGENT_NAME: "researcher",
                }
                with tracer.start_as_current_span("invoke_agent researcher", attributes=attributes):
                    reply = upstream.chat.completions.create(
                        model="MODEL", messages=request["messages"]
                    )
            body = reply.model_dump_json().encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass


    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.handle_request()  # one delegation, then exit (and flush spans)
    server.server_close()
    """
).replace("MODEL", MODEL)

APP_A = textwrap.dedent(
    """
    import os
    from typing import TypedDict

    import openai
    from langgraph.graph import START, StateGraph

    service_b = openai.OpenAI(base_url=os.environ["SERVICE_B_URL"], api_key="b", max_retries=0)


    class State(TypedDict):
        answer: str


    def planner(state: State) -> State:
        reply = service_b.chat.completions.create(
            model="researcher", messages=[{"role": "user", "content": "research this"}]
        )
        return {"answer": reply.choices[0].message.content}


    graph = StateGraph(State)
    graph.add_node("planner", planner)
    graph.add_edge(START, "planner")
    app = graph.compile(name="delegator")
    config = {"metadata": {"agentmesh_task_class": "research"}}
    print("A got:", app.invoke({"answer": ""}, config)["answer"])
    """
)


@pytest.fixture
def receiver() -> Iterator[tuple[RecordingTraceService, int]]:
    service = RecordingTraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, port
    server.stop(grace=None)


def _launcher(*args: str) -> list[str]:
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "run", "--no-sync", "--project", str(ROOT), "agentmesh-instrument", *args]
    return [str(Path(sys.executable).parent / "agentmesh-instrument"), *args]


def _env(port: int, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    return {
        **clean,
        "AGENTMESH_ENDPOINT": f"http://127.0.0.1:{port}",
        "AGENTMESH_SHUTDOWN_TIMEOUT_S": "10",
        **extra,
    }


def test_agent_service_in_another_process_joins_the_trace_and_the_run(
    receiver: tuple[RecordingTraceService, int], tmp_path: Path
) -> None:
    service, port = receiver
    (tmp_path / "service_b.py").write_text(SERVICE_B)
    (tmp_path / "app_a.py").write_text(APP_A)
    with FakeProviderThread({MODEL: ModelScript(content=REPLY)}) as fp:
        b = subprocess.Popen(
            _launcher("python", "service_b.py"),
            cwd=tmp_path,
            env=_env(port, OPENAI_BASE_URL=fp.openai_base_url, OPENAI_API_KEY="fake"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert b.stdout is not None
            b_port = int(b.stdout.readline())
            a = subprocess.run(
                _launcher("python", "app_a.py"),
                cwd=tmp_path,
                env=_env(port, SERVICE_B_URL=f"http://127.0.0.1:{b_port}/v1"),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            _, b_err = b.communicate(timeout=60)
        finally:
            if b.poll() is None:
                b.kill()
                b.wait()
        upstream_requests = fp.requests

    assert a.returncode == 0, a.stderr
    assert a.stdout == f"A got: {REPLY}\n"
    assert b.returncode == 0, b_err
    assert len(upstream_requests) == 1

    received = service.spans()
    spans = {
        (res["service.name"], span.name): span
        for res, span in received
        if span.name != MARKER_NAME  # start markers: checked below
    }
    steps = {s.span_id for s in spans.values() if not s.name.startswith("chat ")}
    markers = [span for _, span in received if span.name == MARKER_NAME]
    assert markers  # each step announced its start...
    assert {m.parent_span_id for m in markers} <= steps  # ...as a child of that step
    assert sorted(spans) == [
        ("app_a", "chat researcher"),
        ("app_a", "invoke_agent planner"),
        ("app_a", "invoke_workflow delegator"),
        ("service_b", f"chat {MODEL}"),
        ("service_b", "invoke_agent researcher"),
    ]
    workflow = spans["app_a", "invoke_workflow delegator"]
    a_call = spans["app_a", "chat researcher"]
    b_agent = spans["service_b", "invoke_agent researcher"]
    b_call = spans["service_b", f"chat {MODEL}"]
    run_id = _attributes(workflow.attributes)[AGENTMESH_RUN_ID]
    assert isinstance(run_id, str)
    assert run_id

    # one trace: B's agent hangs under A's call, B's LLM call under B's agent
    for span in (a_call, b_agent, b_call):
        assert span.trace_id == workflow.trace_id
    assert b_agent.parent_span_id == a_call.span_id
    assert b_call.parent_span_id == b_agent.span_id
    assert b_call.kind == ProtoSpan.SpanKind.SPAN_KIND_CLIENT
    # A's run id and task class crossed with the baggage, onto every span of B
    for span in (a_call, b_agent, b_call):
        attrs = _attributes(span.attributes)
        assert attrs[AGENTMESH_RUN_ID] == run_id
        assert attrs[AGENTMESH_RUN_TASK_CLASS] == "research"
    baggage = upstream_requests[0].headers["baggage"]
    assert f"{AGENTMESH_RUN_ID}={run_id}" in baggage  # and B passed it on upstream
