"""OpenInference spans normalised to the contract.

``TRACE`` is what ``openinference-instrumentation-langchain`` 0.1.80 and
``openinference-instrumentation-openai`` 0.1.66 exported for a LangGraph supervisor app
(supervisor → worker_a → supervisor → worker_b → supervisor, each node calling the openai SDK
against the fake provider), captured by running them; message contents are left out.
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
        "LangGraph",
        "openinference.instrumentation.langchain",
        "e1b6d60278efbb28",
        None,
        0,
        377196,
        {"metadata": '{"ls_integration": "langgraph"}', "openinference.span.kind": "CHAIN"},
    ),
    (
        "supervisor",
        "openinference.instrumentation.langchain",
        "af31e0418ee29362",
        "e1b6d60278efbb28",
        999,
        369600,
        {
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 1, "langgraph_node": '
            '"supervisor"}',
            "openinference.span.kind": "CHAIN",
        },
    ),
    (
        "ChatCompletion",
        "openinference.instrumentation.openai",
        "63afffddbc7ef0aa",
        "af31e0418ee29362",
        361811,
        369018,
        {
            "llm.system": "openai",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini"}',
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.total": 10,
            "llm.token_count.prompt": 3,
            "llm.token_count.completion": 7,
            "llm.token_count.prompt_details.cache_read": 0,
            "llm.token_count.completion_details.reasoning": 0,
            "llm.finish_reason": "stop",
            "openinference.span.kind": "LLM",
        },
    ),
    (
        "route",
        "openinference.instrumentation.langchain",
        "50a3a3b3d596b999",
        "af31e0418ee29362",
        369196,
        369442,
        {
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 1, "langgraph_node": '
            '"supervisor"}',
            "openinference.span.kind": "CHAIN",
        },
    ),
    (
        "worker_a",
        "openinference.instrumentation.langchain",
        "9e5a4a6a62f6fffc",
        "e1b6d60278efbb28",
        370085,
        371624,
        {
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 2, "langgraph_node": '
            '"worker_a"}',
            "openinference.span.kind": "CHAIN",
        },
    ),
    (
        "ChatCompletion",
        "openinference.instrumentation.openai",
        "35a938ccca907af6",
        "9e5a4a6a62f6fffc",
        370522,
        371567,
        {
            "llm.system": "openai",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini"}',
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.total": 17,
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 7,
            "llm.token_count.prompt_details.cache_read": 0,
            "llm.token_count.completion_details.reasoning": 0,
            "llm.finish_reason": "stop",
            "openinference.span.kind": "LLM",
        },
    ),
    (
        "supervisor",
        "openinference.instrumentation.langchain",
        "0547d41154540ff2",
        "e1b6d60278efbb28",
        371918,
        373650,
        {
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 3, "langgraph_node": '
            '"supervisor"}',
            "openinference.span.kind": "CHAIN",
        },
    ),
    (
        "ChatCompletion",
        "openinference.instrumentation.openai",
        "37aded88b69216ce",
        "0547d41154540ff2",
        372315,
        373361,
        {
            "llm.system": "openai",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini"}',
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.total": 25,
            "llm.token_count.prompt": 18,
            "llm.token_count.completion": 7,
            "llm.token_count.prompt_details.cache_read": 0,
            "llm.token_count.completion_details.reasoning": 0,
            "llm.finish_reason": "stop",
            "openinference.span.kind": "LLM",
        },
    ),
    (
        "route",
        "openinference.instrumentation.langchain",
        "d817d17ad14af54f",
        "0547d41154540ff2",
        373441,
        373551,
        {
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 3, "langgraph_node": '
            '"supervisor"}',
            "openinference.span.kind": "CHAIN",
        },
    ),
    (
        "worker_b",
        "openinference.instrumentation.langchain",
        "ffd8d2b537edcc2b",
        "e1b6d60278efbb28",
        373935,
        375227,
        {
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 4, "langgraph_node": '
            '"worker_b"}',
            "openinference.span.kind": "CHAIN",
        },
    ),
    (
        "ChatCompletion",
        "openinference.instrumentation.openai",
        "d23b4ba12ecc3207",
        "ffd8d2b537edcc2b",
        374297,
        375180,
        {
            "llm.system": "openai",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini"}',
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.total": 31,
            "llm.token_count.prompt": 24,
            "llm.token_count.completion": 7,
            "llm.token_count.prompt_details.cache_read": 0,
            "llm.token_count.completion_details.reasoning": 0,
            "llm.finish_reason": "stop",
            "openinference.span.kind": "LLM",
        },
    ),
    (
        "supervisor",
        "openinference.instrumentation.langchain",
        "c494a74374d64e42",
        "e1b6d60278efbb28",
        375483,
        377000,
        {
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 5, "langgraph_node": '
            '"supervisor"}',
            "openinference.span.kind": "CHAIN",
        },
    ),
    (
        "ChatCompletion",
        "openinference.instrumentation.openai",
        "28c67af21c965e36",
        "c494a74374d64e42",
        375859,
        376730,
        {
            "llm.system": "openai",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini"}',
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.total": 39,
            "llm.token_count.prompt": 32,
            "llm.token_count.completion": 7,
            "llm.token_count.prompt_details.cache_read": 0,
            "llm.token_count.completion_details.reasoning": 0,
            "llm.finish_reason": "stop",
            "openinference.span.kind": "LLM",
        },
    ),
    (
        "route",
        "openinference.instrumentation.langchain",
        "3852dfb191fe75ea",
        "c494a74374d64e42",
        376802,
        376909,
        {
            "metadata": '{"ls_integration": "langgraph", "langgraph_step": 5, "langgraph_node": '
            '"supervisor"}',
            "openinference.span.kind": "CHAIN",
        },
    ),
]


def test_llm_span_becomes_a_priced_chat_keeping_its_attributes() -> None:
    spans = SpanNormalizer().normalize(records(TRACE))
    chat = by_name(spans, "ChatCompletion")[0]
    assert chat.operation == semconv.Operation.CHAT
    assert chat.str_attr(semconv.GEN_AI_PROVIDER_NAME) == "openai"
    assert chat.str_attr(semconv.GEN_AI_REQUEST_MODEL) == "gpt-4o-mini"
    # This release records total and completion only: input = total - completion.
    assert chat.int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) == 3
    assert chat.int_attr(semconv.GEN_AI_USAGE_OUTPUT_TOKENS) == 7
    assert chat.float_attr(semconv.AGENTMESH_COST_USD) == default_catalog().cost_usd(
        "gpt-4o-mini", 3, 7
    )
    assert chat.str_attr(semconv.AGENTMESH_NORMALIZED_FROM) == "openinference"
    assert chat.attributes["llm.token_count.total"] == 10  # the original stays


def test_langgraph_nodes_become_agents_and_their_helpers_stay_as_they_were() -> None:
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
    assert [s.int_attr(semconv.AGENTMESH_LANGGRAPH_STEP) for s in nodes] == [1, 2, 3, 4, 5]
    routes = [i for i, s in enumerate(originals) if s.name == "route"]
    assert routes
    assert all(spans[i] is originals[i] for i in routes)
    (workflow,) = by_name(spans, "LangGraph")
    assert workflow.operation == semconv.Operation.INVOKE_WORKFLOW
    assert workflow.str_attr(semconv.GEN_AI_WORKFLOW_NAME) == "LangGraph"
    assert workflow.str_attr(semconv.AGENTMESH_FRAMEWORK) == "langgraph"


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
    assert graph.agents["worker_a"].input_tokens == 10
    assert graph.agents["worker_b"].cost_usd > 0
    assert graph.workflow_name == "LangGraph"


def test_tool_embedding_agent_and_session_attributes_map_to_the_contract() -> None:
    # Attribute names of openinference-semantic-conventions 0.1.42.
    tool, embedding, agent, llm = records(
        [
            ("search", "openinference.x", "1" * 16, None, 0, 1,
             {"openinference.span.kind": "TOOL", "tool.name": "search", "session.id": "s-1"}),
            ("CreateEmbeddingResponse", "openinference.x", "2" * 16, None, 1, 2,
             {"openinference.span.kind": "EMBEDDING",
              "embedding.model_name": "text-embedding-3-small",
              "llm.token_count.prompt": 8}),
            ("planner", "openinference.x", "3" * 16, None, 2, 3,
             {"openinference.span.kind": "AGENT", "graph.node.id": "planner"}),
            ("ChatCompletion", "openinference.x", "4" * 16, None, 3, 4,
             {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
              "llm.provider": "OpenAI", "llm.token_count.prompt": 100,
              "llm.token_count.completion": 5,
              "llm.token_count.prompt_details.cache_read": 64}),
        ]
    )  # fmt: skip
    out = SpanNormalizer().normalize([tool, embedding, agent, llm])
    assert out[0].operation == semconv.Operation.EXECUTE_TOOL
    assert out[0].str_attr(semconv.GEN_AI_TOOL_NAME) == "search"
    assert out[0].str_attr(semconv.GEN_AI_CONVERSATION_ID) == "s-1"
    assert out[1].operation == semconv.Operation.EMBEDDINGS
    assert out[1].str_attr(semconv.GEN_AI_REQUEST_MODEL) == "text-embedding-3-small"
    assert out[2].operation == semconv.Operation.INVOKE_AGENT
    assert out[2].str_attr(semconv.GEN_AI_AGENT_NAME) == "planner"
    assert out[3].str_attr(semconv.GEN_AI_PROVIDER_NAME) == "openai"
    assert out[3].int_attr(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == 64
    assert out[3].float_attr(semconv.AGENTMESH_COST_USD) == default_catalog().cost_usd(
        "gpt-4o-mini", 100, 5, 64
    )


def test_a_failed_call_takes_its_model_from_the_invocation_parameters() -> None:
    # What openinference-instrumentation-openai 0.1.66 exports for a call answered 429: no
    # llm.model_name (it comes from the response), the request's parameters as JSON.
    failed, unreadable = SpanNormalizer().normalize(
        records(
            [
                ("ChatCompletion", "openinference.instrumentation.openai", "1" * 16, None, 0, 1,
                 {"openinference.span.kind": "LLM", "llm.system": "openai",
                  "llm.invocation_parameters": '{"model": "gpt-4o", "max_retries": 0}'}),
                ("ChatCompletion", "openinference.instrumentation.openai", "2" * 16, None, 1, 2,
                 {"openinference.span.kind": "LLM", "llm.system": "openai",
                  "llm.invocation_parameters": "not json"}),
            ]
        )
    )  # fmt: skip
    assert failed.str_attr(semconv.GEN_AI_REQUEST_MODEL) == "gpt-4o"
    assert failed.str_attr(semconv.GEN_AI_PROVIDER_NAME) == "openai"
    assert unreadable.operation == semconv.Operation.CHAT
    assert unreadable.str_attr(semconv.GEN_AI_REQUEST_MODEL) is None
