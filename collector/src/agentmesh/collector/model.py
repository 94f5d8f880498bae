"""The collector's view of a span: decoded once from OTLP, immutable afterwards.

Example:
    >>> from agentmesh.core import semconv
    >>> span = SpanRecord(
    ...     trace_id="0" * 31 + "1",
    ...     span_id="0" * 15 + "2",
    ...     parent_span_id=None,
    ...     name="chat gpt-4o-mini",
    ...     kind="client",
    ...     start_ns=1,
    ...     end_ns=5,
    ...     attributes={
    ...         semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
    ...         semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
    ...     },
    ... )
    >>> span.operation, span.int_attr(semconv.GEN_AI_USAGE_INPUT_TOKENS), span.is_root
    ('chat', 12, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from agentmesh.core import semconv

__all__ = [
    "SERVICE_NAME",
    "AttributeScalar",
    "AttributeValue",
    "Attributes",
    "SpanEventRecord",
    "SpanKind",
    "SpanRecord",
    "StatusCode",
]

SERVICE_NAME: Final = semconv.SERVICE_NAME
"""The OpenTelemetry resource attribute naming the emitting service (from the contract)."""

AttributeScalar: TypeAlias = str | bool | int | float
"""One primitive attribute value."""

AttributeValue: TypeAlias = AttributeScalar | list[AttributeScalar]
"""An attribute value: a primitive or a homogeneous list of primitives."""

Attributes: TypeAlias = Mapping[str, AttributeValue]
"""Attributes of a span, event or resource."""

StatusCode = Literal["unset", "ok", "error"]
"""Span status, as OTLP defines it."""

SpanKind = Literal["unspecified", "internal", "server", "client", "producer", "consumer"]
"""Span kind, as OTLP defines it (lower case)."""

_EMPTY: Attributes = {}


def str_of(attributes: Attributes, name: str) -> str | None:
    """Attribute ``name`` when it is a string (``None`` otherwise); see ``SpanRecord.str_attr``.

    Args:
        attributes: The attributes.
        name: The attribute name.

    Returns:
        The value, or ``None``.
    """
    value = attributes.get(name)
    return value if isinstance(value, str) else None


def int_of(attributes: Attributes, name: str) -> int | None:
    """Attribute ``name`` when it is an integer or an integral double; see ``int_attr``.

    Args:
        attributes: The attributes.
        name: The attribute name.

    Returns:
        The value, or ``None`` (booleans are not integers).
    """
    value = attributes.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def float_of(attributes: Attributes, name: str) -> float | None:
    """Attribute ``name`` as a float when it is a finite number; see ``SpanRecord.float_attr``.

    Args:
        attributes: The attributes.
        name: The attribute name.

    Returns:
        The value, or ``None`` (booleans are not numbers; NaN and infinities are not read as
        any amount: one NaN cost would make every sum it joins NaN).
    """
    value = attributes.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def count_of(value: object) -> int:
    """A token count as the graph and the stores sum it.

    Args:
        value: An attribute's value.

    Returns:
        The value when it is an integer (or an integral double) of 0 or more, else 0: a
        negative count from a faulty instrumentation would lower every sum it joins.
    """
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return 0


def amount_of(value: object) -> float:
    """A cost in USD as the graph and the stores sum it.

    Args:
        value: An attribute's value.

    Returns:
        The value when it is a finite number of 0 or more, else 0.0 (NaN, infinities and
        negative amounts are not costs).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) and number > 0.0 else 0.0


@dataclass(frozen=True, slots=True)
class SpanEventRecord:
    """A span event (a timestamped annotation inside a span).

    Attributes:
        name: Event name, for example ``agentmesh.handoff``.
        time_ns: When it happened, in nanoseconds since the Unix epoch.
        attributes: Its attributes.
    """

    name: str
    time_ns: int
    attributes: Attributes = field(default_factory=lambda: _EMPTY)

    def str_attr(self, name: str) -> str | None:
        """Return attribute ``name`` when it is a string.

        Args:
            name: The attribute name (a :mod:`agentmesh.core.semconv` constant).

        Returns:
            The value, or ``None`` when absent or of another type.
        """
        return str_of(self.attributes, name)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span as the collector stores and reasons about it.

    Attributes:
        trace_id: 32 lowercase hex digits.
        span_id: 16 lowercase hex digits.
        parent_span_id: 16 lowercase hex digits, or ``None`` for a root span.
        name: Span name.
        kind: Span kind.
        start_ns: Start, in nanoseconds since the Unix epoch.
        end_ns: End, in nanoseconds since the Unix epoch.
        status_code: ``unset``, ``ok`` or ``error``.
        status_message: Status description (empty unless an error says more).
        attributes: Span attributes.
        events: Span events, in the order they were recorded.
        resource_attributes: Attributes of the resource (process) that emitted the span.
        scope_name: Instrumentation scope that created the span.
        service_name: ``service.name`` of the resource, or ``None``.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    status_code: StatusCode = "unset"
    status_message: str = ""
    attributes: Attributes = field(default_factory=lambda: _EMPTY)
    events: tuple[SpanEventRecord, ...] = ()
    resource_attributes: Attributes = field(default_factory=lambda: _EMPTY)
    scope_name: str = ""
    service_name: str | None = None

    @property
    def is_root(self) -> bool:
        """Whether the span has no parent (the root of its trace)."""
        return self.parent_span_id is None

    @property
    def operation(self) -> str | None:
        """The ``gen_ai.operation.name`` of the span (``chat``, ``invoke_agent``…), if any."""
        return str_of(self.attributes, semconv.GEN_AI_OPERATION_NAME)

    @property
    def duration_ns(self) -> int:
        """Duration in nanoseconds (0 when the end precedes the start)."""
        return max(0, self.end_ns - self.start_ns)

    def str_attr(self, name: str) -> str | None:
        """Return attribute ``name`` when it is a string.

        Args:
            name: The attribute name (a :mod:`agentmesh.core.semconv` constant).

        Returns:
            The value, or ``None`` when absent or of another type.
        """
        return str_of(self.attributes, name)

    def int_attr(self, name: str) -> int | None:
        """Return attribute ``name`` when it is an integer (or an integral double).

        Args:
            name: The attribute name (a :mod:`agentmesh.core.semconv` constant).

        Returns:
            The value, or ``None`` when absent or of another type (booleans are not integers).
        """
        return int_of(self.attributes, name)

    def float_attr(self, name: str) -> float | None:
        """Return attribute ``name`` when it is a number.

        Args:
            name: The attribute name (a :mod:`agentmesh.core.semconv` constant).

        Returns:
            The value as a float, or ``None`` when absent, not a number, NaN or infinite.
        """
        return float_of(self.attributes, name)
