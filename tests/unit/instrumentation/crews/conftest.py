"""Fixtures of the CrewAI tests: CrewAI kept offline, the CrewAI instrumentor, span-tree helpers.

CrewAI's own telemetry and tracing are switched off before CrewAI is imported (there is no
network here, and tests must never phone home); ``OTEL_SDK_DISABLED`` is not used, since it
would switch off the in-memory provider the tests read spans from. CrewAI's storage (kickoff
outputs database) goes to a temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

for _name in ("CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_TRACKING"):
    os.environ.setdefault(_name, "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

import pytest  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402

from agentmesh.instrumentation.crewai import CrewAIInstrumentor  # noqa: E402
from agentmesh.instrumentation.openai import OpenAIInstrumentor  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def crewai_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("crewai-storage")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CREWAI_STORAGE_DIR", str(path))
        yield path


@pytest.fixture
def crewai_instrumented(
    openai_instrumented: OpenAIInstrumentor, tracer_provider: TracerProvider
) -> Iterator[CrewAIInstrumentor]:
    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


SpanTree = Callable[[Sequence[ReadableSpan]], list[str]]


@pytest.fixture
def span_tree() -> SpanTree:
    """Render spans as indented names, children in start order."""
    return render_tree


def render_tree(spans: Sequence[ReadableSpan]) -> list[str]:
    """Render spans as indented names, children in start order."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None else None
        children.setdefault(parent if parent in by_id else None, []).append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x.start_time or 0):
            lines.append("  " * depth + s.name)
            walk(s.context.span_id if s.context is not None else None, depth + 1)

    walk(None, 0)
    return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # CrewAI reads its own deprecated fields (function_calling_llm…) on every run: not ours.
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.filterwarnings(r"ignore::DeprecationWarning:crewai\."))
