"""A CrewAI flow with a router, an agent without a crew and a crew, offline (fake provider).

The support flow handles one ticket:

1. ``receive`` (``@start``) reads the ticket from the flow's inputs;
2. ``triage`` (``@router``) asks a Triage agent (``Agent.kickoff``, no crew) what the ticket
   is about and routes on its answer: ``billing`` or ``question``;
3. ``issue_refund`` (``@listen("billing")``) kicks off the refunds crew; ``answer`` would have
   handled a question;
4. ``reply`` (``@listen(or_(issue_refund, answer))``) writes the reply.

Each method is an ``invoke_node`` step; each transition is a handoff on the receiving step
(``edge`` for ``@listen`` on a method, ``conditional`` for a router's outcome); the agent and
the crew nest under the step that kicked them off.

Run it offline, in-process, and see the spans::

    uv run python examples/crewai_flow.py --show-spans

or against a separate fake provider and a collector, zero-code::

    uv run python examples/crewai_flow.py --print-scripts > /tmp/flow-scripts.json
    uv run agentmesh-fake-provider --port 8765 --scripts /tmp/flow-scripts.json &
    uv run agentmesh-instrument python examples/crewai_flow.py --base-url http://127.0.0.1:8765/v1
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
from crewai.flow.flow import Flow, listen, or_, router, start
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from pydantic import BaseModel

from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
)
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.testing import FakeProviderThread, parse_scripts

TRIAGE, REFUNDS = "triage-model", "refunds-model"
TICKET = "I was charged twice for my order #1042."

SCRIPTS: dict[str, object] = {
    TRIAGE: {"content": "Thought: A billing problem.\nFinal Answer: refund"},
    REFUNDS: {"content": "Thought: Duplicate charge.\nFinal Answer: Refund of order #1042 issued."},
}


class Ticket(BaseModel):
    """The flow's state: the ticket being handled."""

    ticket: str = ""


def build_flow(base_url: str, api_key: str) -> Flow[Ticket]:
    def llm(model: str) -> LLM:
        return LLM(model=f"openai/{model}", base_url=base_url, api_key=api_key, max_retries=0)

    class SupportFlow(Flow[Ticket]):
        @start()
        def receive(self) -> str:
            return self.state.ticket

        @router(receive)
        def triage(self, ticket: str) -> str:
            agent = Agent(
                role="Triage", goal="Classify tickets.", backstory="Support lead.", llm=llm(TRIAGE)
            )
            verdict = agent.kickoff(f"Is this a refund or a question? {ticket}").raw
            return "billing" if "refund" in verdict.lower() else "question"

        @listen("billing")
        def issue_refund(self) -> str:
            clerk = Agent(
                role="Refund Clerk", goal="Issue refunds.", backstory="Billing.", llm=llm(REFUNDS)
            )
            task = Task(
                name="refund",
                description=f"Handle: {self.state.ticket}",
                expected_output="What was done.",
                agent=clerk,
            )
            return Crew(name="refunds", agents=[clerk], tasks=[task]).kickoff().raw

        @listen("question")
        def answer(self) -> str:
            return "See our FAQ."

        @listen(or_(issue_refund, answer))
        def reply(self, outcome: str) -> str:
            return f"Dear customer: {outcome}"

    return SupportFlow()


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
        result = build_flow(base_url, args.api_key).kickoff(inputs={"ticket": TICKET})
    print(f"reply: {result}")
    if exporter is not None:
        print_tree(exporter.get_finished_spans())


if __name__ == "__main__":
    main()
