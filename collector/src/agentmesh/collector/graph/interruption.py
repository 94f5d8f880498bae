"""What interrupted an operation, from its span: :func:`interruption_of`.

The instrumentation ends a span whose operation was interrupted (Ctrl-C, a cancelled task,
``SystemExit``) without error status: the operation did not fail, it was stopped. The exception
stays on the span as an ``exception`` event. A run whose root span was interrupted is
``interrupted`` in run lists, and its resume plan resumes it like a failed run.
"""

from __future__ import annotations

from typing import Final

from agentmesh.collector.model import SpanRecord

__all__ = ["INTERRUPTIONS", "interruption_of"]

INTERRUPTIONS: Final = frozenset({"KeyboardInterrupt", "CancelledError", "SystemExit"})
"""Exceptions that interrupt an operation without failing it (by their class name)."""

_EXCEPTION_TYPE: Final = "exception.type"
"""The attribute of an ``exception`` span event that names the exception's class."""


def interruption_of(span: SpanRecord) -> str | None:
    """Name what interrupted a span's operation, or ``None`` when nothing did.

    Args:
        span: The span.

    Returns:
        The interruption's class name (``KeyboardInterrupt``, ``CancelledError``,
        ``SystemExit``) from the span's ``exception`` events, when the span did not end in
        error; ``None`` otherwise.

    Example:
        >>> from agentmesh.collector.model import SpanEventRecord
        >>> from agentmesh.collector.testing import SpanFactory
        >>> from dataclasses import replace
        >>> span = SpanFactory().workflow("essay")
        >>> event = SpanEventRecord("exception", 1, {"exception.type": "KeyboardInterrupt"})
        >>> interruption_of(replace(span, events=(event,))), interruption_of(span)
        ('KeyboardInterrupt', None)
    """
    if span.status_code == "error" or not span.events:
        return None
    for event in span.events:
        if event.name == "exception":
            kind = str(event.attributes.get(_EXCEPTION_TYPE, "")).rpartition(".")[2]
            if kind in INTERRUPTIONS:
                return kind
    return None
