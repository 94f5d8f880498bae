"""Attributes describing what crossed a handoff or went into a tool: digest, size, content.

Content (opt-in) is canonical JSON with base64 blobs replaced, capped at 16 KiB; the span then
carries ``agentmesh.content.truncated`` when it was cut.

Example:
    >>> attrs = crossing_attributes("notes", capture_content=True)
    >>> attrs["agentmesh.handoff.content"], attrs["agentmesh.handoff.context.size"]
    ('"notes"', 7)
    >>> sorted(crossing_attributes("notes", capture_content=False))
    ['agentmesh.handoff.context.digest', 'agentmesh.handoff.context.size']
"""

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

__all__ = ["capped_content", "crossing_attributes"]


def capped_content(value: object) -> tuple[str, bool]:
    """Serialise a value for a content attribute: blobs replaced, canonical JSON, capped.

    Args:
        value: The value.

    Returns:
        The JSON text (maybe cut) and whether it was cut.
    """
    return capped_text(canonical_json(scrub(value)), CONTENT_CAP_BYTES)


def crossing_attributes(value: object, *, capture_content: bool) -> dict[str, AttributeValue]:
    """Describe the context that crossed a handoff.

    Args:
        value: The context (task output text, or what a delegation tool passed on).
        capture_content: Also record the context itself.

    Returns:
        Digest and size, and with capture on the content.
    """
    digest = context_digest(value)
    attributes: dict[str, AttributeValue] = {
        AGENTMESH_HANDOFF_CONTEXT_DIGEST: digest.digest,
        AGENTMESH_HANDOFF_CONTEXT_SIZE: digest.size,
    }
    if capture_content:
        text, truncated = capped_content(value)
        attributes[AGENTMESH_HANDOFF_CONTENT] = text
        if truncated:
            attributes[AGENTMESH_CONTENT_TRUNCATED] = True
    return attributes
