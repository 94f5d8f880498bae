"""Identifiers: run ids, and the hex forms of OpenTelemetry trace and span ids."""

from __future__ import annotations

import uuid

__all__ = ["new_run_id", "span_id_hex", "trace_id_hex"]


def new_run_id() -> str:
    """Return a new run id: 32 lowercase hex digits (a random UUID).

    Returns:
        The run id.
    """
    return uuid.uuid4().hex


def trace_id_hex(trace_id: int | bytes) -> str:
    """Format a trace id the way OpenTelemetry prints it (32 lowercase hex digits).

    Args:
        trace_id: The id as an SDK integer or as the 16 bytes of OTLP.

    Returns:
        The hex string.

    Example:
        >>> trace_id_hex(255)
        '000000000000000000000000000000ff'
    """
    if isinstance(trace_id, bytes):
        return trace_id.hex().rjust(32, "0")
    return f"{trace_id:032x}"


def span_id_hex(span_id: int | bytes) -> str:
    """Format a span id the way OpenTelemetry prints it (16 lowercase hex digits).

    Args:
        span_id: The id as an SDK integer or as the 8 bytes of OTLP.

    Returns:
        The hex string, or ``""`` for an empty (absent) id.

    Example:
        >>> span_id_hex(bytes([0] * 7 + [1]))
        '0000000000000001'
    """
    if isinstance(span_id, bytes):
        return span_id.hex()
    return f"{span_id:016x}"
