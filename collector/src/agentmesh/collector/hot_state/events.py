"""Detections as JSON, the form they travel in on the pub/sub channel and the query API.

Example:
    >>> from agentmesh.collector.detection import Detection
    >>> d = Detection("det-1", "handoff_loop", "error", "t", "r", None, ("s",), "loop", 5)
    >>> detection_from_json(detection_to_json(d)) == d
    True
"""

from __future__ import annotations

import json
from typing import Final, cast, get_args

from agentmesh.collector.detection import Detection, JsonValue, Severity

__all__ = ["detection_from_dict", "detection_from_json", "detection_to_dict", "detection_to_json"]

_SEVERITIES: Final = frozenset(get_args(Severity))


def detection_to_dict(detection: Detection) -> dict[str, JsonValue]:
    """A detection as a JSON-ready dict (``span_ids`` as a list).

    Args:
        detection: The detection.

    Returns:
        The detection's fields.
    """
    d = detection
    return {
        "id": d.id,
        "type": d.type,
        "severity": d.severity,
        "trace_id": d.trace_id,
        "run_id": d.run_id,
        "agent": d.agent,
        "span_ids": list(d.span_ids),
        "explanation": d.explanation,
        "detected_at_ns": d.detected_at_ns,
        "details": dict(d.details),
    }


def detection_to_json(detection: Detection) -> str:
    """Serialise a detection.

    Args:
        detection: The detection.

    Returns:
        A JSON object with the detection's fields (``span_ids`` as an array).
    """
    return json.dumps(detection_to_dict(detection), ensure_ascii=False, separators=(",", ":"))


def detection_from_json(text: str | bytes) -> Detection:
    """Read a detection written by :func:`detection_to_json`.

    Args:
        text: The JSON object.

    Returns:
        The detection.

    Raises:
        ValueError: The text is not such an object.
    """
    try:
        item = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not a detection: {exc}") from exc
    return detection_from_dict(item)


def detection_from_dict(item: object) -> Detection:
    """Read a detection from the dict :func:`detection_to_dict` makes (JSON-decoded).

    Args:
        item: The decoded JSON object.

    Returns:
        The detection.

    Raises:
        ValueError: The value is not such an object.
    """
    try:
        if not isinstance(item, dict):
            raise TypeError("not an object")
        fields = cast(dict[str, object], item)
        severity = fields["severity"]
        if severity not in _SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        agent = fields["agent"]
        span_ids = cast(list[object], fields["span_ids"])
        return Detection(
            id=_str(fields["id"]),
            type=_str(fields["type"]),
            severity=cast(Severity, severity),
            trace_id=_str(fields["trace_id"]),
            run_id=_str(fields["run_id"]),
            agent=None if agent is None else _str(agent),
            span_ids=tuple(_str(s) for s in span_ids),
            explanation=_str(fields["explanation"]),
            detected_at_ns=_int(fields["detected_at_ns"]),
            details=cast(dict[str, JsonValue], fields.get("details") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a detection: {exc}") from exc


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value
