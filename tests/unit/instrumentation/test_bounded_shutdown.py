"""Exporting never holds the application: shutdown and flush stay within their budget."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from structlog.testing import capture_logs

from agentmesh.instrumentation._exporter import (
    GuardedSpanExporter,
    collector_reachable,
    endpoint_address,
)
from agentmesh.instrumentation._processor import BoundedSpanProcessor


class RecordingExporter(SpanExporter):
    """Exports instantly, or hangs until shut down (a collector that never answers)."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.exported: list[str] = []
        self.shutdowns = 0
        self._released = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.hang:
            self._released.wait(30)
            return SpanExportResult.FAILURE
        self.exported.extend(s.name for s in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shutdowns += 1
        self._released.set()


@pytest.fixture
def listening_endpoint() -> Iterator[str]:
    """A TCP port that accepts connections (in the backlog) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def closed_endpoint() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def _provider(
    inner: RecordingExporter | None, endpoint: str, timeout_s: float
) -> tuple[TracerProvider, list[int]]:
    built: list[int] = []

    def factory() -> SpanExporter:
        built.append(1)
        assert inner is not None
        return inner

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        BoundedSpanProcessor(GuardedSpanExporter(factory), endpoint, timeout_s)
    )
    return provider, built


def test_spans_are_flushed_at_shutdown_when_the_collector_answers(listening_endpoint: str) -> None:
    inner = RecordingExporter()
    provider, _ = _provider(inner, listening_endpoint, 2.0)
    with provider.get_tracer("t").start_as_current_span("work"):
        pass
    provider.shutdown()

    assert inner.exported == ["work"]
    assert inner.shutdowns == 1


def test_spans_are_flushed_where_no_thread_can_start_at_exit(
    listening_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CPython 3.12.0 and 3.12.1 refuse new threads in atexit hooks ("can't create new thread at
    # interpreter shutdown"); shutdown then runs unbounded on the caller's thread
    inner = RecordingExporter()
    provider, _ = _provider(inner, listening_endpoint, 2.0)
    with provider.get_tracer("t").start_as_current_span("work"):
        pass
    start = threading.Thread.start

    def refuse_ours(thread: threading.Thread) -> None:
        if thread.name.startswith("agentmesh-"):
            raise RuntimeError("can't create new thread at interpreter shutdown")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", refuse_ours)
    provider.shutdown()

    assert inner.exported == ["work"]
    assert inner.shutdowns == 1


def test_a_hung_collector_costs_at_most_the_budget(listening_endpoint: str) -> None:
    inner = RecordingExporter(hang=True)
    provider, _ = _provider(inner, listening_endpoint, 0.5)
    with provider.get_tracer("t").start_as_current_span("work"):
        pass

    started = time.monotonic()
    provider.shutdown()
    elapsed = time.monotonic() - started

    assert 0.4 < elapsed < 1.0
    assert inner.shutdowns == 1  # closing the exporter released the hung export


def test_the_exit_hook_and_shutdown_share_one_budget(
    listening_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a slow exporter build at exit (importing gRPC) came on top of shutdown's whole budget
    from agentmesh.instrumentation import _processor

    waits: dict[str, float] = {}
    bounded = _processor._run_bounded  # pyright: ignore[reportPrivateUsage]

    def recorded(name: str, fn: Callable[[], object], timeout_s: float) -> bool:
        waits[name] = timeout_s
        return bounded(name, fn, timeout_s)

    monkeypatch.setattr(_processor, "_run_bounded", recorded)

    def slow_build() -> SpanExporter:
        time.sleep(0.3)
        return RecordingExporter()

    processor = BoundedSpanProcessor(GuardedSpanExporter(slow_build), listening_endpoint, 1.0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("work"):
        pass
    processor._prepare_exporter_at_exit()  # pyright: ignore[reportPrivateUsage]
    provider.shutdown()
    assert waits["exporter-prepare"] <= 1.0
    assert waits["span-shutdown"] <= 0.7  # what the build left of the second


def test_an_unreachable_collector_costs_nothing(closed_endpoint: str) -> None:
    provider, built = _provider(None, closed_endpoint, 5.0)
    for i in range(100):
        with provider.get_tracer("t").start_as_current_span(f"s{i}"):
            pass

    started = time.monotonic()
    with capture_logs() as logs:
        provider.shutdown()

    assert time.monotonic() - started < 0.5
    assert built == []  # the gRPC exporter was never even built
    (log,) = [entry for entry in logs if entry["event"] == "agentmesh.collector_unreachable"]
    assert log["dropped_spans"] == 100


def test_nothing_to_drop_nothing_to_say(closed_endpoint: str) -> None:
    provider, _ = _provider(None, closed_endpoint, 5.0)
    with capture_logs() as logs:
        provider.shutdown()

    assert logs == []


def test_force_flush_is_bounded(listening_endpoint: str) -> None:
    inner = RecordingExporter(hang=True)
    provider, _ = _provider(inner, listening_endpoint, 0.3)
    with provider.get_tracer("t").start_as_current_span("work"):
        pass

    started = time.monotonic()
    assert provider.force_flush(10_000) is False
    assert time.monotonic() - started < 0.8
    provider.shutdown()


def test_guarded_exporter_is_fail_open_and_idempotent() -> None:
    class Broken(SpanExporter):
        shutdowns = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            raise RuntimeError("exporter bug")

        def shutdown(self) -> None:
            Broken.shutdowns += 1

    guarded = GuardedSpanExporter(Broken)
    assert guarded.export([]) is SpanExportResult.FAILURE
    assert guarded.last_export_ok is False
    guarded.shutdown()
    guarded.shutdown()
    assert Broken.shutdowns == 1
    assert guarded.export([]) is SpanExportResult.FAILURE


def test_endpoint_parsing_and_probe(listening_endpoint: str, closed_endpoint: str) -> None:
    assert endpoint_address("http://collector:4317") == ("collector", 4317)
    assert endpoint_address("collector:4318") == ("collector", 4318)
    assert endpoint_address("https://otel.example.com") == ("otel.example.com", 443)
    assert endpoint_address("unix:///tmp/otel.sock") is None
    assert endpoint_address("http://[::1") is None  # urlsplit itself refuses it
    assert endpoint_address("collector:abc") is None
    assert collector_reachable(listening_endpoint, 1.0) is True
    assert collector_reachable(closed_endpoint, 1.0) is False
