"""The span contract: every span, event and baggage attribute name AgentMesh uses.

The instrumentation writes these names and the collector reads them; nothing else in the
project spells an attribute name as a string literal. OpenTelemetry GenAI semantic-convention
names are reused where they exist (``gen_ai.*``, ``server.*``, ``error.type``); the open GenAI
handoff proposal's names (``gen_ai.agent.handoff.*``) are written alongside ours; what the
conventions lack lives under ``agentmesh.*``.

Each name is registered with its type, an example and a one-line description in
:data:`ATTRIBUTES`; ``docs/semconv.md`` is generated from that registry and a test keeps the
two equal.

Example:
    >>> GEN_AI_OPERATION_NAME
    'gen_ai.operation.name'
    >>> ATTRIBUTES[GEN_AI_OPERATION_NAME].type
    'string'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "AGENTMESH_CALL_ENDED_AT_EXIT",
    "AGENTMESH_CONTENT_TRUNCATED",
    "AGENTMESH_COST_USD",
    "AGENTMESH_CREWAI_TASK_ID",
    "AGENTMESH_CREWAI_TASK_NAME",
    "AGENTMESH_DETECTION_AGENT",
    "AGENTMESH_DETECTION_EXPLANATION",
    "AGENTMESH_DETECTION_ID",
    "AGENTMESH_DETECTION_SEVERITY",
    "AGENTMESH_DETECTION_SPAN_IDS",
    "AGENTMESH_DETECTION_TYPE",
    "AGENTMESH_FEEDBACK_COMMENT",
    "AGENTMESH_FEEDBACK_SCORE",
    "AGENTMESH_FRAMEWORK",
    "AGENTMESH_HANDOFF_CHECKPOINT_ID",
    "AGENTMESH_HANDOFF_CHECKPOINT_STORE",
    "AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL",
    "AGENTMESH_HANDOFF_CONTENT",
    "AGENTMESH_HANDOFF_CONTEXT_DIGEST",
    "AGENTMESH_HANDOFF_CONTEXT_SIZE",
    "AGENTMESH_HANDOFF_KIND",
    "AGENTMESH_LANGGRAPH_CHECKPOINT_NS",
    "AGENTMESH_LANGGRAPH_INTERRUPTED",
    "AGENTMESH_LANGGRAPH_NODE",
    "AGENTMESH_LANGGRAPH_RESUMED",
    "AGENTMESH_LANGGRAPH_STEP",
    "AGENTMESH_NORMALIZED_FROM",
    "AGENTMESH_RESUME_CHECKPOINT_ID",
    "AGENTMESH_RESUME_FROM_RUN_ID",
    "AGENTMESH_ROUTE_BUDGET_USD",
    "AGENTMESH_ROUTE_CANDIDATES",
    "AGENTMESH_ROUTE_CHOSEN",
    "AGENTMESH_ROUTE_DECISION_ID",
    "AGENTMESH_ROUTE_FALLBACK_FROM",
    "AGENTMESH_ROUTE_FALLBACK_TO",
    "AGENTMESH_ROUTE_FEATURES",
    "AGENTMESH_ROUTE_MODE",
    "AGENTMESH_ROUTE_POLICY",
    "AGENTMESH_ROUTE_REASON",
    "AGENTMESH_ROUTE_REQUESTED_MODEL",
    "AGENTMESH_ROUTE_SCORES",
    "AGENTMESH_ROUTE_TABLE_VERSION",
    "AGENTMESH_ROUTE_TASK_CLASS",
    "AGENTMESH_RUN_BUDGET_USD",
    "AGENTMESH_RUN_ID",
    "AGENTMESH_RUN_PAUSED",
    "AGENTMESH_RUN_RESUMED",
    "AGENTMESH_RUN_TASK_CLASS",
    "AGENTMESH_UPSTREAM_PROVIDER",
    "AGENTMESH_USAGE_ESTIMATED",
    "ATTRIBUTES",
    "BAGGAGE_KEYS",
    "ERROR_TYPE",
    "EVENT_DETECTION",
    "EVENT_FALLBACK",
    "EVENT_HANDOFF",
    "GEN_AI_AGENT_HANDOFF_SOURCE_NAME",
    "GEN_AI_AGENT_HANDOFF_TARGET_NAME",
    "GEN_AI_AGENT_ID",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_EMBEDDINGS_DIMENSION_COUNT",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_NODE_NAME",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MAX_TOKENS",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_REQUEST_STREAM",
    "GEN_AI_REQUEST_TEMPERATURE",
    "GEN_AI_REQUEST_TOP_K",
    "GEN_AI_REQUEST_TOP_P",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK",
    "GEN_AI_SYSTEM_INSTRUCTIONS",
    "GEN_AI_TOKEN_TYPE",
    "GEN_AI_TOOL_CALL_ARGUMENTS",
    "GEN_AI_TOOL_CALL_ID",
    "GEN_AI_TOOL_CALL_RESULT",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_TOOL_TYPE",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS",
    "GEN_AI_WORKFLOW_NAME",
    "METRIC_CLIENT_OPERATION_DURATION",
    "METRIC_CLIENT_TOKEN_USAGE",
    "OPERATION_DURATION_BUCKETS",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SERVICE_NAME",
    "TOKEN_USAGE_BUCKETS",
    "AttributeSpec",
    "AttributeType",
    "Operation",
    "Origin",
    "Provider",
    "Scope",
]

AttributeType = Literal["string", "int", "double", "boolean", "string[]", "double[]"]
"""The OpenTelemetry attribute value types the contract uses."""

Scope = Literal["resource", "span", "event", "baggage", "metric"]
"""Where a name appears: resource, spans, span events, metric points, or W3C baggage."""

Origin = Literal["otel", "otel-genai", "genai-proposal", "agentmesh"]
"""Who defines a name: OpenTelemetry general or GenAI conventions, an open GenAI proposal, us."""


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One name of the contract.

    Attributes:
        name: The attribute (or baggage key) name.
        type: Its value type.
        example: A typical value, as it would be written in Python.
        brief: What it holds, in one line.
        scopes: Where it appears.
        origin: Who defines the name.
    """

    name: str
    type: AttributeType
    example: str
    brief: str
    scopes: tuple[Scope, ...]
    origin: Origin


class Operation:
    """Values of ``gen_ai.operation.name`` (span names are ``{operation} {model or agent}``)."""

    CHAT: Final = "chat"
    EMBEDDINGS: Final = "embeddings"
    EXECUTE_TOOL: Final = "execute_tool"
    INVOKE_AGENT: Final = "invoke_agent"
    INVOKE_NODE: Final = "invoke_node"
    """A workflow step that is not an agent (open GenAI proposal; a CrewAI flow method)."""
    INVOKE_WORKFLOW: Final = "invoke_workflow"


class Provider:
    """Values of ``gen_ai.provider.name`` AgentMesh writes."""

    ANTHROPIC: Final = "anthropic"
    OPENAI: Final = "openai"
    OPENROUTER: Final = "openrouter"


_REGISTRY: list[AttributeSpec] = []


def _attr(
    name: str,
    type_: AttributeType,
    example: str,
    brief: str,
    *,
    origin: Origin,
    scopes: tuple[Scope, ...] = ("span",),
) -> str:
    _REGISTRY.append(AttributeSpec(name, type_, example, brief, scopes, origin))
    return name


# --- OpenTelemetry general ------------------------------------------------------------------
SERVICE_NAME: Final = _attr(
    "service.name",
    "string",
    '"research-bot"',
    "Service that emitted the spans (a resource attribute).",
    origin="otel",
    scopes=("resource",),
)
SERVER_ADDRESS: Final = _attr(
    "server.address", "string", '"api.openai.com"', "Host the client called.", origin="otel"
)
SERVER_PORT: Final = _attr("server.port", "int", "443", "Port the client called.", origin="otel")
ERROR_TYPE: Final = _attr(
    "error.type",
    "string",
    '"RateLimitError"',
    "Class of the error that ended the operation (exception type or HTTP status).",
    origin="otel",
)

# --- OpenTelemetry GenAI --------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = _attr(
    "gen_ai.operation.name",
    "string",
    '"chat"',
    "What the span does: chat, embeddings, invoke_agent, invoke_workflow, invoke_node, "
    "execute_tool.",
    origin="otel-genai",
)
GEN_AI_PROVIDER_NAME: Final = _attr(
    "gen_ai.provider.name",
    "string",
    '"openai"',
    "The provider called: openai, anthropic, openrouter.",
    origin="otel-genai",
)
GEN_AI_REQUEST_MODEL: Final = _attr(
    "gen_ai.request.model",
    "string",
    '"gpt-4o-mini"',
    "Model the app asked for.",
    origin="otel-genai",
)
GEN_AI_REQUEST_TEMPERATURE: Final = _attr(
    "gen_ai.request.temperature",
    "double",
    "0.2",
    "Sampling temperature asked for.",
    origin="otel-genai",
)
GEN_AI_REQUEST_TOP_P: Final = _attr(
    "gen_ai.request.top_p",
    "double",
    "0.9",
    "Nucleus sampling bound asked for.",
    origin="otel-genai",
)
GEN_AI_REQUEST_MAX_TOKENS: Final = _attr(
    "gen_ai.request.max_tokens", "int", "512", "Output token cap asked for.", origin="otel-genai"
)
GEN_AI_REQUEST_STREAM: Final = _attr(
    "gen_ai.request.stream",
    "boolean",
    "True",
    "Whether the response was streamed.",
    origin="otel-genai",
)
GEN_AI_RESPONSE_MODEL: Final = _attr(
    "gen_ai.response.model",
    "string",
    '"gpt-4o-mini-2024-07-18"',
    "Model that answered (for OpenRouter: the upstream model).",
    origin="otel-genai",
)
GEN_AI_RESPONSE_ID: Final = _attr(
    "gen_ai.response.id",
    "string",
    '"chatcmpl-8f3a"',
    "Provider's id of the response.",
    origin="otel-genai",
)
GEN_AI_RESPONSE_FINISH_REASONS: Final = _attr(
    "gen_ai.response.finish_reasons",
    "string[]",
    '["stop"]',
    "Why each choice stopped.",
    origin="otel-genai",
)
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = _attr(
    "gen_ai.response.time_to_first_chunk",
    "double",
    "0.183",
    "Seconds from request to the first streamed chunk.",
    origin="otel-genai",
)
GEN_AI_USAGE_INPUT_TOKENS: Final = _attr(
    "gen_ai.usage.input_tokens", "int", "812", "Prompt tokens billed.", origin="otel-genai"
)
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _attr(
    "gen_ai.usage.output_tokens", "int", "96", "Completion tokens billed.", origin="otel-genai"
)
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _attr(
    "gen_ai.usage.cache_read.input_tokens",
    "int",
    "512",
    "Prompt tokens served from the provider's cache.",
    origin="otel-genai",
)
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _attr(
    "gen_ai.usage.cache_creation.input_tokens",
    "int",
    "1024",
    "Prompt tokens written to the provider's cache (Anthropic charges them above the input price).",
    origin="otel-genai",
)
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = _attr(
    "gen_ai.usage.reasoning.output_tokens",
    "int",
    "64",
    "Completion tokens spent on hidden reasoning.",
    origin="otel-genai",
)
GEN_AI_AGENT_NAME: Final = _attr(
    "gen_ai.agent.name", "string", '"researcher"', "Agent the span belongs to.", origin="otel-genai"
)
GEN_AI_AGENT_ID: Final = _attr(
    "gen_ai.agent.id",
    "string",
    '"supervisor_graph:researcher"',
    "Stable id of the agent within its workflow.",
    origin="otel-genai",
)
GEN_AI_WORKFLOW_NAME: Final = _attr(
    "gen_ai.workflow.name",
    "string",
    '"supervisor_graph"',
    "Name of the multi-agent workflow (graph or crew).",
    origin="otel-genai",
)
GEN_AI_CONVERSATION_ID: Final = _attr(
    "gen_ai.conversation.id",
    "string",
    '"thread-42"',
    "Conversation or thread the run belongs to (LangGraph thread id).",
    origin="otel-genai",
)
GEN_AI_TOOL_NAME: Final = _attr(
    "gen_ai.tool.name", "string", '"web_search"', "Tool executed.", origin="otel-genai"
)
GEN_AI_TOOL_CALL_ID: Final = _attr(
    "gen_ai.tool.call.id", "string", '"call_7Yx2"', "Id of the tool call.", origin="otel-genai"
)

GEN_AI_INPUT_MESSAGES: Final = _attr(
    "gen_ai.input.messages",
    "string",
    '\'[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]\'',
    "Prompt messages as JSON (opt-in content capture; capped, images replaced).",
    origin="otel-genai",
)
GEN_AI_OUTPUT_MESSAGES: Final = _attr(
    "gen_ai.output.messages",
    "string",
    '\'[{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}]\'',
    "Completion messages as JSON (opt-in content capture; capped).",
    origin="otel-genai",
)
GEN_AI_SYSTEM_INSTRUCTIONS: Final = _attr(
    "gen_ai.system_instructions",
    "string",
    '\'[{"type": "text", "content": "You are terse."}]\'',
    "System instructions as JSON (opt-in content capture; capped).",
    origin="otel-genai",
)
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = _attr(
    "gen_ai.embeddings.dimension.count",
    "int",
    "1536",
    "Dimensions of the embeddings returned.",
    origin="otel-genai",
)
GEN_AI_TOOL_TYPE: Final = _attr(
    "gen_ai.tool.type", "string", '"function"', "Kind of tool executed.", origin="otel-genai"
)
GEN_AI_TOOL_CALL_ARGUMENTS: Final = _attr(
    "gen_ai.tool.call.arguments",
    "string",
    '\'{"query": "weather"}\'',
    "Arguments of the tool call (opt-in content capture; capped).",
    origin="otel-genai",
)
GEN_AI_TOOL_CALL_RESULT: Final = _attr(
    "gen_ai.tool.call.result",
    "string",
    '"Sunny, 21 °C"',
    "Result of the tool call (opt-in content capture; capped).",
    origin="otel-genai",
)
GEN_AI_TOKEN_TYPE: Final = _attr(
    "gen_ai.token.type",
    "string",
    '"input"',
    "input or output: which tokens a gen_ai.client.token.usage point counts.",
    origin="otel-genai",
    scopes=("metric",),
)

# --- Open GenAI handoff proposal ------------------------------------------------------------
GEN_AI_AGENT_HANDOFF_SOURCE_NAME: Final = _attr(
    "gen_ai.agent.handoff.source.name",
    "string",
    '"supervisor"',
    "Agent that handed work over (on the receiving agent's span).",
    origin="genai-proposal",
    scopes=("span", "event"),
)
GEN_AI_AGENT_HANDOFF_TARGET_NAME: Final = _attr(
    "gen_ai.agent.handoff.target.name",
    "string",
    '"researcher"',
    "Agent that received the work.",
    origin="genai-proposal",
    scopes=("span", "event"),
)

# --- Open GenAI workflow node proposal (invoke_node) -----------------------------------------
GEN_AI_NODE_NAME: Final = _attr(
    "gen_ai.node.name",
    "string",
    '"classify_request"',
    "Workflow step that is not an agent (a CrewAI flow method), on invoke_node spans.",
    origin="genai-proposal",
)

# --- AgentMesh: run -------------------------------------------------------------------------
AGENTMESH_RUN_ID: Final = _attr(
    "agentmesh.run.id",
    "string",
    '"5f0c9a6e2b7d4c1e9a3f8b2d6e4c1a07"',
    "One execution of a workflow; spans of every process in the run share it.",
    origin="agentmesh",
    scopes=("span", "baggage"),
)
AGENTMESH_RUN_PAUSED: Final = _attr(
    "agentmesh.run.paused",
    "boolean",
    "True",
    "On a run's workflow span: the run stopped to wait for input (a CrewAI flow's human "
    "feedback, a LangGraph interrupt), not failed; the run that resumes it names it in "
    "`agentmesh.resume.from_run_id`.",
    origin="agentmesh",
)
AGENTMESH_RUN_RESUMED: Final = _attr(
    "agentmesh.run.resumed",
    "boolean",
    "True",
    "On a run's workflow span: the run continues its conversation where the previous run left "
    "off (a LangGraph thread resumed with `Command(resume=…)` or no input, a CrewAI flow "
    "resumed after feedback). The collector links it to the conversation's previous run when "
    "`agentmesh.resume.from_run_id` is absent (the pause happened in another process).",
    origin="agentmesh",
)
AGENTMESH_RUN_TASK_CLASS: Final = _attr(
    "agentmesh.run.task_class",
    "string",
    '"research"',
    "Kind of task, for routing and baselines.",
    origin="agentmesh",
    scopes=("span", "baggage"),
)
AGENTMESH_RUN_BUDGET_USD: Final = _attr(
    "agentmesh.run.budget_usd",
    "double",
    "0.5",
    "Spending cap of the run in US dollars.",
    origin="agentmesh",
    scopes=("span", "baggage"),
)
AGENTMESH_FRAMEWORK: Final = _attr(
    "agentmesh.framework",
    "string",
    '"langgraph"',
    "Agent framework that produced the span.",
    origin="agentmesh",
)
AGENTMESH_LANGGRAPH_NODE: Final = _attr(
    "agentmesh.langgraph.node",
    "string",
    '"researcher"',
    "LangGraph node that ran.",
    origin="agentmesh",
)
AGENTMESH_LANGGRAPH_STEP: Final = _attr(
    "agentmesh.langgraph.step",
    "int",
    "3",
    "LangGraph superstep the node ran in.",
    origin="agentmesh",
)

# --- AgentMesh: cost ------------------------------------------------------------------------
AGENTMESH_COST_USD: Final = _attr(
    "agentmesh.cost.usd",
    "double",
    "0.000412",
    "Cost of the call in US dollars, from the price catalog.",
    origin="agentmesh",
)

# --- AgentMesh: handoff ---------------------------------------------------------------------
AGENTMESH_HANDOFF_KIND: Final = _attr(
    "agentmesh.handoff.kind",
    "string",
    '"edge"',
    "How the work crossed: edge, conditional, command, send, delegation, task_context.",
    origin="agentmesh",
    scopes=("span", "event"),
)
AGENTMESH_HANDOFF_CONTEXT_DIGEST: Final = _attr(
    "agentmesh.handoff.context.digest",
    "string",
    '"sha256:9f2c…"',
    "Digest of the context (state) that crossed the handoff.",
    origin="agentmesh",
    scopes=("span", "event"),
)
AGENTMESH_HANDOFF_CONTEXT_SIZE: Final = _attr(
    "agentmesh.handoff.context.size",
    "int",
    "2048",
    "Size in bytes of the context that crossed, serialised as JSON.",
    origin="agentmesh",
    scopes=("span", "event"),
)
AGENTMESH_HANDOFF_CHECKPOINT_ID: Final = _attr(
    "agentmesh.handoff.checkpoint.id",
    "string",
    '"1f0a3c2e-…"',
    "Checkpoint taken at the handoff, when one was.",
    origin="agentmesh",
    scopes=("span", "event"),
)
AGENTMESH_HANDOFF_CHECKPOINT_STORE: Final = _attr(
    "agentmesh.handoff.checkpoint.store",
    "string",
    '"duckdb"',
    "Store of the handoff checkpoint AgentMesh wrote (memory, duckdb, redis, postgres); absent "
    "when the checkpoint id is the graph's own (LangGraph checkpointer).",
    origin="agentmesh",
    scopes=("span", "event"),
)
AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL: Final = _attr(
    "agentmesh.handoff.checkpoint.store_url",
    "string",
    '"redis://:***@cache.internal:6379/0"',
    "Where the checkpoint is stored: the store's URL, password masked (memory:// for an "
    "in-process store, whose checkpoints are gone once the process exits; a DuckDB file by its "
    "absolute path). Beside the checkpoint id (AgentMesh's store or the graph's checkpointer), "
    "and on the workflow span of a run whose checkpoints are stored; resume plans name it.",
    origin="agentmesh",
    scopes=("span", "event"),
)
"""Where a run's checkpoints live (``agentmesh resume`` checks it before running the app).

Set on handoff spans and events next to :data:`AGENTMESH_HANDOFF_CHECKPOINT_ID` (from the
handoff checkpoint store, or from the graph's checkpointer when AgentMesh knows its kind: its
own savers, LangGraph's ``InMemorySaver``), and on the workflow span of a LangGraph run whose
graph has such a checkpointer or of a crew with task checkpoints. Never carries a password.
"""

# --- AgentMesh: routing ---------------------------------------------------------------------
AGENTMESH_ROUTE_DECISION_ID: Final = _attr(
    "agentmesh.route.decision_id",
    "string",
    '"d-7c1e"',
    "Id of the routing decision this call follows.",
    origin="agentmesh",
    scopes=("span", "baggage"),
)
AGENTMESH_ROUTE_POLICY: Final = _attr(
    "agentmesh.route.policy", "string", '"utility"', "Policy that decided.", origin="agentmesh"
)
AGENTMESH_ROUTE_MODE: Final = _attr(
    "agentmesh.route.mode",
    "string",
    '"shadow"',
    "shadow (recorded only) or enforce (applied).",
    origin="agentmesh",
)
AGENTMESH_ROUTE_REQUESTED_MODEL: Final = _attr(
    "agentmesh.route.requested_model",
    "string",
    '"gpt-4o"',
    "Model the app asked for before routing.",
    origin="agentmesh",
)
AGENTMESH_ROUTE_CANDIDATES: Final = _attr(
    "agentmesh.route.candidates",
    "string[]",
    '["gpt-4o", "gpt-4o-mini"]',
    "Models considered.",
    origin="agentmesh",
)
AGENTMESH_ROUTE_SCORES: Final = _attr(
    "agentmesh.route.scores",
    "double[]",
    "[0.61, 0.74]",
    "Score of each candidate, in candidate order.",
    origin="agentmesh",
)
AGENTMESH_ROUTE_CHOSEN: Final = _attr(
    "agentmesh.route.chosen", "string", '"gpt-4o-mini"', "Model chosen.", origin="agentmesh"
)
AGENTMESH_ROUTE_REASON: Final = _attr(
    "agentmesh.route.reason",
    "string",
    '"cheapest above quality floor"',
    "Why it was chosen, for people.",
    origin="agentmesh",
)
AGENTMESH_ROUTE_FALLBACK_FROM: Final = _attr(
    "agentmesh.route.fallback.from",
    "string",
    '"gpt-4o"',
    "Model whose call failed, on an agentmesh.route.fallback event (with error.type).",
    origin="agentmesh",
    scopes=("event",),
)
AGENTMESH_ROUTE_FALLBACK_TO: Final = _attr(
    "agentmesh.route.fallback.to",
    "string",
    '"gpt-4o-mini"',
    "Model tried next, on an agentmesh.route.fallback event.",
    origin="agentmesh",
    scopes=("event",),
)
AGENTMESH_ROUTE_BUDGET_USD: Final = _attr(
    "agentmesh.route.budget_usd",
    "double",
    "0.002",
    "Most one model call may cost, in USD: the router passes over candidates expected to cost "
    "more (set with agentmesh.instrumentation.route_budget.call_budget).",
    origin="agentmesh",
    scopes=("baggage",),
)
AGENTMESH_ROUTE_TASK_CLASS: Final = _attr(
    "agentmesh.route.task_class",
    "string",
    '"triage"',
    "Task class the router saw for this call (annotation, framework step or baggage).",
    origin="agentmesh",
)
AGENTMESH_ROUTE_FEATURES: Final = _attr(
    "agentmesh.route.features",
    "string",
    '"{\\"chars\\": 812, \\"cluster\\": 7}"',
    "Content-free prompt features the policy used, as compact JSON (counts, flags, prompt "
    "cluster); never prompt text.",
    origin="agentmesh",
)
AGENTMESH_ROUTE_TABLE_VERSION: Final = _attr(
    "agentmesh.route.table_version",
    "int",
    "42",
    "Version of the route table the decision used (0: the bundled defaults).",
    origin="agentmesh",
)
AGENTMESH_FEEDBACK_COMMENT: Final = _attr(
    "agentmesh.feedback.comment",
    "string",
    '"wrong unit in the answer"',
    "Free-text comment of an explicit feedback (on the agentmesh.feedback span).",
    origin="agentmesh",
)
AGENTMESH_FEEDBACK_SCORE: Final = _attr(
    "agentmesh.feedback.score",
    "double",
    "0.8",
    "Explicit quality score of a call's outcome, in [0, 1], set by the app or an evaluator; "
    "the router learns from it.",
    origin="agentmesh",
)

# --- AgentMesh: providers and frameworks ---------------------------------------------------
GEN_AI_REQUEST_TOP_K: Final = _attr(
    "gen_ai.request.top_k",
    "double",
    "40.0",
    "Top-k sampling bound asked for (Anthropic's top_k).",
    origin="otel-genai",
)
AGENTMESH_UPSTREAM_PROVIDER: Final = _attr(
    "agentmesh.upstream.provider",
    "string",
    '"Anthropic"',
    "Provider a router (OpenRouter) forwarded the call to.",
    origin="agentmesh",
)
AGENTMESH_USAGE_ESTIMATED: Final = _attr(
    "agentmesh.usage.estimated",
    "boolean",
    "True",
    "Token counts (and cost) were estimated: the provider reported no usage (a stream "
    "without stream_options.include_usage).",
    origin="agentmesh",
)
AGENTMESH_CALL_ENDED_AT_EXIT: Final = _attr(
    "agentmesh.call.ended_at_exit",
    "boolean",
    "True",
    "A provider call still open when the application exited (a stream it stopped reading and "
    "never closed) was ended then; the span ends when the call was last seen active and keeps "
    "what was read.",
    origin="agentmesh",
)
AGENTMESH_CONTENT_TRUNCATED: Final = _attr(
    "agentmesh.content.truncated",
    "boolean",
    "True",
    "Whether captured content was cut to the size cap.",
    origin="agentmesh",
)
AGENTMESH_HANDOFF_CONTENT: Final = _attr(
    "agentmesh.handoff.content",
    "string",
    '\'{"task": "Explain…"}\'',
    "The context that crossed, as JSON (opt-in content capture; capped).",
    origin="agentmesh",
    scopes=("span", "event"),
)
AGENTMESH_LANGGRAPH_CHECKPOINT_NS: Final = _attr(
    "agentmesh.langgraph.checkpoint_ns",
    "string",
    '"research_team:6c1f…"',
    "LangGraph checkpoint namespace of a subgraph's node.",
    origin="agentmesh",
)
AGENTMESH_LANGGRAPH_INTERRUPTED: Final = _attr(
    "agentmesh.langgraph.interrupted",
    "boolean",
    "True",
    "The node or run stopped at an interrupt, waiting for input.",
    origin="agentmesh",
)
AGENTMESH_LANGGRAPH_RESUMED: Final = _attr(
    "agentmesh.langgraph.resumed",
    "boolean",
    "True",
    "The run resumed an interrupted thread (Command(resume=…)).",
    origin="agentmesh",
)
AGENTMESH_RESUME_CHECKPOINT_ID: Final = _attr(
    "agentmesh.resume.checkpoint_id",
    "string",
    '"1f0c2a9e-7b1d-6c3e-8001-4b5f0d2e9a77"',
    "Checkpoint a resumed run continued from (its last good handoff; `agentmesh resume`).",
    origin="agentmesh",
)
AGENTMESH_RESUME_FROM_RUN_ID: Final = _attr(
    "agentmesh.resume.from_run_id",
    "string",
    '"run-5f1c0e2a"',
    "The failed, stopped or paused run a resumed run continues (`agentmesh resume`, a CrewAI "
    "flow resumed after human feedback, a LangGraph thread resumed after an interrupt in the "
    "process that saw it pause).",
    origin="agentmesh",
)
AGENTMESH_CREWAI_TASK_NAME: Final = _attr(
    "agentmesh.crewai.task.name",
    "string",
    '"research_task"',
    "CrewAI task an agent span executes.",
    origin="agentmesh",
)
AGENTMESH_CREWAI_TASK_ID: Final = _attr(
    "agentmesh.crewai.task.id",
    "string",
    '"3f1c…"',
    "Id of that CrewAI task.",
    origin="agentmesh",
)
AGENTMESH_NORMALIZED_FROM: Final = _attr(
    "agentmesh.normalized_from",
    "string",
    '"openinference"',
    "Foreign convention the collector rewrote the span from (openinference, openllmetry…).",
    origin="agentmesh",
)

# --- AgentMesh: progress and state digests ---------------------------------------------------
AGENTMESH_STEP_STARTED: Final = _attr(
    "agentmesh.step.started",
    "string",
    '"5b8aa5a2d2c872e8"',
    "On a start marker (a zero-length span exported when a step starts, so the collector "
    "sees steps that never end): the id of the step span that started (the marker's parent).",
    origin="agentmesh",
)
AGENTMESH_TOOL_ARGUMENTS_DIGEST: Final = _attr(
    "agentmesh.tool.call.arguments.digest",
    "string",
    '"sha256:1c9e…"',
    "Digest of a tool call's arguments (recorded without content capture: loop detection "
    "compares calls by it).",
    origin="agentmesh",
)
AGENTMESH_TOOL_RESULT_DIGEST: Final = _attr(
    "agentmesh.tool.call.result.digest",
    "string",
    '"sha256:77ab…"',
    "Digest of a tool call's result (the same call with the same result brings no new state).",
    origin="agentmesh",
)
AGENTMESH_HANDOFF_RECEIVED_DIGEST: Final = _attr(
    "agentmesh.handoff.context.received_digest",
    "string",
    '"sha256:9f2c…"',
    "Digest of the context the receiving agent actually got; differs from "
    "agentmesh.handoff.context.digest when context was lost at the handoff.",
    origin="agentmesh",
    scopes=("span", "event"),
)
HTTP_RESPONSE_STATUS_CODE: Final = _attr(
    "http.response.status_code",
    "int",
    "429",
    "HTTP status of a failed provider call (429: rate limited).",
    origin="otel",
)

# --- AgentMesh: detection -------------------------------------------------------------------
AGENTMESH_DETECTION_ID: Final = _attr(
    "agentmesh.detection.id",
    "string",
    '"det-3b9e…"',
    "Id of a detection.",
    origin="agentmesh",
    scopes=("event",),
)
AGENTMESH_DETECTION_TYPE: Final = _attr(
    "agentmesh.detection.type",
    "string",
    '"handoff_loop"',
    "Failure mode detected.",
    origin="agentmesh",
    scopes=("event",),
)
AGENTMESH_DETECTION_SEVERITY: Final = _attr(
    "agentmesh.detection.severity",
    "string",
    '"error"',
    "info, warning, error or critical.",
    origin="agentmesh",
    scopes=("event",),
)
AGENTMESH_DETECTION_AGENT: Final = _attr(
    "agentmesh.detection.agent",
    "string",
    '"researcher"',
    "Agent the detection is about, when one is.",
    origin="agentmesh",
    scopes=("event",),
)
AGENTMESH_DETECTION_SPAN_IDS: Final = _attr(
    "agentmesh.detection.span_ids",
    "string[]",
    '["a1b2c3d4e5f60718"]',
    "Spans that show the failure.",
    origin="agentmesh",
    scopes=("event",),
)
AGENTMESH_DETECTION_EXPLANATION: Final = _attr(
    "agentmesh.detection.explanation",
    "string",
    '"cycle supervisor → researcher repeated 6 times (bound 3)"',
    "What was seen, for people.",
    origin="agentmesh",
    scopes=("event",),
)

METRIC_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # noqa: S105 - not a secret
"""Histogram of tokens per call (``{token}``), by ``gen_ai.token.type``."""

METRIC_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
"""Histogram of call durations in seconds (``s``)."""

TOKEN_USAGE_BUCKETS: Final[tuple[float, ...]] = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
"""Bucket boundaries the GenAI conventions advise for ``gen_ai.client.token.usage``."""

OPERATION_DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""Bucket boundaries the GenAI conventions advise for ``gen_ai.client.operation.duration``."""

EVENT_FALLBACK: Final = "agentmesh.route.fallback"
"""Name of the span event recording a fallback to another model after a provider error."""

EVENT_HANDOFF: Final = "agentmesh.handoff"
"""Name of the span event recording a handoff (carries the ``*.handoff.*`` attributes)."""

EVENT_DETECTION: Final = "agentmesh.detection"
"""Name of the span event recording a detection (carries the ``agentmesh.detection.*``)."""

ATTRIBUTES: Final[dict[str, AttributeSpec]] = {spec.name: spec for spec in _REGISTRY}
"""Every registered name, in declaration order."""

BAGGAGE_KEYS: Final[tuple[str, ...]] = tuple(
    spec.name for spec in _REGISTRY if "baggage" in spec.scopes
)
"""Names that travel as W3C baggage to child calls and other processes."""
