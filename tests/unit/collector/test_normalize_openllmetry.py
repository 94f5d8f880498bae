"""OpenLLMetry (Traceloop) spans normalised to the contract.

``TRACE`` is what ``opentelemetry-instrumentation-langchain`` 0.62.4 and
``opentelemetry-instrumentation-openai`` 0.62.4 exported for a LangGraph supervisor app
(supervisor → worker_a → supervisor → worker_b → supervisor, each node calling the openai SDK
against the fake provider), captured by running them; inputs, outputs, message contents and
checkpoint namespaces are left out.
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
        "invoke_agent LangGraph",
        "opentelemetry.instrumentation.langchain",
        "caf09e46fb0fe44f",
        None,
        0,
        27366,
        {
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "LangGraph",
            "gen_ai.workflow.nodes": ["supervisor", "worker_a", "worker_b"],
        },
    ),
    (
        "LangGraph.workflow",
        "opentelemetry.instrumentation.langchain",
        "3bb236b87f76d4db",
        "caf09e46fb0fe44f",
        2949,
        27341,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.span.kind": "workflow",
            "traceloop.entity.name": "LangGraph",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "LangGraph",
            "gen_ai.task.status": "success",
        },
    ),
    (
        "execute_task supervisor",
        "opentelemetry.instrumentation.langchain",
        "53c28ea1e3a0cff5",
        "3bb236b87f76d4db",
        3664,
        14638,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.association.properties.langgraph_step": 1,
            "traceloop.association.properties.langgraph_node": "supervisor",
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "supervisor",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.task.name": "supervisor",
            "gen_ai.task.status": "success",
        },
    ),
    (
        "openai.chat",
        "opentelemetry.instrumentation.openai.v1",
        "c113ffbcb39c1445",
        "53c28ea1e3a0cff5",
        3815,
        14331,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.is_streaming": False,
            "gen_ai.openai.api_base": "http://127.0.0.1:8080/v1/",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000006",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.openai.response.system_fingerprint": "fp_fake",
            "gen_ai.usage.total_tokens": 10,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.usage.input_tokens": 3,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.reasoning_tokens": 0,
        },
    ),
    (
        "execute_task route",
        "opentelemetry.instrumentation.langchain",
        "f0f5e627e2a6e5d5",
        "53c28ea1e3a0cff5",
        14492,
        14597,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "supervisor",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.association.properties.langgraph_step": 1,
            "traceloop.association.properties.langgraph_node": "supervisor",
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "route",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.task.name": "route",
            "gen_ai.task.status": "success",
        },
    ),
    (
        "execute_task worker_a",
        "opentelemetry.instrumentation.langchain",
        "48af51cb4c4da2bc",
        "3bb236b87f76d4db",
        14956,
        17377,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.association.properties.langgraph_step": 2,
            "traceloop.association.properties.langgraph_node": "worker_a",
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "worker_a",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.task.name": "worker_a",
            "gen_ai.task.status": "success",
        },
    ),
    (
        "openai.chat",
        "opentelemetry.instrumentation.openai.v1",
        "5c58e2943e82a3f2",
        "48af51cb4c4da2bc",
        15047,
        17315,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.is_streaming": False,
            "gen_ai.openai.api_base": "http://127.0.0.1:8080/v1/",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000007",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.openai.response.system_fingerprint": "fp_fake",
            "gen_ai.usage.total_tokens": 17,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.reasoning_tokens": 0,
        },
    ),
    (
        "execute_task supervisor",
        "opentelemetry.instrumentation.langchain",
        "1e68654bc59d9c8f",
        "3bb236b87f76d4db",
        17621,
        20848,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.association.properties.langgraph_step": 3,
            "traceloop.association.properties.langgraph_node": "supervisor",
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "supervisor",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.task.name": "supervisor",
            "gen_ai.task.status": "success",
        },
    ),
    (
        "openai.chat",
        "opentelemetry.instrumentation.openai.v1",
        "9980492684211c1e",
        "1e68654bc59d9c8f",
        17707,
        20312,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.is_streaming": False,
            "gen_ai.openai.api_base": "http://127.0.0.1:8080/v1/",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000008",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.openai.response.system_fingerprint": "fp_fake",
            "gen_ai.usage.total_tokens": 25,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.usage.input_tokens": 18,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.reasoning_tokens": 0,
        },
    ),
    (
        "execute_task route",
        "opentelemetry.instrumentation.langchain",
        "edaa7ecbf3a8a64e",
        "1e68654bc59d9c8f",
        20609,
        20798,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "supervisor",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.association.properties.langgraph_step": 3,
            "traceloop.association.properties.langgraph_node": "supervisor",
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "route",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.task.name": "route",
            "gen_ai.task.status": "success",
        },
    ),
    (
        "execute_task worker_b",
        "opentelemetry.instrumentation.langchain",
        "190c902a54e538d6",
        "3bb236b87f76d4db",
        21358,
        23591,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.association.properties.langgraph_step": 4,
            "traceloop.association.properties.langgraph_node": "worker_b",
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "worker_b",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.task.name": "worker_b",
            "gen_ai.task.status": "success",
        },
    ),
    (
        "openai.chat",
        "opentelemetry.instrumentation.openai.v1",
        "a755b4c9b85422f1",
        "190c902a54e538d6",
        21465,
        23521,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.is_streaming": False,
            "gen_ai.openai.api_base": "http://127.0.0.1:8080/v1/",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000009",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.openai.response.system_fingerprint": "fp_fake",
            "gen_ai.usage.total_tokens": 31,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.usage.input_tokens": 24,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.reasoning_tokens": 0,
        },
    ),
    (
        "execute_task supervisor",
        "opentelemetry.instrumentation.langchain",
        "5b946d1faa3b4855",
        "3bb236b87f76d4db",
        23865,
        27138,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.association.properties.langgraph_step": 5,
            "traceloop.association.properties.langgraph_node": "supervisor",
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "supervisor",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.task.name": "supervisor",
            "gen_ai.task.status": "success",
        },
    ),
    (
        "openai.chat",
        "opentelemetry.instrumentation.openai.v1",
        "89438fcbdd1fec88",
        "5b946d1faa3b4855",
        23955,
        26902,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.is_streaming": False,
            "gen_ai.openai.api_base": "http://127.0.0.1:8080/v1/",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-fake000010",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.openai.response.system_fingerprint": "fp_fake",
            "gen_ai.usage.total_tokens": 39,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.usage.input_tokens": 32,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.reasoning_tokens": 0,
        },
    ),
    (
        "execute_task route",
        "opentelemetry.instrumentation.langchain",
        "517d5c835c759e0b",
        "5b946d1faa3b4855",
        27023,
        27108,
        {
            "traceloop.workflow.name": "LangGraph",
            "traceloop.entity.path": "supervisor",
            "traceloop.association.properties.ls_integration": "langgraph",
            "traceloop.association.properties.langgraph_step": 5,
            "traceloop.association.properties.langgraph_node": "supervisor",
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "route",
            "gen_ai.provider.name": "langgraph",
            "gen_ai.operation.name": "execute_task",
            "gen_ai.task.name": "route",
            "gen_ai.task.status": "success",
        },
    ),
]


def test_the_graph_spans_become_workflows_not_an_agent() -> None:
    spans = SpanNormalizer().normalize(records(TRACE))
    outer, inner = by_name(spans, "invoke_agent LangGraph") + by_name(spans, "LangGraph.workflow")
    for span in (outer, inner):
        assert span.operation == semconv.Operation.INVOKE_WORKFLOW
        assert span.str_attr(semconv.GEN_AI_WORKFLOW_NAME) == "LangGraph"
        assert span.str_attr(semconv.AGENTMESH_FRAMEWORK) == "langgraph"
        assert span.str_attr(semconv.AGENTMESH_NORMALIZED_FROM) == "openllmetry"
    assert inner.attributes["traceloop.span.kind"] == "workflow"  # the original stays


def test_node_tasks_become_agents_and_helper_tasks_stay() -> None:
    originals = records(TRACE)
    spans = SpanNormalizer().normalize(originals)
    nodes = [s for s in spans if s.operation == semconv.Operation.INVOKE_AGENT]
    assert [s.str_attr(semconv.GEN_AI_AGENT_NAME) for s in nodes] == [
        "supervisor",
        "worker_a",
        "supervisor",
        "worker_b",
        "supervisor",
    ]
    assert nodes[1].int_attr(semconv.AGENTMESH_LANGGRAPH_STEP) == 2
    routes = [i for i, s in enumerate(originals) if s.name == "execute_task route"]
    assert len(routes) == 3
    assert all(spans[i] is originals[i] for i in routes)


def test_chat_spans_are_priced() -> None:
    spans = SpanNormalizer().normalize(records(TRACE))
    chats = by_name(spans, "openai.chat")
    assert len(chats) == 5
    first = chats[0]
    assert first.operation == semconv.Operation.CHAT
    assert first.float_attr(semconv.AGENTMESH_COST_USD) == default_catalog().cost_usd(
        "gpt-4o-mini", 3, 7, 0
    )


def test_the_graph_builder_infers_handoffs_and_attributes_calls() -> None:
    builder = GraphBuilder()
    builder.add(SpanNormalizer().normalize(records(TRACE)))
    graph = builder.get(TRACE_ID)
    assert graph is not None
    assert set(graph.agents) == {"supervisor", "worker_a", "worker_b"}
    assert [(h.source, h.target) for h in graph.handoffs] == [
        ("supervisor", "worker_a"),
        ("worker_a", "supervisor"),
        ("supervisor", "worker_b"),
        ("worker_b", "supervisor"),
    ]
    assert graph.agents["supervisor"].llm_calls == 3
    assert graph.agents["worker_b"].input_tokens == 24
    assert graph.cost_usd > 0


def test_older_releases_names_are_translated() -> None:
    # Attributes of opentelemetry-instrumentation-openai before the gen_ai.* renames.
    (span,) = SpanNormalizer().normalize(
        records(
            [
                ("openai.chat", "opentelemetry.instrumentation.openai.v1", "1" * 16, None, 0, 1,
                 {"llm.request.type": "chat", "gen_ai.system": "OpenAI",
                  "gen_ai.request.model": "gpt-4o-mini",
                  "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                  "gen_ai.usage.prompt_tokens": 12, "gen_ai.usage.completion_tokens": 4,
                  "llm.usage.total_tokens": 16}),
            ]
        )
    )  # fmt: skip
    assert span.operation == semconv.Operation.CHAT
    assert span.str_attr(semconv.GEN_AI_PROVIDER_NAME) == "openai"
    assert span.int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) == 12
    assert span.int_attr(semconv.GEN_AI_USAGE_OUTPUT_TOKENS) == 4
    assert span.float_attr(semconv.AGENTMESH_COST_USD) == default_catalog().cost_usd(
        "gpt-4o-mini", 12, 4
    )
    assert span.str_attr(semconv.AGENTMESH_NORMALIZED_FROM) == "openllmetry"


def test_agent_and_tool_kinds_map_to_the_contract() -> None:
    agent, tool = SpanNormalizer().normalize(
        records(
            [
                ("researcher.agent", "traceloop", "1" * 16, None, 0, 3,
                 {"traceloop.span.kind": "agent", "traceloop.entity.name": "researcher"}),
                ("search.tool", "traceloop", "2" * 16, "1" * 16, 1, 2,
                 {"traceloop.span.kind": "tool", "traceloop.entity.name": "search"}),
            ]
        )
    )  # fmt: skip
    assert agent.operation == semconv.Operation.INVOKE_AGENT
    assert agent.str_attr(semconv.GEN_AI_AGENT_NAME) == "researcher"
    assert tool.operation == semconv.Operation.EXECUTE_TOOL
    assert tool.str_attr(semconv.GEN_AI_TOOL_NAME) == "search"
