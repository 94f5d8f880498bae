"""OpenTelemetry GenAI spans (old and new names) and OpenLLMetry's, rewritten to the contract.

Old names are translated (``gen_ai.system`` → ``gen_ai.provider.name``,
``gen_ai.usage.prompt_tokens`` / ``completion_tokens`` → input / output tokens); a span without
``gen_ai.operation.name`` gets one from OpenLLMetry's ``llm.request.type`` or from its name
(``chat {model}``, ``invoke_agent {name}``…); ``text_completion`` and ``generate_content``
count as ``chat``. OpenLLMetry's ``traceloop.span.kind`` maps ``workflow`` to
``invoke_workflow``, ``agent`` to ``invoke_agent``, ``tool`` to ``execute_tool``, and a
``task`` that is a LangGraph node (its ``langgraph_node`` association property equals its
entity name) to ``invoke_agent`` named after the node. An ``invoke_agent`` span listing
``gen_ai.workflow.nodes`` is the graph itself and becomes ``invoke_workflow``. Chat and
embeddings spans without a cost are priced from the catalog.
"""

from __future__ import annotations

from typing import Final

from agentmesh.collector.model import Attributes, SpanRecord
from agentmesh.collector.normalize import _foreign as f
from agentmesh.collector.normalize._langgraph import mark_node, mark_workflow
from agentmesh.collector.normalize._pricing import Pricer
from agentmesh.collector.normalize._rewrite import Rewrite, as_int, as_str
from agentmesh.core import semconv

__all__ = ["NAMED_OPERATIONS", "convention_of", "normalize_genai"]

NAMED_OPERATIONS: Final = frozenset(
    {
        semconv.Operation.CHAT,
        semconv.Operation.EMBEDDINGS,
        semconv.Operation.EXECUTE_TOOL,
        semconv.Operation.INVOKE_AGENT,
        semconv.Operation.INVOKE_WORKFLOW,
        "text_completion",
        "generate_content",
    }
)
"""Operations recognised as the first word of a span name (``chat gpt-4o``)."""

_OPENLLMETRY_MARKERS: Final = (f.TL_SPAN_KIND, f.LLM_REQUEST_TYPE, f.LLM_USAGE_TOTAL_TOKENS)


def convention_of(span: SpanRecord) -> str:
    """Tell OpenLLMetry's spans from the official OpenTelemetry GenAI instrumentation's.

    Args:
        span: A span with GenAI attributes.

    Returns:
        :data:`~agentmesh.collector.normalize._foreign.OPENLLMETRY` or ``OTEL_GENAI``.
    """
    scope = span.scope_name
    if scope.startswith(f.OTEL_GENAI_SCOPE_PREFIX) or scope.endswith(
        f.OTEL_GENAI_LEGACY_SCOPE_SUFFIX
    ):
        return f.OTEL_GENAI
    attrs = span.attributes
    if any(marker in attrs for marker in _OPENLLMETRY_MARKERS):
        return f.OPENLLMETRY
    return f.OPENLLMETRY if scope.startswith(f.OTEL_CONTRIB_SCOPE_PREFIX) else f.OTEL_GENAI


def normalize_genai(span: SpanRecord, pricer: Pricer) -> SpanRecord:
    """Rewrite one span of the OpenTelemetry GenAI conventions (any release) or OpenLLMetry.

    Args:
        span: A span with GenAI or Traceloop attributes, or a GenAI span name.
        pricer: Prices calls that carry no cost.

    Returns:
        A new span with the contract's attributes added, or ``span`` itself when nothing
        needed adding.
    """
    rewrite = Rewrite(span, convention_of(span))
    attrs = span.attributes
    operation = _operation(span, rewrite)
    if operation is None:
        return span
    if operation in f.CHAT_LIKE_OPERATIONS or operation == semconv.Operation.EMBEDDINGS:
        _usage(span, rewrite)
        rewrite.price(pricer)
    elif operation == semconv.Operation.INVOKE_AGENT:
        if f.GEN_AI_WORKFLOW_NODES in attrs:  # OpenLLMetry's span of the whole graph
            name = as_str(attrs.get(semconv.GEN_AI_AGENT_NAME)) or span.name
            mark_workflow(rewrite, name, as_str(attrs.get(semconv.GEN_AI_PROVIDER_NAME)))
        else:
            rewrite.add(semconv.GEN_AI_AGENT_NAME, _named(span, operation))
    elif operation == semconv.Operation.EXECUTE_TOOL:
        rewrite.add(semconv.GEN_AI_TOOL_NAME, _named(span, operation))
    elif operation == semconv.Operation.INVOKE_WORKFLOW:
        rewrite.add(semconv.GEN_AI_WORKFLOW_NAME, _named(span, operation))
    if not rewrite.changed:
        return span  # already the contract: leave it untouched
    return rewrite.finish()


def _operation(span: SpanRecord, rewrite: Rewrite) -> str | None:
    attrs = span.attributes
    kind = as_str(attrs.get(f.TL_SPAN_KIND))
    if kind is not None and _traceloop_kind(span, rewrite, kind):
        return as_str(rewrite.attributes.get(semconv.GEN_AI_OPERATION_NAME))
    operation = as_str(attrs.get(semconv.GEN_AI_OPERATION_NAME))
    if operation is None:
        request_type = as_str(attrs.get(f.LLM_REQUEST_TYPE))
        if request_type is not None:
            operation = f.REQUEST_TYPE_OPERATIONS.get(request_type)
        if operation is None:
            first = span.name.partition(" ")[0]
            operation = first if first in NAMED_OPERATIONS else None
        if operation is None:
            return None
    if operation in f.CHAT_LIKE_OPERATIONS:
        rewrite.put(semconv.GEN_AI_OPERATION_NAME, semconv.Operation.CHAT)
    else:
        rewrite.add(semconv.GEN_AI_OPERATION_NAME, operation)
    return operation


def _traceloop_kind(span: SpanRecord, rewrite: Rewrite, kind: str) -> bool:
    attrs = span.attributes
    entity = as_str(attrs.get(f.TL_ENTITY_NAME)) or span.name
    if kind == f.TL_KIND_WORKFLOW:
        workflow = as_str(attrs.get(f.TL_WORKFLOW_NAME)) or entity
        framework = f.LANGGRAPH if f.TL_LANGGRAPH_NODE in attrs or _is_langgraph(span) else None
        mark_workflow(rewrite, workflow, framework)
        return True
    if kind == f.TL_KIND_AGENT:
        rewrite.put(semconv.GEN_AI_OPERATION_NAME, semconv.Operation.INVOKE_AGENT)
        rewrite.put(semconv.GEN_AI_AGENT_NAME, entity)
        return True
    if kind == f.TL_KIND_TOOL:
        rewrite.put(semconv.GEN_AI_OPERATION_NAME, semconv.Operation.EXECUTE_TOOL)
        rewrite.add(semconv.GEN_AI_TOOL_NAME, entity)
        return True
    if kind == f.TL_KIND_TASK:
        node = as_str(attrs.get(f.TL_LANGGRAPH_NODE))
        if node is not None and node == entity and node != f.LANGGRAPH_START_NODE:
            mark_node(rewrite, node, as_int(attrs.get(f.TL_LANGGRAPH_STEP)))
            return True
    return False


def _is_langgraph(span: SpanRecord) -> bool:
    value = span.attributes.get(f.TL_ASSOCIATION_PREFIX + "ls_integration")
    return value == f.LANGGRAPH or span.attributes.get(semconv.GEN_AI_PROVIDER_NAME) == f.LANGGRAPH


def _usage(span: SpanRecord, rewrite: Rewrite) -> None:
    attrs = rewrite.attributes
    system = as_str(attrs.get(f.GEN_AI_SYSTEM))
    rewrite.add(semconv.GEN_AI_PROVIDER_NAME, system.lower() if system else None)
    rewrite.add(semconv.GEN_AI_USAGE_INPUT_TOKENS, as_int(attrs.get(f.GEN_AI_USAGE_PROMPT_TOKENS)))
    rewrite.add(
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS, as_int(attrs.get(f.GEN_AI_USAGE_COMPLETION_TOKENS))
    )
    rewrite.add(
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        as_int(attrs.get(f.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD)),
    )
    rewrite.add(
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        _first_int(
            attrs,
            f.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD,
            f.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,  # opentelemetry-util-genai 1.x
        ),
    )
    rewrite.add(
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        _first_int(attrs, f.GEN_AI_USAGE_REASONING_TOKENS, f.LLM_USAGE_REASONING_TOKENS),
    )
    if semconv.GEN_AI_REQUEST_MODEL not in attrs and semconv.GEN_AI_RESPONSE_MODEL not in attrs:
        _, _, model = span.name.partition(" ")  # "chat gpt-4o-mini"
        rewrite.add(semconv.GEN_AI_REQUEST_MODEL, model or None)


def _first_int(attrs: Attributes, *names: str) -> int | None:
    for name in names:
        value = as_int(attrs.get(name))
        if value is not None:
            return value
    return None


def _named(span: SpanRecord, operation: str) -> str:
    prefix = operation + " "
    return span.name[len(prefix) :] if span.name.startswith(prefix) else span.name
