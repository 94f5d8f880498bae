"""A CrewAI crew with a tool, delegation and task context, offline against the fake provider.

The newsroom crew runs two tasks in sequence:

1. the Editor must produce a brief; it delegates the research to the Researcher (a handoff of
   kind ``delegation``), who looks the facts up with a tool;
2. the Writer turns the brief into an article, starting from the Editor's output (a handoff of
   kind ``task_context``).

Each agent has its own model name, and the fake provider's scripts (``--print-scripts``) make
every model answer as CrewAI expects (native tool calls, then ``Final Answer:`` text).

Run it offline, in-process, and see the spans::

    uv run python examples/crewai_crew.py --show-spans

or against a separate fake provider and a collector, zero-code::

    uv run python examples/crewai_crew.py --print-scripts > /tmp/crew-scripts.json
    uv run agentmesh-fake-provider --port 8765 --scripts /tmp/crew-scripts.json &
    uv run agentmesh-instrument python examples/crewai_crew.py --base-url http://127.0.0.1:8765/v1
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

# Never phone home: CrewAI's own telemetry and tracing are off for this example.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_DISABLE_TRACKING", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from agentmesh.core.semconv import (
    AGENTMESH_CREWAI_TASK_NAME,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
)
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, parse_scripts

EDITOR, RESEARCHER, WRITER = "editor-model", "researcher-model", "writer-model"

SCRIPTS: dict[str, object] = {
    EDITOR: {
        "sequence": [
            {
                "tool_calls": [
                    {
                        "name": "delegate_work_to_coworker",
                        "arguments": {
                            "task": "Find two facts about sea otters.",
                            "context": "The brief is for a general audience.",
                            "coworker": "Researcher",
                        },
                    }
                ]
            },
            "Brief: sea otters hold hands while sleeping and use stones as tools.",
        ]
    },
    RESEARCHER: {
        "sequence": [
            {"tool_calls": [{"name": "encyclopedia", "arguments": {"topic": "sea otters"}}]},
            "Sea otters hold hands while sleeping; they use stones as tools.",
        ]
    },
    WRITER: {
        "content": "Thought: I can write it now.\nFinal Answer: Sea otters, the ocean's "
        "hand-holding engineers, sleep in rafts and crack shells with stones."
    },
}

_FACTS = {"sea otters": "Sea otters hold hands while sleeping and crack shells with stones."}


@tool("Encyclopedia")
def encyclopedia(topic: str) -> str:
    """Look a topic up in the encyclopedia."""
    return _FACTS.get(topic.lower(), "No entry.")


def build_crew(base_url: str, api_key: str) -> Crew:
    def llm(model: str) -> LLM:
        return LLM(model=f"openai/{model}", base_url=base_url, api_key=api_key, max_retries=0)

    editor = Agent(
        role="Editor",
        goal="Deliver accurate briefs.",
        backstory="Runs the newsroom; delegates research.",
        llm=llm(EDITOR),
        allow_delegation=True,
    )
    researcher = Agent(
        role="Researcher",
        goal="Find facts.",
        backstory="Knows where to look.",
        llm=llm(RESEARCHER),
        tools=[encyclopedia],
    )
    writer = Agent(
        role="Writer", goal="Write clear articles.", backstory="A journalist.", llm=llm(WRITER)
    )
    brief = Task(
        name="brief",
        description="Produce a brief on sea otters.",
        expected_output="A two-sentence brief.",
        agent=editor,
    )
    article = Task(
        name="article",
        description="Write a short article from the brief.",
        expected_output="One paragraph.",
        agent=writer,
    )
    return Crew(name="newsroom", agents=[editor, researcher, writer], tasks=[brief, article])


@contextmanager
def _provider(base_url: str | None) -> Iterator[str]:
    if base_url is not None:
        yield base_url
        return
    with FakeProviderThread(parse_scripts(SCRIPTS)) as fake:
        yield fake.openai_base_url


def _capture_spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # not already set up by agentmesh-instrument
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    CrewAIInstrumentor().instrument(tracer_provider=provider)
    return exporter


_SHOWN = {  # attribute -> short label in the printed tree
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME: "from",
    AGENTMESH_HANDOFF_KIND: "handoff",
    AGENTMESH_HANDOFF_CONTEXT_SIZE: "context_bytes",
    AGENTMESH_CREWAI_TASK_NAME: "task",
    GEN_AI_USAGE_INPUT_TOKENS: "input_tokens",
}


def print_tree(spans: Sequence[ReadableSpan]) -> None:
    ids = {s.context.span_id for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            attributes = span.attributes or {}
            shown = {label: attributes[key] for key, label in _SHOWN.items() if key in attributes}
            print("  " * depth + span.name, shown or "")
            walk(span.context.span_id if span.context is not None else None, depth + 1)

    walk(None, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint")
    parser.add_argument("--api-key", default="offline-key")
    parser.add_argument("--show-spans", action="store_true", help="print the span tree")
    parser.add_argument("--print-scripts", action="store_true", help="fake provider scripts")
    args = parser.parse_args()
    if args.print_scripts:
        print(json.dumps(SCRIPTS, indent=2))
        return
    exporter = _capture_spans() if args.show_spans else None
    with _provider(args.base_url) as base_url:
        result = build_crew(base_url, args.api_key).kickoff()
    print(f"article: {result.raw}")
    if exporter is not None:
        print_tree(exporter.get_finished_spans())


if __name__ == "__main__":
    main()
