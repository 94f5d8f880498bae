"""Tool-call digests on CrewAI ``execute_tool`` spans: real tools, both calling paths.

``BaseTool.run`` (native function calling) and ``CrewStructuredTool.invoke`` (text tool calling,
arguments as a JSON text) both give the span the digests of the arguments and of the result,
with content capture off and on; equal arguments in another key order give equal digests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from crewai.tools import BaseTool, tool
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.core.semconv import (
    AGENTMESH_TOOL_ARGUMENTS_DIGEST,
    AGENTMESH_TOOL_RESULT_DIGEST,
    GEN_AI_TOOL_CALL_ARGUMENTS,
)
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.handoff import bounded_digest


@tool("Lookup")
def lookup(query: str, limit: int) -> str:
    """Look facts up."""
    return f"{limit} facts on {query}"


@pytest.fixture(params=[False, True], ids=["capture-off", "capture-on"])
def capture(
    request: pytest.FixtureRequest, exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[bool]:
    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_content=bool(request.param))
    yield bool(request.param)
    instrumentor.uninstrument()


def _digests(span: ReadableSpan) -> tuple[object, object]:
    attrs = span.attributes or {}
    return attrs[AGENTMESH_TOOL_ARGUMENTS_DIGEST], attrs[AGENTMESH_TOOL_RESULT_DIGEST]


def test_equal_calls_get_equal_digests(capture: bool, exporter: InMemorySpanExporter) -> None:
    assert isinstance(lookup, BaseTool)
    structured = lookup.to_structured_tool()
    lookup.run(query="otters", limit=2)
    lookup.run(limit=2, query="otters")
    lookup.run(query="beavers", limit=2)
    structured.invoke('{"limit": 2, "query": "otters"}')  # text tool calling: a JSON text

    spans = [s for s in exporter.get_finished_spans() if s.name == "execute_tool Lookup"]
    assert len(spans) == 4
    first, reordered, other, text = (_digests(s) for s in spans)
    assert first == reordered == text
    assert first[0] != other[0]
    assert first[1] != other[1]
    assert first == (
        bounded_digest({"query": "otters", "limit": 2}),
        bounded_digest("2 facts on otters"),
    )
    assert [GEN_AI_TOOL_CALL_ARGUMENTS in (s.attributes or {}) for s in spans] == [capture] * 4
