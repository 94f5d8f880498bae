"""Attributes describing the state that crossed a handoff: digest, size, content (opt-in)."""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_CONTENT_TRUNCATED,
    AGENTMESH_HANDOFF_CONTENT,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
)
from agentmesh.instrumentation._content import CONTENT_CAP_BYTES, scrub
from agentmesh.instrumentation.handoff import canonical_json, capped_text, context_digest

__all__ = ["handoff_state_attributes"]


def handoff_state_attributes(state: object, *, capture_content: bool) -> dict[str, AttributeValue]:
    """Describe the state a receiving agent starts from.

    Args:
        state: The state.
        capture_content: Also record the state itself as canonical JSON (base64 blobs
            replaced, capped at 16 KiB; ``agentmesh.content.truncated`` when cut).

    Returns:
        The digest and size, and with capture on the content.

    Example:
        >>> attrs = handoff_state_attributes({"task": "x"}, capture_content=True)
        >>> attrs["agentmesh.handoff.content"], attrs["agentmesh.handoff.context.size"]
        ('{"task":"x"}', 12)
    """
    digest = context_digest(state)
    attributes: dict[str, AttributeValue] = {
        AGENTMESH_HANDOFF_CONTEXT_DIGEST: digest.digest,
        AGENTMESH_HANDOFF_CONTEXT_SIZE: digest.size,
    }
    if capture_content:
        text, truncated = capped_text(canonical_json(scrub(state)), CONTENT_CAP_BYTES)
        attributes[AGENTMESH_HANDOFF_CONTENT] = text
        if truncated:
            attributes[AGENTMESH_CONTENT_TRUNCATED] = True
    return attributes
