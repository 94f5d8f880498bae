"""The rewrite of one span: a copy of its attributes, added to, then frozen into a new record."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from agentmesh.collector.model import AttributeValue, SpanRecord
from agentmesh.collector.normalize._pricing import Pricer
from agentmesh.core import semconv

__all__ = ["Rewrite", "as_int", "as_str"]


def as_str(value: object) -> str | None:
    """Return ``value`` when it is a non-empty string.

    Args:
        value: An attribute value, or ``None``.

    Returns:
        The string, or ``None``.
    """
    return value if isinstance(value, str) and value else None


def as_int(value: object) -> int | None:
    """Return ``value`` as an integer when it is one (or an integral double; not a boolean).

    Args:
        value: An attribute value, or ``None``.

    Returns:
        The integer, or ``None``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class Rewrite:
    """Attributes of a span being normalised; originals are kept, contract names are added.

    Args:
        span: The span to rewrite.
        convention: The convention it is rewritten from (``agentmesh.normalized_from``).

    Attributes:
        attributes: The attributes so far (the span's, plus what was added).
        changed: Whether anything was added or replaced.
        convention: The convention it is rewritten from.
    """

    __slots__ = ("_span", "attributes", "changed", "convention")

    def __init__(self, span: SpanRecord, convention: str) -> None:
        self._span = span
        self.convention = convention
        self.attributes: dict[str, AttributeValue] = dict(span.attributes)
        self.changed = False

    def add(self, name: str, value: AttributeValue | None) -> None:
        """Set ``name`` unless the span already has it or ``value`` is ``None``.

        Args:
            name: A contract attribute name.
            value: The value read from the foreign attributes.
        """
        if value is not None and name not in self.attributes:
            self.attributes[name] = value
            self.changed = True

    def put(self, name: str, value: AttributeValue) -> None:
        """Set ``name``, replacing a value of the foreign convention that contradicts ours.

        Args:
            name: A contract attribute name.
            value: The value.
        """
        if self.attributes.get(name) != value:
            self.attributes[name] = value
            self.changed = True

    def price(self, pricer: Pricer) -> None:
        """Add ``agentmesh.cost.usd`` to a chat or embeddings span that lacks it.

        The call is priced at the model that answered (``gen_ai.response.model``), else, when
        the catalog does not know that one, at the model it was sent to
        (``gen_ai.request.model``); when it knows neither, the span stays unpriced.

        Args:
            pricer: Prices a call from the model catalog.
        """
        if semconv.AGENTMESH_COST_USD in self.attributes:
            return
        attrs: Mapping[str, AttributeValue] = self.attributes
        input_tokens = as_int(attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS))
        output_tokens = as_int(attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS))
        if input_tokens is None and output_tokens is None:
            return
        cached = as_int(attrs.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)) or 0
        written = as_int(attrs.get(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)) or 0
        answered = as_str(attrs.get(semconv.GEN_AI_RESPONSE_MODEL))
        sent = as_str(attrs.get(semconv.GEN_AI_REQUEST_MODEL))
        for model in (answered, sent if sent != answered else None):
            if model is None:
                continue
            cost = pricer.cost_usd(model, input_tokens or 0, output_tokens or 0, cached, written)
            if cost is not None:
                self.add(semconv.AGENTMESH_COST_USD, cost)
                return

    def finish(self) -> SpanRecord:
        """Return the rewritten span, marked with the convention it came from.

        Returns:
            A new record; the original is not changed.
        """
        self.attributes[semconv.AGENTMESH_NORMALIZED_FROM] = self.convention
        return dataclasses.replace(self._span, attributes=self.attributes)
