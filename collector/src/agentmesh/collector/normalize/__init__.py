"""Spans of other GenAI instrumentations, rewritten to the AgentMesh span contract at ingest.

Apps instrumented with OpenInference, OpenLLMetry (Traceloop) or the official OpenTelemetry
GenAI instrumentation (old or new attribute names) get the same graphs, costs and detections
as apps instrumented by AgentMesh: :func:`normalize_spans` adds the contract's names
(:mod:`agentmesh.core.semconv`) to their spans, keeping the original attributes, and marks each
rewritten span with ``agentmesh.normalized_from``. ``docs/conventions.md`` lists the mappings.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.normalize.normalizer import SpanNormalizer, normalize_spans

__all__ = ["SpanNormalizer", "normalize_spans"]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "SpanNormalizer": "agentmesh.collector.normalize.normalizer",
        "normalize_spans": "agentmesh.collector.normalize.normalizer",
    },
)
