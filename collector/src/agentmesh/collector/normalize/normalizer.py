"""One entry point: rewrite a batch of decoded spans from foreign conventions to the contract.

Each span is dispatched on one cheap check after another, cheapest first: spans of our own
instrumentation (scope ``agentmesh.*``) and spans already normalised are returned as they are;
then ``openinference.span.kind`` selects OpenInference; ``traceloop.span.kind``,
``gen_ai.operation.name``, ``gen_ai.system``, ``llm.request.type`` or a GenAI span name
(``chat {model}``…) selects the OpenTelemetry GenAI / OpenLLMetry rewrite. Anything else (HTTP,
database spans…) passes untouched. Rewritten spans are new records; the batch list is copied
only when one span changed.

Example:
    >>> from agentmesh.collector.model import SpanRecord
    >>> span = SpanRecord(
    ...     trace_id="0" * 31 + "1", span_id="0" * 15 + "2", parent_span_id=None,
    ...     name="ChatCompletion", kind="internal", start_ns=1, end_ns=2,
    ...     attributes={"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
    ...                 "llm.token_count.prompt": 10, "llm.token_count.completion": 5},
    ... )
    >>> (out,) = SpanNormalizer().normalize([span])
    >>> out.operation, out.int_attr("gen_ai.usage.input_tokens"), out.str_attr("gen_ai.agent.name")
    ('chat', 10, None)
    >>> (out.float_attr("agentmesh.cost.usd") or 0) > 0
    True
"""

from __future__ import annotations

from typing import Final

from agentmesh.collector.model import SpanRecord
from agentmesh.collector.normalize import _foreign as f
from agentmesh.collector.normalize._pricing import Pricer
from agentmesh.collector.normalize.genai import NAMED_OPERATIONS, normalize_genai
from agentmesh.collector.normalize.openinference import normalize_openinference
from agentmesh.core import semconv
from agentmesh.core.log import get_logger
from agentmesh.router import ModelCatalog

__all__ = ["SpanNormalizer", "normalize_spans"]

_log = get_logger(__name__)

OWN_SCOPE_PREFIX: Final = "agentmesh"
"""Instrumentation scopes of AgentMesh's own instrumentation: already the contract."""

_GENAI_MARKERS: Final = (
    f.TL_SPAN_KIND,
    semconv.GEN_AI_OPERATION_NAME,
    f.GEN_AI_SYSTEM,
    f.LLM_REQUEST_TYPE,
)


class SpanNormalizer:
    """Rewrites spans of OpenInference, OpenLLMetry and OpenTelemetry GenAI to the contract.

    Args:
        catalog: Prices calls that carry no cost; ``None`` loads the router's default catalog
            on first use.
    """

    __slots__ = ("_pricer",)

    def __init__(self, catalog: ModelCatalog | None = None) -> None:
        self._pricer = Pricer(catalog)

    def normalize(self, spans: list[SpanRecord]) -> list[SpanRecord]:
        """Return the batch with every foreign span rewritten (the others as they are).

        A span whose rewrite fails is kept as it was (the failure is logged): normalising
        never loses a span.

        Args:
            spans: Decoded spans of one request.

        Returns:
            ``spans`` itself when nothing changed, else a new list in the same order.
        """
        out: list[SpanRecord] | None = None
        for index, span in enumerate(spans):
            if span.scope_name.startswith(OWN_SCOPE_PREFIX):
                continue
            try:
                rewritten = self.normalize_span(span)
            except Exception:  # noqa: BLE001 - fail-open: a bad span must not lose the batch
                _log.exception("span normalisation failed", scope=span.scope_name)
                continue
            if rewritten is not span:
                if out is None:
                    out = list(spans)
                out[index] = rewritten
        return spans if out is None else out

    def normalize_span(self, span: SpanRecord) -> SpanRecord:
        """Rewrite one span when it follows a foreign convention.

        Args:
            span: A decoded span.

        Returns:
            A new span with the contract's attributes added, or ``span`` itself.
        """
        if span.scope_name.startswith(OWN_SCOPE_PREFIX):
            return span
        attrs = span.attributes
        if semconv.AGENTMESH_NORMALIZED_FROM in attrs:
            return span
        kind = attrs.get(f.OI_SPAN_KIND)
        if isinstance(kind, str):
            return normalize_openinference(span, kind, self._pricer)
        if any(marker in attrs for marker in _GENAI_MARKERS) or (
            span.name.partition(" ")[0] in NAMED_OPERATIONS
        ):
            return normalize_genai(span, self._pricer)
        return span


_DEFAULT = SpanNormalizer()


def normalize_spans(spans: list[SpanRecord]) -> list[SpanRecord]:
    """Normalise a batch with the shared normaliser (default catalog).

    Args:
        spans: Decoded spans of one request.

    Returns:
        ``spans`` itself when nothing changed, else a new list in the same order.
    """
    return _DEFAULT.normalize(spans)
