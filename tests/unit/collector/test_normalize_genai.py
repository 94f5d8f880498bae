"""Spans of the official OpenTelemetry GenAI instrumentation, and old GenAI names, normalised.

``TRACE`` is what ``opentelemetry-instrumentation-genai-openai`` and
``opentelemetry-instrumentation-genai-langchain`` 1.3b0 exported for a LangGraph supervisor app
whose nodes were declared with ``metadata={"agent_name": node}`` (without it the LangChain
instrumentation records no span per node), captured by running them.
"""

from __future__ import annotations

from agentmesh.collector.graph import GraphBuilder
from agentmesh.collector.model import AttributeValue, SpanRecord
from agentmesh.collector.normalize import SpanNormalizer
from agentmesh.core import semconv
from agentmesh.router import default_catalog

TRACE_ID = "4f" * 16
Row = tuple[str, str, str, str | None, int, int, dict[str, AttributeValue]]


def records(rows: list[Row]) -> list[SpanRecord]:
    """Rows (name, scope, span id, parent id, start µs, end µs, attributes) as span records."""
    return [
        SpanRecord(
            trace_id=TRACE_ID,
            span_id=span_id,
            parent_span_id=parent,
            name=name,
            kind="internal",
            start_ns=start * 1000,
            end_ns=end * 1000,
            attributes=attributes,
            scope_name=scope,
        )
        for name, scope, span_id, parent, start, end, attributes in rows
    ]


def by_name(spans: list[SpanRecord], name: str) -> list[SpanRecord]:
    """The spans called ``name``, in order."""
    return [span for span in spans if span.name == name]


# Captured: see the module docstring.
TRACE: list[Row] = [
    (
        "invoke_workflow LangGraph",
        "opentelemetry.instrumentation.genai.langchain",
        "688ec31e58e1e9a0",
        None,
        0,
        16644,
        {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "LangGraph"},
    ),
    (
        "invoke_agent supervisor",
        "opentelemetry.instrumentation.genai.langchain",
        "f5b5b4cfa2fd9c48",
        "688ec31e58e1e9a0",
        993,
        9283,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "supervisor"},
    ),
    (
        "chat gpt-4o-mini",
        "opentelemetry.instrumentation.genai.openai",
        "70312e6c8a53d438",
        "f5b5b4cfa2fd9c48",
        1129,
        9049,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "server.address": "127.0.0.1",
            "server.port": 8080,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000011",
            "gen_ai.usage.input_tokens": 3,
            "gen_ai.usage.output_tokens": 7,
            "openai.response.system_fingerprint": "fp_fake",
        },
    ),
    (
        "invoke_agent worker_a",
        "opentelemetry.instrumentation.genai.langchain",
        "a996f3d163cd808c",
        "688ec31e58e1e9a0",
        9772,
        11411,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "worker_a"},
    ),
    (
        "chat gpt-4o-mini",
        "opentelemetry.instrumentation.genai.openai",
        "761c9d56f9968bd1",
        "a996f3d163cd808c",
        9851,
        11344,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "server.address": "127.0.0.1",
            "server.port": 8080,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000012",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 7,
            "openai.response.system_fingerprint": "fp_fake",
        },
    ),
    (
        "invoke_agent supervisor",
        "opentelemetry.instrumentation.genai.langchain",
        "aeeec26c1a28d995",
        "688ec31e58e1e9a0",
        11701,
        13163,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "supervisor"},
    ),
    (
        "chat gpt-4o-mini",
        "opentelemetry.instrumentation.genai.openai",
        "f77d6a8e01080b0c",
        "aeeec26c1a28d995",
        11768,
        13010,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "server.address": "127.0.0.1",
            "server.port": 8080,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000013",
            "gen_ai.usage.input_tokens": 18,
            "gen_ai.usage.output_tokens": 7,
            "openai.response.system_fingerprint": "fp_fake",
        },
    ),
    (
        "invoke_agent worker_b",
        "opentelemetry.instrumentation.genai.langchain",
        "061d816abd7ee080",
        "688ec31e58e1e9a0",
        13472,
        14747,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "worker_b"},
    ),
    (
        "chat gpt-4o-mini",
        "opentelemetry.instrumentation.genai.openai",
        "ea5ab37b11796860",
        "061d816abd7ee080",
        13534,
        14685,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "server.address": "127.0.0.1",
            "server.port": 8080,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000014",
            "gen_ai.usage.input_tokens": 24,
            "gen_ai.usage.output_tokens": 7,
            "openai.response.system_fingerprint": "fp_fake",
        },
    ),
    (
        "invoke_agent supervisor",
        "opentelemetry.instrumentation.genai.langchain",
        "c0f5c72b9fae37e7",
        "688ec31e58e1e9a0",
        15043,
        16456,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "supervisor"},
    ),
    (
        "chat gpt-4o-mini",
        "opentelemetry.instrumentation.genai.openai",
        "3aca8366ef3223fb",
        "c0f5c72b9fae37e7",
        15112,
        16266,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "server.address": "127.0.0.1",
            "server.port": 8080,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000015",
            "gen_ai.usage.input_tokens": 32,
            "gen_ai.usage.output_tokens": 7,
            "openai.response.system_fingerprint": "fp_fake",
        },
    ),
]


def test_chat_spans_get_only_a_cost() -> None:
    originals = records(TRACE)
    spans = SpanNormalizer().normalize(originals)
    chats = by_name(spans, "chat gpt-4o-mini")
    assert len(chats) == 5
    first, original = chats[0], by_name(originals, "chat gpt-4o-mini")[0]
    assert first.float_attr(semconv.AGENTMESH_COST_USD) == default_catalog().cost_usd(
        "gpt-4o-mini", 3, 7
    )
    assert first.str_attr(semconv.AGENTMESH_NORMALIZED_FROM) == "otel-genai"
    added = set(first.attributes) - set(original.attributes)
    assert added == {semconv.AGENTMESH_COST_USD, semconv.AGENTMESH_NORMALIZED_FROM}


def test_agent_and_workflow_spans_already_follow_the_contract() -> None:
    originals = records(TRACE)
    spans = SpanNormalizer().normalize(originals)
    for before, after in zip(originals, spans, strict=True):
        if before.operation != semconv.Operation.CHAT:
            assert after is before


def test_the_graph_builder_infers_handoffs_and_attributes_calls() -> None:
    builder = GraphBuilder()
    builder.add(SpanNormalizer().normalize(records(TRACE)))
    graph = builder.get(TRACE_ID)
    assert graph is not None
    assert [(h.source, h.target) for h in graph.handoffs] == [
        ("supervisor", "worker_a"),
        ("worker_a", "supervisor"),
        ("supervisor", "worker_b"),
        ("worker_b", "supervisor"),
    ]
    assert graph.agents["worker_a"].llm_calls == 1
    assert graph.agents["worker_a"].cost_usd > 0


def test_old_names_and_span_names_are_translated() -> None:
    chat, agent, tool = SpanNormalizer().normalize(
        records(
            [
                ("chat gpt-4o-mini", "opentelemetry.instrumentation.openai_v2", "1" * 16,
                 None, 0, 1,
                 {"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 20,
                  "gen_ai.usage.completion_tokens": 2}),
                ("invoke_agent researcher", "some.framework", "2" * 16, None, 1, 2, {}),
                ("execute_tool search", "some.framework", "3" * 16, None, 2, 3,
                 {"gen_ai.operation.name": "execute_tool"}),
            ]
        )
    )  # fmt: skip
    assert chat.operation == semconv.Operation.CHAT
    assert chat.str_attr(semconv.GEN_AI_PROVIDER_NAME) == "openai"
    assert chat.str_attr(semconv.GEN_AI_REQUEST_MODEL) == "gpt-4o-mini"
    assert chat.int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) == 20
    assert chat.int_attr(semconv.GEN_AI_USAGE_OUTPUT_TOKENS) == 2
    assert chat.float_attr(semconv.AGENTMESH_COST_USD) == default_catalog().cost_usd(
        "gpt-4o-mini", 20, 2
    )
    assert chat.str_attr(semconv.AGENTMESH_NORMALIZED_FROM) == "otel-genai"
    assert agent.operation == semconv.Operation.INVOKE_AGENT
    assert agent.str_attr(semconv.GEN_AI_AGENT_NAME) == "researcher"
    assert tool.str_attr(semconv.GEN_AI_TOOL_NAME) == "search"


def test_text_completion_counts_as_chat() -> None:
    (span,) = SpanNormalizer().normalize(
        records(
            [
                ("text_completion gpt-4o-mini", "x", "1" * 16, None, 0, 1,
                 {"gen_ai.operation.name": "text_completion",
                  "gen_ai.request.model": "gpt-4o-mini",
                  "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 5}),
            ]
        )
    )  # fmt: skip
    assert span.operation == semconv.Operation.CHAT
    assert span.float_attr(semconv.AGENTMESH_COST_USD) is not None


def test_cache_write_and_reasoning_token_names_of_current_releases() -> None:
    # opentelemetry-util-genai 1.x writes cache writes as gen_ai.usage.cache_write.input_tokens;
    # OpenLLMetry 0.62 writes gen_ai.usage.reasoning_tokens (llm.usage.reasoning_tokens before).
    util_genai, openllmetry, older = SpanNormalizer().normalize(
        records(
            [
                ("chat claude-sonnet-4", "opentelemetry.instrumentation.genai.anthropic", "1" * 16,
                 None, 0, 1,
                 {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4",
                  "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10,
                  "gen_ai.usage.cache_write.input_tokens": 60}),
                ("openai.chat", "opentelemetry.instrumentation.openai", "2" * 16, None, 1, 2,
                 {"llm.request.type": "chat", "gen_ai.request.model": "o3-mini",
                  "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 50,
                  "gen_ai.usage.reasoning_tokens": 40}),
                ("openai.chat", "opentelemetry.instrumentation.openai", "3" * 16, None, 2, 3,
                 {"llm.request.type": "chat", "gen_ai.request.model": "o3-mini",
                  "gen_ai.usage.prompt_tokens": 5, "gen_ai.usage.completion_tokens": 50,
                  "llm.usage.reasoning_tokens": 30}),
            ]
        )
    )  # fmt: skip
    assert util_genai.int_attr(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS) == 60
    assert openllmetry.int_attr(semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS) == 40
    assert older.int_attr(semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS) == 30


def test_a_workflow_span_is_named_after_its_span_name() -> None:
    # The official instrumentations name the span "invoke_workflow {name}" and may leave out
    # gen_ai.workflow.name.
    (workflow,) = SpanNormalizer().normalize(
        records(
            [
                ("invoke_workflow research", "opentelemetry.instrumentation.genai.langchain",
                 "1" * 16, None, 0, 1, {"gen_ai.operation.name": "invoke_workflow"}),
            ]
        )
    )  # fmt: skip
    assert workflow.operation == semconv.Operation.INVOKE_WORKFLOW
    assert workflow.str_attr(semconv.GEN_AI_WORKFLOW_NAME) == "research"
