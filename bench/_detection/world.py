"""What the simulated apps are made of: models, tools, agents and workflows.

Figures are plausible, not measured: list prices per million tokens, a latency of a first
token plus a per-output-token time, typical prompt and completion sizes per agent. Five
workflows cover the topologies the issue names: a supervisor (``research_report``), two
pipelines (``support_ticket``, ``doc_ingest``), peer handoffs (``concierge``) and nested
subgraphs (``code_review``: a LangGraph subgraph of nodes inside the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from agentmesh.core import semconv

__all__ = [
    "MODELS",
    "TOOLS",
    "WORKFLOWS",
    "AgentProfile",
    "Model",
    "Tool",
    "Workflow",
]

Topology = Literal["supervisor", "pipeline", "peer", "nested"]


@dataclass(frozen=True, slots=True)
class Model:
    """A model a provider serves.

    Attributes:
        name: Requested model (``gen_ai.request.model``).
        response: Model that answers (``gen_ai.response.model``).
        provider: ``gen_ai.provider.name``.
        server: ``server.address``.
        price_in: US dollars per million input tokens.
        price_out: US dollars per million output tokens.
        cached_factor: Price of a cached input token relative to an uncached one.
        first_token_ms: Median time to the first token.
        ms_per_token: Median time per output token.
    """

    name: str
    response: str
    provider: str
    server: str
    price_in: float
    price_out: float
    cached_factor: float
    first_token_ms: float
    ms_per_token: float

    def cost(self, input_tokens: int, cached_tokens: int, output_tokens: int) -> float:
        """Price of a call, as the instrumentation's price catalog computes it.

        Args:
            input_tokens: Prompt tokens (cached ones included).
            cached_tokens: Prompt tokens served from the provider's cache.
            output_tokens: Completion tokens.

        Returns:
            US dollars.
        """
        fresh = input_tokens - cached_tokens
        return (
            fresh * self.price_in
            + cached_tokens * self.price_in * self.cached_factor
            + output_tokens * self.price_out
        ) / 1e6


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool agents call.

    Attributes:
        name: ``gen_ai.tool.name``.
        median_ms: Median latency.
        sigma: Log-normal spread of the latency.
        polls: A status poll: called again with the same arguments until its result says done
            (the results differ, so repeating it is progress, not a loop).
        fail_rate: Share of calls that fail (a 404, a timeout), handled by the agent.
    """

    name: str
    median_ms: float
    sigma: float = 0.5
    polls: bool = False
    fail_rate: float = 0.02


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """An agent (or a workflow node) of a workflow.

    Attributes:
        name: ``gen_ai.agent.name`` (or ``gen_ai.node.name`` for a node).
        model: Key of its model in :data:`MODELS` (``None``: no model call, a plain node).
        input_tokens: Median prompt size of its calls.
        output_tokens: Median completion size.
        calls: Fewest and most model calls per visit.
        tools: Tools it may call between model calls.
        cached_share: Typical share of the prompt served from the cache.
        node: Whether it is a workflow node (``invoke_node``) rather than an agent.
    """

    name: str
    model: str | None
    input_tokens: int = 1500
    output_tokens: int = 300
    calls: tuple[int, int] = (1, 2)
    tools: tuple[str, ...] = ()
    cached_share: float = 0.4
    node: bool = False


@dataclass(frozen=True, slots=True)
class Workflow:
    """A multi-agent workflow and the app that runs it.

    Attributes:
        name: ``gen_ai.workflow.name``.
        service: ``service.name`` of the app.
        framework: ``agentmesh.framework``.
        topology: How its agents hand work to each other.
        task_class: ``agentmesh.run.task_class``.
        agents: Its agents by name, in their usual order.
        handoff_kind: ``agentmesh.handoff.kind`` of its handoffs.
        weight: Share of the runs.
        budget_share: Share of its runs that carry a budget (``agentmesh.run.budget_usd``).
        budget_usd: The budget those runs carry.
        typical_cost_usd: About the median cost of a run (used to size runaway faults).
    """

    name: str
    service: str
    framework: str
    topology: Topology
    task_class: str
    agents: tuple[AgentProfile, ...]
    handoff_kind: str
    weight: float
    budget_share: float = 0.0
    budget_usd: float = 0.0
    typical_cost_usd: float = 0.05

    def agent(self, name: str) -> AgentProfile:
        """Return the agent called ``name``.

        Args:
            name: The agent's name.

        Returns:
            Its profile.
        """
        for profile in self.agents:
            if profile.name == name:
                return profile
        raise KeyError(name)


MODELS: Final[dict[str, Model]] = {
    m.name: m
    for m in (
        Model(
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            semconv.Provider.OPENAI,
            "api.openai.com",
            0.15,
            0.60,
            0.5,
            250,
            8,
        ),
        Model(
            "gpt-4o",
            "gpt-4o-2024-08-06",
            semconv.Provider.OPENAI,
            "api.openai.com",
            2.50,
            10.0,
            0.5,
            400,
            14,
        ),
        Model(
            "claude-3-5-haiku-latest",
            "claude-3-5-haiku-20241022",
            semconv.Provider.ANTHROPIC,
            "api.anthropic.com",
            0.80,
            4.0,
            0.1,
            350,
            9,
        ),
        Model(
            "claude-3-5-sonnet-latest",
            "claude-3-5-sonnet-20241022",
            semconv.Provider.ANTHROPIC,
            "api.anthropic.com",
            3.0,
            15.0,
            0.1,
            600,
            18,
        ),
        Model(
            "meta-llama/llama-3.1-70b-instruct",
            "meta-llama/llama-3.1-70b-instruct",
            semconv.Provider.OPENROUTER,
            "openrouter.ai",
            0.40,
            0.40,
            1.0,
            400,
            12,
        ),
        Model(
            "mistralai/mistral-large",
            "mistralai/mistral-large",
            semconv.Provider.OPENROUTER,
            "openrouter.ai",
            2.0,
            6.0,
            1.0,
            450,
            15,
        ),
    )
}
"""The models, by requested name."""

TOOLS: Final[dict[str, Tool]] = {
    t.name: t
    for t in (
        Tool("web_search", 700),
        Tool("fetch_url", 400, 0.7, fail_rate=0.04),
        Tool("python_exec", 900, 0.6),
        Tool("vector_search", 120, 0.4),
        Tool("kb_lookup", 80, 0.4),
        Tool("lookup_invoice", 150),
        Tool("check_refund_status", 200, polls=True),
        Tool("search_docs", 300),
        Tool("run_diagnostic", 2500, 0.6),
        Tool("crm_lookup", 180),
        Tool("ruff_check", 1500, 0.4),
        Tool("run_tests", 45_000, 0.45),  # legitimately long: a test suite
        Tool("git_diff", 90, 0.3),
        Tool("ocr_job_status", 400, polls=True),
        Tool("schema_check", 60, 0.3),
        Tool("db_write", 250, 0.5),
    )
}
"""The tools, by name."""

WORKFLOWS: Final[tuple[Workflow, ...]] = (
    Workflow(
        "research_report",
        "research-app",
        "langgraph",
        "supervisor",
        "research",
        (
            AgentProfile("supervisor", "gpt-4o", 1200, 80, (1, 1), cached_share=0.7),
            AgentProfile(
                "researcher",
                "claude-3-5-sonnet-latest",
                2500,
                600,
                (1, 3),
                ("web_search", "fetch_url"),
            ),
            AgentProfile("analyst", "gpt-4o-mini", 3000, 400, (1, 2), ("python_exec",)),
            AgentProfile("writer", "claude-3-5-haiku-latest", 3500, 900, (1, 2)),
        ),
        "command",
        0.25,
        budget_share=0.4,
        budget_usd=0.30,
        typical_cost_usd=0.06,
    ),
    Workflow(
        "support_ticket",
        "support-desk",
        "crewai",
        "pipeline",
        "support",
        (
            AgentProfile("intake", "gpt-4o-mini", 800, 120, (1, 1), cached_share=0.6),
            AgentProfile("classifier", "gpt-4o-mini", 900, 40, (1, 1), cached_share=0.7),
            AgentProfile(
                "retriever", "gpt-4o-mini", 1500, 200, (1, 2), ("vector_search", "kb_lookup")
            ),
            AgentProfile("responder", "claude-3-5-haiku-latest", 3000, 500, (1, 2)),
            AgentProfile("qa_reviewer", "gpt-4o", 2500, 150, (1, 1)),
        ),
        "task_context",
        0.30,
        budget_share=0.3,
        budget_usd=0.08,
        typical_cost_usd=0.014,
    ),
    Workflow(
        "concierge",
        "concierge",
        "openai_agents",
        "peer",
        "concierge",
        (
            AgentProfile("triage", "gpt-4o-mini", 700, 60, (1, 1), cached_share=0.7),
            AgentProfile(
                "billing",
                "claude-3-5-haiku-latest",
                1800,
                250,
                (1, 2),
                ("lookup_invoice", "check_refund_status"),
            ),
            AgentProfile(
                "tech_support",
                "meta-llama/llama-3.1-70b-instruct",
                2200,
                350,
                (1, 3),
                ("search_docs", "run_diagnostic"),
            ),
            AgentProfile("sales", "mistralai/mistral-large", 1500, 300, (1, 2), ("crm_lookup",)),
        ),
        "handoff",
        0.20,
        typical_cost_usd=0.01,
    ),
    Workflow(
        "code_review",
        "code-review-bot",
        "langgraph",
        "nested",
        "code_review",
        (
            AgentProfile("planner", "gpt-4o", 2000, 250, (1, 1), ("git_diff",)),
            AgentProfile("lint", None, tools=("ruff_check",), node=True),
            AgentProfile("test_runner", None, tools=("run_tests",), node=True),
            AgentProfile("security_scan", "claude-3-5-sonnet-latest", 4000, 300, (1, 1), node=True),
            AgentProfile("reviewer", "claude-3-5-sonnet-latest", 6000, 800, (1, 2)),
            AgentProfile("summarizer", "gpt-4o-mini", 2000, 200, (1, 1)),
        ),
        "edge",
        0.10,
        budget_share=0.5,
        budget_usd=0.30,
        typical_cost_usd=0.064,
    ),
    Workflow(
        "doc_ingest",
        "doc-ingest",
        "crewai",
        "pipeline",
        "extraction",
        (
            AgentProfile(
                "extractor", "claude-3-5-haiku-latest", 4000, 700, (1, 2), ("ocr_job_status",)
            ),
            AgentProfile("normalizer", "meta-llama/llama-3.1-70b-instruct", 2500, 600, (1, 1)),
            AgentProfile("validator", "gpt-4o-mini", 2000, 100, (1, 1), ("schema_check",)),
            AgentProfile("loader", "gpt-4o-mini", 600, 50, (1, 1), ("db_write",)),
        ),
        "task_context",
        0.15,
        typical_cost_usd=0.012,
    ),
)
"""The workflows, with the share of runs each gets."""
