"""OpenInference (Arize Phoenix) spans, rewritten to the AgentMesh contract.

Dispatch is on ``openinference.span.kind``: ``LLM`` becomes ``chat`` (model, provider, tokens
and a cost from the catalog), ``EMBEDDING`` ``embeddings``, ``TOOL`` ``execute_tool``,
``AGENT`` ``invoke_agent``. A ``CHAIN`` is a LangGraph node (``invoke_agent`` named after the
node) when its LangChain ``metadata`` names a ``langgraph_node`` equal to the span's name (the
node's helpers, such as a conditional edge's ``route``, carry their node's metadata under
another name and stay as they are), an agent when it carries ``graph.node.id``, and the
workflow when it is the graph itself (LangGraph metadata without a node).
"""

from __future__ import annotations

import json
from typing import cast

from agentmesh.collector.model import Attributes, SpanRecord
from agentmesh.collector.normalize import _foreign as f
from agentmesh.collector.normalize._langgraph import mark_node, mark_workflow, metadata_node
from agentmesh.collector.normalize._pricing import Pricer
from agentmesh.collector.normalize._rewrite import Rewrite, as_int, as_str
from agentmesh.core import semconv

__all__ = ["normalize_openinference"]

_LANGGRAPH_ROOT = "LangGraph"


def normalize_openinference(span: SpanRecord, kind: str, pricer: Pricer) -> SpanRecord:
    """Rewrite one OpenInference span.

    Args:
        span: A span carrying ``openinference.span.kind``.
        kind: That attribute's value.
        pricer: Prices LLM calls that carry no cost.

    Returns:
        A new span with the contract's attributes added, or ``span`` itself when it maps to
        nothing the contract names.
    """
    rewrite = Rewrite(span, f.OPENINFERENCE)
    attrs = span.attributes
    kind = kind.upper()
    if kind == f.OI_KIND_LLM:
        model = as_str(attrs.get(f.OI_LLM_MODEL_NAME)) or _requested_model(attrs)
        _llm(rewrite, semconv.Operation.CHAT, model)
        rewrite.price(pricer)
    elif kind == f.OI_KIND_EMBEDDING:
        model = as_str(attrs.get(f.OI_EMBEDDING_MODEL_NAME)) or as_str(
            attrs.get(f.OI_LLM_MODEL_NAME)
        )
        _llm(rewrite, semconv.Operation.EMBEDDINGS, model)
        rewrite.price(pricer)
    elif kind == f.OI_KIND_TOOL:
        rewrite.put(semconv.GEN_AI_OPERATION_NAME, semconv.Operation.EXECUTE_TOOL)
        rewrite.add(semconv.GEN_AI_TOOL_NAME, as_str(attrs.get(f.OI_TOOL_NAME)) or span.name)
        rewrite.add(semconv.GEN_AI_TOOL_CALL_ID, as_str(attrs.get(f.OI_TOOL_CALL_ID)))
    elif kind == f.OI_KIND_AGENT:
        rewrite.put(semconv.GEN_AI_OPERATION_NAME, semconv.Operation.INVOKE_AGENT)
        rewrite.put(semconv.GEN_AI_AGENT_NAME, _agent_name(span))
    elif kind == f.OI_KIND_CHAIN:
        if not _chain(rewrite, span):
            return span
    else:
        return span
    rewrite.add(semconv.GEN_AI_CONVERSATION_ID, as_str(attrs.get(f.OI_SESSION_ID)))
    return rewrite.finish()


def _llm(rewrite: Rewrite, operation: str, model: str | None) -> None:
    attrs = rewrite.attributes
    rewrite.put(semconv.GEN_AI_OPERATION_NAME, operation)
    rewrite.add(semconv.GEN_AI_REQUEST_MODEL, model)
    rewrite.add(semconv.GEN_AI_RESPONSE_MODEL, model)
    provider = as_str(attrs.get(f.OI_LLM_PROVIDER)) or as_str(attrs.get(f.OI_LLM_SYSTEM))
    rewrite.add(semconv.GEN_AI_PROVIDER_NAME, provider.lower() if provider else None)
    prompt = as_int(attrs.get(f.OI_TOKENS_PROMPT))
    completion = as_int(attrs.get(f.OI_TOKENS_COMPLETION))
    total = as_int(attrs.get(f.OI_TOKENS_TOTAL))
    if prompt is None and total is not None:
        prompt = max(0, total - (completion or 0))  # some releases record only total/completion
    rewrite.add(semconv.GEN_AI_USAGE_INPUT_TOKENS, prompt)
    rewrite.add(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, completion)
    rewrite.add(
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, as_int(attrs.get(f.OI_TOKENS_CACHE_READ))
    )
    rewrite.add(
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, as_int(attrs.get(f.OI_TOKENS_CACHE_WRITE))
    )
    rewrite.add(
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, as_int(attrs.get(f.OI_TOKENS_REASONING))
    )


def _requested_model(attrs: Attributes) -> str | None:
    """The model the call asked for, from its invocation parameters (JSON).

    A failed call has no ``llm.model_name`` (it comes from the response); without this its
    errors would be filed under no model, and no breaker could open for it.
    """
    text = as_str(attrs.get(f.OI_INVOCATION_PARAMETERS))
    if text is None:
        return None
    try:
        parameters: object = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parameters, dict):
        return None
    found = cast("dict[str, object]", parameters)
    return as_str(found.get("model")) or as_str(found.get("model_name"))


def _agent_name(span: SpanRecord) -> str:
    attrs = span.attributes
    node = metadata_node(attrs.get(f.OI_METADATA))
    return (
        as_str(attrs.get(f.OI_AGENT_NAME))
        or as_str(attrs.get(f.OI_GRAPH_NODE_NAME))
        or as_str(attrs.get(f.OI_GRAPH_NODE_ID))
        or (node[0] if node is not None else None)
        or span.name
    )


def _chain(rewrite: Rewrite, span: SpanRecord) -> bool:
    attrs = span.attributes
    node = metadata_node(attrs.get(f.OI_METADATA))
    if node is not None:
        if node[0] != span.name:
            return False  # a helper inside the node (route, ChannelWrite…), not the node
        mark_node(rewrite, node[0], node[1])
        return True
    if f.OI_GRAPH_NODE_ID in attrs:
        rewrite.put(semconv.GEN_AI_OPERATION_NAME, semconv.Operation.INVOKE_AGENT)
        rewrite.put(semconv.GEN_AI_AGENT_NAME, _agent_name(span))
        return True
    metadata = attrs.get(f.OI_METADATA)
    if (
        isinstance(metadata, str)
        and f.LANGGRAPH in metadata
        and f.LANGGRAPH_NODE_KEY not in metadata
    ) or (span.parent_span_id is None and span.name == _LANGGRAPH_ROOT):
        mark_workflow(rewrite, span.name, f.LANGGRAPH)  # the graph itself: no node metadata
        return True
    return False
