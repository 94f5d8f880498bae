"""Span attributes of an embeddings call (``embeddings {model}``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_COST_USD,
    GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    Operation,
)
from agentmesh.instrumentation import _content
from agentmesh.instrumentation.openai import _pricing
from agentmesh.instrumentation.openai._attributes import provider_of
from agentmesh.instrumentation.openai._call import CallRequest
from agentmesh.instrumentation.openai._fields import (
    attr,
    base_attributes,
    int_attr,
    integer,
    items,
    model_name,
    server,
    str_attr,
)

__all__ = ["EmbeddingsSummary", "read_embeddings_request"]


def read_embeddings_request(
    instance: object, kwargs: Mapping[str, object], capture: bool = False
) -> CallRequest:
    """Read the request attributes of ``Embeddings.create``.

    Args:
        instance: The ``Embeddings`` resource.
        kwargs: The call's keyword arguments.
        capture: Unused (embedding inputs are not recorded).

    Returns:
        The request summary.
    """
    del capture
    model = model_name(kwargs)
    host, port = server(instance)
    attributes = base_attributes(Operation.EMBEDDINGS, provider_of(host), model, host, port)
    dimensions = integer(kwargs.get("dimensions"))
    if dimensions is not None:
        attributes[GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
    return CallRequest(model, False, attributes, f"{Operation.EMBEDDINGS} {model}")


@dataclass(slots=True)
class EmbeddingsSummary:
    """What a ``CreateEmbeddingResponse`` said.

    Attributes:
        model: Model that answered.
        input_tokens: Tokens of the input.
        dimensions: Length of the first returned vector.
    """

    model: str | None = None
    input_tokens: int | None = None
    dimensions: int | None = None

    @property
    def output_tokens(self) -> int | None:
        """Embeddings produce no output tokens."""
        return None

    def absorb(self, obj: object) -> None:
        """Take what the response carries.

        Args:
            obj: The ``CreateEmbeddingResponse``.
        """
        self.model = str_attr(obj, "model") or self.model
        prompt = int_attr(attr(obj, "usage"), "prompt_tokens")
        if prompt is not None:
            self.input_tokens = prompt
        data = items(attr(obj, "data"))
        if data:
            vector = attr(data[0], "embedding")
            if isinstance(vector, list | tuple):
                self.dimensions = len(vector)  # pyright: ignore[reportUnknownArgumentType]

    def attributes(self, request_model: str) -> dict[str, AttributeValue]:
        """Attributes to set when the call ends.

        Args:
            request_model: The requested model (priced when the response names none known).

        Returns:
            Response model, input tokens, dimension count and cost, when known.
        """
        attributes: dict[str, AttributeValue] = {}
        if self.model:
            attributes[GEN_AI_RESPONSE_MODEL] = self.model
        if self.dimensions is not None:
            attributes[GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = self.dimensions
        if self.input_tokens is not None:
            attributes[GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
            cost = _pricing.cost_usd((self.model, request_model), self.input_tokens, 0)
            if cost is not None:
                attributes[AGENTMESH_COST_USD] = cost
        return attributes

    def output_messages(self) -> list[_content.Message]:
        """Embeddings have no output messages.

        Returns:
            An empty list.
        """
        return []
