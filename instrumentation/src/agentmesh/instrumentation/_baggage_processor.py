"""Stamp AgentMesh baggage (run id, task class, budget, route decision) onto every span.

:class:`BaggageSpanProcessor` copies each ``agentmesh.*`` entry of
:data:`~agentmesh.core.semconv.BAGGAGE_KEYS` found in a span's parent context onto the span
when it starts, typed as the contract says (``agentmesh.run.budget_usd`` as a double). An
attribute the span already set is kept. OpenTelemetry's ``opentelemetry-processor-baggage``
does the copying part with a key predicate, but writes every value as a string.

Example:
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from agentmesh.instrumentation.run_context import with_run_id
    >>> provider = TracerProvider()
    >>> provider.add_span_processor(BaggageSpanProcessor())
    >>> span = provider.get_tracer("demo").start_span("step", context=with_run_id("r-1"))
    >>> span.attributes["agentmesh.run.id"]
    'r-1'
"""

from __future__ import annotations

from typing import Final

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import ATTRIBUTES, BAGGAGE_KEYS
from agentmesh.instrumentation._failopen import guarded

__all__ = ["BaggageSpanProcessor"]

_KEYS: Final = frozenset(BAGGAGE_KEYS)


def _typed(key: str, value: object) -> AttributeValue | None:
    if not isinstance(value, str) or not value:
        return None
    kind = ATTRIBUTES[key].type
    try:
        if kind == "double":
            return float(value)
        if kind == "int":
            return int(value)
    except ValueError:
        return None
    return value


class BaggageSpanProcessor(SpanProcessor):
    """Copy AgentMesh baggage entries of the parent context onto each starting span."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Stamp the baggage entries (never raises).

        Args:
            span: The starting span.
            parent_context: Its parent context (the current one when ``None``).
        """
        with guarded("baggage_processor"):
            entries = baggage.get_all(parent_context)
            if not entries:
                return
            existing = span.attributes or {}
            for key, value in entries.items():
                if key in _KEYS and key not in existing:
                    typed = _typed(key, value)
                    if typed is not None:
                        span.set_attribute(key, typed)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do when a span ends.

        Args:
            span: The finished span.
        """

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered.

        Args:
            timeout_millis: Ignored.

        Returns:
            Always ``True``.
        """
        return True
