"""What a detector reports: :class:`Detection`.

A detection names the failure mode, the run and agent it concerns, the spans that show it and
an explanation written for people. Its id is derived from what was detected (not from when),
so reporting the same finding twice stores it once.

Example:
    >>> detection_id("handoff_loop", "0af7651916cd43dd8448eb211c80319c", "researcher|supervisor")
    'det-3b07170dcc8eadb5176e761a'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = ["Detection", "JsonValue", "Severity", "detection_id"]

Severity = Literal["info", "warning", "error", "critical"]
"""How bad a detection is."""

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
"""A value that serialises to JSON as is."""


def detection_id(type_: str, trace_id: str, key: str) -> str:
    """Return the stable id of a finding.

    Args:
        type_: The detection type, for example ``handoff_loop``.
        trace_id: The trace it is about.
        key: What identifies the finding within the trace (for a loop: its canonical cycle).

    Returns:
        ``det-`` followed by 24 hex digits.
    """
    digest = hashlib.sha256(f"{type_}\x1f{trace_id}\x1f{key}".encode()).hexdigest()
    return f"det-{digest[:24]}"


@dataclass(frozen=True, slots=True)
class Detection:
    """A failure seen in a run.

    Attributes:
        id: Stable id (see :func:`detection_id`); storing a detection is idempotent by it.
        type: Failure mode, for example ``handoff_loop``.
        severity: ``info``, ``warning``, ``error`` or ``critical``.
        trace_id: The trace it was seen in.
        run_id: The run (``agentmesh.run.id``, or the trace id).
        agent: The agent it is about, when one is.
        span_ids: The spans that show it.
        explanation: What was seen, for people.
        detected_at_ns: When it was detected, in nanoseconds since the Unix epoch.
        details: Machine-readable facts behind the explanation.
    """

    id: str
    type: str
    severity: Severity
    trace_id: str
    run_id: str
    agent: str | None
    span_ids: tuple[str, ...]
    explanation: str
    detected_at_ns: int
    details: Mapping[str, JsonValue] = field(default_factory=lambda: {})
