"""Zero-code instrumentation end to end: ``agentmesh-instrument python app.py``.

An unmodified app (plain ``openai`` SDK, configured only through ``OPENAI_BASE_URL``) talks to
a fake provider the test runs; spans go over real OTLP/gRPC to a tiny receiver the test runs
in-process. The fail-open test points the app at a closed port instead and checks that it runs
exactly as it does without instrumentation, and about as fast.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gpt-4o-mini"
REPLY = "Hello from the fake."

APP = textwrap.dedent(
    f"""
    import openai

    client = openai.OpenAI(max_retries=0)
    reply = client.chat.completions.create(
        model="{MODEL}", messages=[{{"role": "user", "content": "hi"}}], temperature=0.1
    )
    print("plain:", reply.choices[0].message.content)
    stream = client.chat.completions.create(
        model="{MODEL}",
        messages=[{{"role": "user", "content": "stream"}}],
        stream=True,
        stream_options={{"include_usage": True}},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    print("streamed:", text)
    """
)
EXPECTED_OUTPUT = f"plain: {REPLY}\nstreamed: {REPLY}\n"


class RecordingTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every request."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802 - the gRPC method name
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[dict[str, object], ProtoSpan]]:
        """Every received span, with its resource attributes."""
        found: list[tuple[dict[str, object], ProtoSpan]] = []
        with self._lock:
            for request in self.requests:
                for resource_spans in request.resource_spans:
                    resource = _attributes(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        found.extend((resource, span) for span in scope_spans.spans)
        return found


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(items: object) -> dict[str, object]:
    return {kv.key: _value(kv.value) for kv in items}  # type: ignore[attr-defined]


@pytest.fixture
def receiver() -> Iterator[tuple[RecordingTraceService, int]]:
    service = RecordingTraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, port
    server.stop(grace=None)


@pytest.fixture
def provider() -> Iterator[FakeProviderThread]:
    with FakeProviderThread({MODEL: ModelScript(content=REPLY)}) as fp:
        yield fp


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _command(*args: str) -> list[str]:
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "run", "--no-sync", "--project", str(ROOT), *args]
    bin_dir = Path(sys.executable).parent  # no uv: the workspace's virtualenv scripts
    return [str(bin_dir / args[0]) if (bin_dir / args[0]).exists() else args[0], *args[1:]]


def _run(
    app: Path, provider: FakeProviderThread, *, instrumented: bool, **env: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    full_env = {
        **clean,
        "OPENAI_BASE_URL": provider.openai_base_url,
        "OPENAI_API_KEY": "test",
        **env,
    }
    argv = ["python", str(app)]
    command = _command("agentmesh-instrument", *argv) if instrumented else _command(*argv)
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=app.parent,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, time.monotonic() - started


def test_chat_spans_arrive_at_the_collector(
    receiver: tuple[RecordingTraceService, int], provider: FakeProviderThread, app: Path
) -> None:
    service, port = receiver
    result, _ = _run(
        app,
        provider,
        instrumented=True,
        AGENTMESH_ENDPOINT=f"http://127.0.0.1:{port}",
        AGENTMESH_SHUTDOWN_TIMEOUT_S="10",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_OUTPUT
    spans = service.spans()
    assert [span.name for _, span in spans] == [f"chat {MODEL}", f"chat {MODEL}"]
    resource, plain = spans[0]
    _, streamed = spans[1]
    assert resource["service.name"] == "app"
    assert plain.kind == ProtoSpan.SpanKind.SPAN_KIND_CLIENT
    attrs = _attributes(plain.attributes)
    assert attrs[GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[GEN_AI_REQUEST_STREAM] is False
    assert attrs[SERVER_ADDRESS] == provider.host
    assert attrs[SERVER_PORT] == provider.port
    assert attrs[GEN_AI_RESPONSE_MODEL] == MODEL
    assert str(attrs[GEN_AI_RESPONSE_ID]).startswith("chatcmpl-")
    assert attrs[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert isinstance(attrs[GEN_AI_USAGE_INPUT_TOKENS], int)
    assert isinstance(attrs[GEN_AI_USAGE_OUTPUT_TOKENS], int)
    assert isinstance(attrs[AGENTMESH_COST_USD], float)
    stream_attrs = _attributes(streamed.attributes)
    assert stream_attrs[GEN_AI_REQUEST_STREAM] is True
    assert isinstance(stream_attrs[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    assert isinstance(stream_attrs[GEN_AI_USAGE_OUTPUT_TOKENS], int)


def test_app_runs_unchanged_and_on_time_when_the_collector_is_down(
    provider: FakeProviderThread,
    app: Path,
    receiver: tuple[RecordingTraceService, int],
) -> None:
    _, port = receiver
    up = f"http://127.0.0.1:{port}"
    down = f"http://127.0.0.1:{_closed_port()}"
    baseline: list[float] = []
    with_collector: list[float] = []
    without_collector: list[float] = []
    for _ in range(2):
        plain_result, plain_time = _run(app, provider, instrumented=False)
        assert plain_result.returncode == 0, plain_result.stderr
        assert plain_result.stdout == EXPECTED_OUTPUT
        baseline.append(plain_time)

        live, live_time = _run(app, provider, instrumented=True, AGENTMESH_ENDPOINT=up)
        assert live.returncode == 0, live.stderr
        with_collector.append(live_time)

        result, elapsed = _run(app, provider, instrumented=True, AGENTMESH_ENDPOINT=down)
        assert result.returncode == 0, result.stderr
        assert result.stdout == EXPECTED_OUTPUT
        assert "Traceback" not in result.stderr
        without_collector.append(elapsed)

    timings = (baseline, with_collector, without_collector)
    print("fail-open timings (bare, collector up, collector down):", timings)
    # A dead collector costs about what a live one does (the exporter gives up at once; no
    # 30 s retry or shutdown wait) ...
    assert min(without_collector) <= min(with_collector) + 2.0, timings
    # ... and the instrumented app does not hang at exit waiting for it (the SDK's shutdown
    # would wait 30 s): start-up imports only, which a loaded machine can double.
    assert min(without_collector) <= 2 * min(baseline) + 3.0, timings


def test_launcher_needs_no_opentelemetry_cli_on_path(
    receiver: tuple[RecordingTraceService, int],
    provider: FakeProviderThread,
    app: Path,
    tmp_path: Path,
) -> None:
    service, port = receiver
    venv_bin = Path(sys.executable).parent
    launcher = venv_bin / "agentmesh-instrument"
    if not launcher.exists():
        pytest.skip("the workspace's virtualenv has no agentmesh-instrument script")
    bin_dir = tmp_path / "bin"  # the only PATH entry: a `python` and nothing else
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    assert shutil.which("opentelemetry-instrument", path=str(bin_dir)) is None
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    env = {
        **clean,
        "PATH": str(bin_dir),
        "OPENAI_BASE_URL": provider.openai_base_url,
        "OPENAI_API_KEY": "test",
        "AGENTMESH_ENDPOINT": f"http://127.0.0.1:{port}",
        "AGENTMESH_SHUTDOWN_TIMEOUT_S": "10",
    }

    result = subprocess.run(
        [str(launcher), "python", str(app)],
        cwd=app.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_OUTPUT
    assert [span.name for _, span in service.spans()] == [f"chat {MODEL}", f"chat {MODEL}"]


def test_spans_go_to_the_local_collector_port_by_default(
    provider: FakeProviderThread, app: Path
) -> None:
    service = RecordingTraceService()
    # no SO_REUSEPORT: never share the port with a collector already running here
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)]
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    try:
        port = server.add_insecure_port("127.0.0.1:4317")
    except RuntimeError:
        pytest.skip("127.0.0.1:4317 is taken on this machine")
    if port != 4317:
        pytest.skip("127.0.0.1:4317 is taken on this machine")
    server.start()
    try:
        result, _ = _run(app, provider, instrumented=True, AGENTMESH_SHUTDOWN_TIMEOUT_S="10")
    finally:
        server.stop(grace=None)

    assert result.returncode == 0, result.stderr
    assert [span.name for _, span in service.spans()] == [f"chat {MODEL}", f"chat {MODEL}"]
