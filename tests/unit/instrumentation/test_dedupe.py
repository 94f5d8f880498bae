"""One span per call (suppression keys, peer spans, the distro's skip) and the hook point."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span
from opentelemetry.util._importlib_metadata import (  # pyright: ignore[reportPrivateUsage]
    EntryPoint,
)

from agentmesh.core.semconv import AGENTMESH_COST_USD, GEN_AI_REQUEST_MODEL
from agentmesh.instrumentation import _dedupe
from agentmesh.instrumentation.distro import AgentMeshDistro
from agentmesh.instrumentation.openai import _hooks
from agentmesh.instrumentation.testing import ErrorScript, FakeProviderThread, ModelScript

pytestmark = pytest.mark.usefixtures("openai_instrumented")

MODEL = "gpt-4o-mini"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
PEER_SCOPE = "opentelemetry.instrumentation.openai.v1"


def _client(fp: FakeProviderThread, **http: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=fp.openai_base_url,
        api_key="t",
        max_retries=0,
        http_client=httpx.Client(**http),
    )


@pytest.mark.parametrize("key", [_dedupe.SUPPRESS_KEY, _dedupe.LLM_SUPPRESS_KEY])
def test_call_under_a_suppression_key_passes_through_without_span(
    exporter: InMemorySpanExporter, fake_provider: FakeProviderThread, key: str
) -> None:
    token = context.attach(context.set_value(key, True))
    try:
        reply = _client(fake_provider).chat.completions.create(model=MODEL, messages=MESSAGES)
    finally:
        context.detach(token)

    assert reply.choices[0].message.content == "Hello from the fake."
    assert exporter.get_finished_spans() == ()


def test_the_sdk_call_runs_under_the_peers_suppression_keys(
    exporter: InMemorySpanExporter, fake_provider: FakeProviderThread
) -> None:
    seen: list[tuple[object, object, object]] = []

    def on_request(request: httpx.Request) -> None:  # runs inside the SDK call
        seen.append(
            (
                context.get_value(_dedupe.SUPPRESS_KEY),
                context.get_value(_dedupe.LLM_SUPPRESS_KEY),
                trace.get_current_span().get_span_context().span_id,
            )
        )

    client = _client(fake_provider, event_hooks={"request": [on_request]})
    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    (span,) = exporter.get_finished_spans()
    assert span.context is not None
    assert seen == [(True, True, span.context.span_id)]
    assert context.get_value(_dedupe.SUPPRESS_KEY) is None  # restored after the call


def test_under_a_peer_span_ours_is_a_guest_on_it(
    exporter: InMemorySpanExporter,
    fake_provider: FakeProviderThread,
    tracer_provider: TracerProvider,
) -> None:
    peer = tracer_provider.get_tracer(PEER_SCOPE)
    with peer.start_as_current_span("openai.chat") as peer_span:
        stream = _client(fake_provider).chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert peer_span.is_recording()  # we never end the peer's span

    assert text == "Hello from the fake."
    (span,) = exporter.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == PEER_SCOPE
    attributes = span.attributes or {}
    assert isinstance(attributes[AGENTMESH_COST_USD], float)
    assert GEN_AI_REQUEST_MODEL not in attributes  # the peer's own attributes stay the peer's


def test_under_an_unknown_span_ours_is_a_child(
    exporter: InMemorySpanExporter,
    fake_provider: FakeProviderThread,
    tracer_provider: TracerProvider,
) -> None:
    with tracer_provider.get_tracer("my.app").start_as_current_span("step"):
        _client(fake_provider).chat.completions.create(model=MODEL, messages=MESSAGES)

    names = [s.name for s in exporter.get_finished_spans()]
    assert names == [f"chat {MODEL}", "step"]


def test_peer_span_needs_a_known_scope_and_recording(tracer_provider: TracerProvider) -> None:
    with tracer_provider.get_tracer(PEER_SCOPE).start_as_current_span("x") as span:
        assert _dedupe.peer_span(span)
    assert not _dedupe.peer_span(span)  # ended
    with tracer_provider.get_tracer("my.app").start_as_current_span("x") as mine:
        assert not _dedupe.peer_span(mine)
    assert not _dedupe.peer_span(trace.INVALID_SPAN)


def test_suppression_values_never_import_the_genai_utilities() -> None:
    values = _dedupe.suppression_values()
    assert values[_dedupe.SUPPRESS_KEY] is True
    assert values[_dedupe.LLM_SUPPRESS_KEY] is True
    assert _dedupe.suppressed(values)
    assert not _dedupe.suppressed({})


def _peer_entry_point(name: str) -> EntryPoint:
    return EntryPoint(
        name=name,
        value="no_such_peer_package.instrumentation:Instr",
        group="opentelemetry_instrumentor",
    )


def test_distro_skips_a_peers_entry_point_for_a_library_we_instrument() -> None:
    AgentMeshDistro().load_instrumentor(_peer_entry_point("openai"))  # skipped: never loaded


def test_distro_applies_the_peer_when_ours_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "agentmesh_openai")
    with pytest.raises(ModuleNotFoundError):
        AgentMeshDistro().load_instrumentor(_peer_entry_point("openai"))


def test_distro_applies_peers_of_libraries_we_do_not_instrument() -> None:
    with pytest.raises(ModuleNotFoundError):
        AgentMeshDistro().load_instrumentor(_peer_entry_point("langchain"))


@pytest.fixture
def hooks() -> Any:
    yield _hooks
    _hooks.set_hooks(None)


def test_hook_before_can_change_the_request(
    exporter: InMemorySpanExporter, fake_provider: FakeProviderThread, hooks: Any
) -> None:
    calls: list[tuple[str, object]] = []

    def before(span: Span, endpoint: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        calls.append((endpoint, kwargs["model"]))
        span.set_attribute("test.hooked", True)
        return {**kwargs, "temperature": 0.5}

    seen: list[bytes] = []

    def on_request(request: httpx.Request) -> None:
        seen.append(request.content)

    _hooks.set_hooks(_hooks.CallHooks(before=before))
    client = _client(fake_provider, event_hooks={"request": [on_request]})
    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert calls == [("openai.chat", MODEL)]
    assert json.loads(seen[0])["temperature"] == 0.5  # the body the SDK sent
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})["test.hooked"] is True


def test_hook_on_error_can_retry_with_other_arguments(
    exporter: InMemorySpanExporter, hooks: Any
) -> None:
    errors: list[str] = []

    def on_error(
        span: Span, endpoint: str, kwargs: dict[str, Any], error: BaseException
    ) -> dict[str, Any] | None:
        errors.append(type(error).__name__)
        return {**kwargs, "model": MODEL} if kwargs["model"] != MODEL else None

    _hooks.set_hooks(_hooks.CallHooks(on_error=on_error))
    scripts = {MODEL: ModelScript(content="ok"), "down": ModelScript(error=ErrorScript(status=503))}
    with FakeProviderThread(scripts) as fp:
        reply = _client(fp).chat.completions.create(model="down", messages=MESSAGES)

    assert reply.choices[0].message.content == "ok"
    assert errors == ["InternalServerError"]
    (span,) = exporter.get_finished_spans()
    assert span.status.is_ok


def test_hook_on_error_returning_none_lets_the_error_through(
    exporter: InMemorySpanExporter, hooks: Any
) -> None:
    _hooks.set_hooks(_hooks.CallHooks(on_error=lambda span, endpoint, kwargs, error: None))
    with (
        FakeProviderThread({"down": ModelScript(error=ErrorScript(status=503))}) as fp,
        pytest.raises(openai.InternalServerError),
    ):
        _client(fp).chat.completions.create(model="down", messages=MESSAGES)
    (span,) = exporter.get_finished_spans()
    assert not span.status.is_ok


def test_a_failing_hook_is_ignored(
    exporter: InMemorySpanExporter, fake_provider: FakeProviderThread, hooks: Any
) -> None:
    def before(span: Span, endpoint: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug in a hook")

    _hooks.set_hooks(_hooks.CallHooks(before=before))
    reply = _client(fake_provider).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello from the fake."
    assert len(exporter.get_finished_spans()) == 1
