"""Names other instrumentations write: the inputs the normaliser reads, never written by us.

These are not part of the AgentMesh span contract (:mod:`agentmesh.core.semconv`); they are
the conventions of OpenInference, OpenLLMetry (Traceloop) and older OpenTelemetry GenAI
releases, spelled once here so the normalisers share them.
"""

from __future__ import annotations

from typing import Final

# --- Conventions (values of agentmesh.normalized_from) --------------------------------------
OPENINFERENCE: Final = "openinference"
OPENLLMETRY: Final = "openllmetry"
OTEL_GENAI: Final = "otel-genai"

# --- Frameworks -----------------------------------------------------------------------------
LANGGRAPH: Final = "langgraph"
LANGGRAPH_NODE_KEY: Final = "langgraph_node"
LANGGRAPH_STEP_KEY: Final = "langgraph_step"
LANGGRAPH_START_NODE: Final = "__start__"

# --- OpenInference --------------------------------------------------------------------------
OI_SPAN_KIND: Final = "openinference.span.kind"
OI_LLM_MODEL_NAME: Final = "llm.model_name"
OI_LLM_PROVIDER: Final = "llm.provider"
OI_LLM_SYSTEM: Final = "llm.system"
OI_TOKENS_PROMPT: Final = "llm.token_count.prompt"
OI_TOKENS_COMPLETION: Final = "llm.token_count.completion"
OI_TOKENS_TOTAL: Final = "llm.token_count.total"
OI_TOKENS_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
OI_TOKENS_CACHE_WRITE: Final = "llm.token_count.prompt_details.cache_write"
OI_TOKENS_REASONING: Final = "llm.token_count.completion_details.reasoning"
OI_INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"
OI_EMBEDDING_MODEL_NAME: Final = "embedding.model_name"
OI_TOOL_NAME: Final = "tool.name"
OI_TOOL_CALL_ID: Final = "tool_call.id"
OI_AGENT_NAME: Final = "agent.name"
OI_GRAPH_NODE_ID: Final = "graph.node.id"
OI_GRAPH_NODE_NAME: Final = "graph.node.name"
OI_METADATA: Final = "metadata"
OI_SESSION_ID: Final = "session.id"

OI_KIND_LLM: Final = "LLM"
OI_KIND_EMBEDDING: Final = "EMBEDDING"
OI_KIND_TOOL: Final = "TOOL"
OI_KIND_AGENT: Final = "AGENT"
OI_KIND_CHAIN: Final = "CHAIN"

# --- OpenLLMetry / Traceloop ----------------------------------------------------------------
TL_SPAN_KIND: Final = "traceloop.span.kind"
TL_ENTITY_NAME: Final = "traceloop.entity.name"
TL_WORKFLOW_NAME: Final = "traceloop.workflow.name"
TL_ASSOCIATION_PREFIX: Final = "traceloop.association.properties."
TL_LANGGRAPH_NODE: Final = TL_ASSOCIATION_PREFIX + LANGGRAPH_NODE_KEY
TL_LANGGRAPH_STEP: Final = TL_ASSOCIATION_PREFIX + LANGGRAPH_STEP_KEY
LLM_REQUEST_TYPE: Final = "llm.request.type"
LLM_USAGE_TOTAL_TOKENS: Final = "llm.usage.total_tokens"
LLM_USAGE_REASONING_TOKENS: Final = "llm.usage.reasoning_tokens"

TL_KIND_WORKFLOW: Final = "workflow"
TL_KIND_TASK: Final = "task"
TL_KIND_AGENT: Final = "agent"
TL_KIND_TOOL: Final = "tool"

# --- Older OpenTelemetry GenAI names --------------------------------------------------------
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD: Final = "gen_ai.usage.cache_read_input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD: Final = "gen_ai.usage.cache_creation_input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_TOKENS: Final = "gen_ai.usage.reasoning_tokens"
GEN_AI_WORKFLOW_NODES: Final = "gen_ai.workflow.nodes"

# Operation values other instrumentations use that AgentMesh counts as a chat call.
CHAT_LIKE_OPERATIONS: Final = frozenset({"chat", "text_completion", "generate_content"})
# llm.request.type values (OpenLLMetry) → contract operation.
REQUEST_TYPE_OPERATIONS: Final = {
    "chat": "chat",
    "completion": "chat",
    "embedding": "embeddings",
}

# Instrumentation scopes of the official OpenTelemetry GenAI instrumentations.
OTEL_GENAI_SCOPE_PREFIX: Final = "opentelemetry.instrumentation.genai."
OTEL_GENAI_LEGACY_SCOPE_SUFFIX: Final = "_v2"
# Instrumentation scopes of OpenLLMetry's instrumentations (and of other contrib packages).
OTEL_CONTRIB_SCOPE_PREFIX: Final = "opentelemetry.instrumentation."
