"""Per-span limits the decoder enforces, so one oversized span cannot blow up memory or storage.

Over a limit the span is always kept: extra attributes and events are dropped, long values
truncated, deep values cut, and every such change is counted and reported in the OTLP
partial-success message.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentmesh.collector.settings import CollectorSettings

__all__ = ["DecodeLimits"]


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds on what one span may carry.

    Attributes:
        max_attributes: Attributes kept per span, event or resource (the first ones).
        max_events: Events kept per span (the first ones).
        max_value_bytes: Longest attribute value in UTF-8 bytes; a longer string is truncated,
            a longer array loses its last items, bytes are cut before hex encoding.
        max_depth: Deepest nesting of arrays and maps; deeper parts become ``null``.

    Example:
        >>> DecodeLimits().max_attributes
        256
    """

    max_attributes: int = 256
    max_events: int = 128
    max_value_bytes: int = 64 * 1024
    max_depth: int = 8

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> DecodeLimits:
        """Read the limits from the collector settings.

        Args:
            settings: The collector's settings.

        Returns:
            The limits they configure.
        """
        return cls(
            max_attributes=settings.max_attributes_per_span,
            max_events=settings.max_events_per_span,
            max_value_bytes=settings.max_attribute_value_bytes,
            max_depth=settings.max_attribute_depth,
        )
