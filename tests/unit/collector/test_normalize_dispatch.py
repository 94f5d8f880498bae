"""What the normaliser leaves alone, and how it fails: own spans, plain spans, bad values."""

from __future__ import annotations

from agentmesh.collector.model import AttributeValue, SpanRecord
from agentmesh.collector.normalize import SpanNormalizer, normalize_spans
from agentmesh.collector.testing import SpanFactory
from agentmesh.core import semconv
from agentmesh.router import ModelCatalog, ModelInfo


def span(name: str, attributes: dict[str, AttributeValue], scope: str = "x") -> SpanRecord:
    """A root span named ``name`` with ``attributes``."""
    return SpanRecord(
        trace_id="ab" * 16,
        span_id="cd" * 8,
        parent_span_id=None,
        name=name,
        kind="client",
        start_ns=1,
        end_ns=2,
        attributes=attributes,
        scope_name=scope,
    )


def test_our_own_spans_and_plain_spans_pass_untouched_in_the_same_list() -> None:
    f = SpanFactory()
    root = f.workflow("w")
    own = [root, f.agent("a", parent=root), f.chat(parent=root, input_tokens=1)]
    plain = span("GET /health", {"http.request.method": "GET"})
    batch = [*own, plain]
    assert normalize_spans(batch) is batch


def test_our_scope_is_trusted_even_with_foreign_names() -> None:
    ours = span("ChatCompletion", {"openinference.span.kind": "LLM"}, scope="agentmesh.openai")
    assert normalize_spans([ours])[0] is ours


def test_normalised_spans_are_not_normalised_again() -> None:
    first = normalize_spans([span("x", {"openinference.span.kind": "AGENT"})])[0]
    assert first.str_attr(semconv.GEN_AI_AGENT_NAME) == "x"
    assert normalize_spans([first])[0] is first


def test_only_the_foreign_span_is_replaced() -> None:
    plain = span("GET /", {})
    foreign = span("chat gpt-4o-mini", {"gen_ai.system": "openai"})
    out = normalize_spans([plain, foreign])
    assert out[0] is plain
    assert out[1] is not foreign
    assert out[1].str_attr(semconv.GEN_AI_PROVIDER_NAME) == "openai"


def test_an_injected_catalog_prices_and_an_unknown_model_stays_unpriced() -> None:
    catalog = ModelCatalog(
        [ModelInfo("house-model", "openai", 1_000_000.0, 2_000_000.0, None, 8, frozenset())]
    )
    normalizer = SpanNormalizer(catalog)
    known, unknown = normalizer.normalize(
        [
            span(
                "chat house-model",
                {"gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1},
            ),
            span("chat mystery", {"gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1}),
        ]
    )
    assert known.float_attr(semconv.AGENTMESH_COST_USD) == 3.0
    assert unknown.float_attr(semconv.AGENTMESH_COST_USD) is None
    assert unknown.operation == semconv.Operation.CHAT


def test_cache_reads_and_writes_are_priced_at_their_own_rates() -> None:
    # $ per million: input 1, output 2, cache reads 0.5, cache writes 4
    house = ModelInfo("house-model", "anthropic", 1.0, 2.0, 0.5, 8, frozenset(), 4.0)
    normalizer = SpanNormalizer(ModelCatalog([house]))
    usage = {"gen_ai.usage.input_tokens": 1_000_000, "gen_ai.usage.output_tokens": 0}
    openllmetry, openinference = normalizer.normalize(
        [
            span(
                "chat house-model",  # the older GenAI names OpenLLMetry writes
                {
                    **usage,
                    "gen_ai.usage.cache_read_input_tokens": 500_000,
                    "gen_ai.usage.cache_creation_input_tokens": 250_000,
                },
            ),
            span(
                "ChatAnthropic",
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "house-model",
                    "llm.token_count.prompt": 1_000_000,
                    "llm.token_count.completion": 0,
                    "llm.token_count.prompt_details.cache_read": 500_000,
                    "llm.token_count.prompt_details.cache_write": 250_000,
                },
            ),
        ]
    )
    for normalized in (openllmetry, openinference):
        assert normalized.int_attr(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS) == 250_000
        # 250k plain input at 1 + 500k reads at 0.5 + 250k writes at 4
        assert normalized.float_attr(semconv.AGENTMESH_COST_USD) == 0.25 + 0.25 + 1.0


def test_odd_values_do_not_break_the_batch() -> None:
    odd = span(
        "supervisor",
        {"openinference.span.kind": "CHAIN", "metadata": '{"langgraph_node": ['},
    )
    weird = span("chat", {"gen_ai.usage.input_tokens": True, "gen_ai.system": ["x"]})
    out = normalize_spans([odd, weird])
    assert out[0] is odd  # unparseable metadata: not a node
    assert out[1].operation == semconv.Operation.CHAT
    assert out[1].int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS) is None
