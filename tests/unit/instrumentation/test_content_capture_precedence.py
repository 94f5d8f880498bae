"""``AGENTMESH_CAPTURE_CONTENT``, when set, wins over the OpenTelemetry content variable.

As for every other setting, an explicitly set AgentMesh variable wins over the ``OTEL_*`` one:
a deployment that turns capture off with ``AGENTMESH_CAPTURE_CONTENT=false`` must not leak
prompts because a base image sets ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``
(it used to: the OpenTelemetry variable was read first). The OpenTelemetry variable applies
when ours is unset; the instrumentor's ``capture_content`` argument wins over both.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES
from agentmesh.instrumentation import _content
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

OURS = "AGENTMESH_CAPTURE_CONTENT"
OTEL = _content.CAPTURE_ENV_VAR
GPT = "gpt-4o-mini"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(OURS, raising=False)
    monkeypatch.delenv(OTEL, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("ours", "otel", "captured"),
    [
        ("false", "true", False),  # ours set to false: the OTel variable cannot turn it on
        ("FALSE", "TRUE", False),
        ("0", "true", False),
        ("true", "false", True),  # ours set to true: the OTel variable cannot turn it off
        ("true", None, True),
        ("false", None, False),
        (None, "true", True),  # ours unset: the OTel variable applies
        (None, "false", False),
        (None, None, False),  # neither: off
    ],
)
def test_the_agentmesh_variable_wins_when_set_the_otel_one_applies_otherwise(
    clean_env: pytest.MonkeyPatch, ours: str | None, otel: str | None, captured: bool
) -> None:
    if ours is not None:
        clean_env.setenv(OURS, ours)
    if otel is not None:
        clean_env.setenv(OTEL, otel)

    assert _content.capture_enabled({}) is captured


@pytest.mark.parametrize("ours", ["false", "true"])
def test_the_instrumentor_argument_still_wins_over_both(
    clean_env: pytest.MonkeyPatch, ours: str
) -> None:
    clean_env.setenv(OURS, ours)
    clean_env.setenv(OTEL, ours)
    wanted = ours != "true"

    assert _content.capture_enabled({"capture_content": wanted}) is wanted


def test_a_set_agentmesh_variable_keeps_capture_off_when_the_settings_do_not_load(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(OURS, "false")
    clean_env.setenv(OTEL, "true")
    clean_env.setenv("AGENTMESH_EXPORT_TIMEOUT_S", "abc")  # the settings fail to load

    assert _content.capture_enabled({}) is False


@pytest.fixture
def instrumented(
    clean_env: pytest.MonkeyPatch, tracer_provider: TracerProvider
) -> Iterator[pytest.MonkeyPatch]:
    yield clean_env
    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.mark.parametrize(("ours", "otel"), [("false", "true"), ("true", "false")])
def test_a_call_records_content_as_the_agentmesh_variable_says(
    instrumented: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
    ours: str,
    otel: str,
) -> None:
    instrumented.setenv(OURS, ours)
    instrumented.setenv(OTEL, otel)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)

    with FakeProviderThread({GPT: ModelScript(content="Bonjour.")}) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0)
        client.chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": "a secret prompt"}]
        )

    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    if ours == "true":
        assert "a secret prompt" in str(attributes[GEN_AI_INPUT_MESSAGES])
        assert "Bonjour." in str(attributes[GEN_AI_OUTPUT_MESSAGES])
    else:
        assert GEN_AI_INPUT_MESSAGES not in attributes
        assert GEN_AI_OUTPUT_MESSAGES not in attributes
        assert not any("a secret prompt" in str(value) for value in attributes.values())
