"""Reading detector snapshots back: typed access to JSON values that fails loudly.

Streaming detectors save their windows and baselines as JSON (``snapshot()``) and read them back
(``restore()``), possibly in another process or version. These helpers check each value's type
and raise :class:`~agentmesh.core.errors.DetectionError` naming what was wrong, instead of
letting a malformed snapshot corrupt a detector.
"""

from __future__ import annotations

from collections.abc import Mapping

from agentmesh.collector.detection import JsonValue
from agentmesh.core.errors import DetectionError

__all__ = ["as_float", "as_int", "as_list", "as_map", "as_opt_str", "as_str"]


def as_list(value: JsonValue, what: str) -> list[JsonValue]:
    """Return ``value`` as a list.

    Args:
        value: A JSON value.
        what: What it is, for the error message.

    Returns:
        The list.

    Raises:
        DetectionError: It is not a list.
    """
    if not isinstance(value, list):
        raise DetectionError(f"snapshot {what}: expected a list, got {type(value).__name__}")
    return value


def as_map(value: JsonValue | Mapping[str, JsonValue], what: str) -> Mapping[str, JsonValue]:
    """Return ``value`` as a mapping.

    Args:
        value: A JSON value.
        what: What it is, for the error message.

    Returns:
        The mapping.

    Raises:
        DetectionError: It is not an object.
    """
    if not isinstance(value, Mapping):
        raise DetectionError(f"snapshot {what}: expected an object, got {type(value).__name__}")
    return value


def as_int(value: JsonValue, what: str) -> int:
    """Return ``value`` as an int.

    Args:
        value: A JSON value.
        what: What it is, for the error message.

    Returns:
        The int.

    Raises:
        DetectionError: It is not an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise DetectionError(f"snapshot {what}: expected an integer, got {value!r}")
    return value


def as_float(value: JsonValue, what: str) -> float:
    """Return ``value`` as a float.

    Args:
        value: A JSON value.
        what: What it is, for the error message.

    Returns:
        The number.

    Raises:
        DetectionError: It is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DetectionError(f"snapshot {what}: expected a number, got {value!r}")
    return float(value)


def as_str(value: JsonValue, what: str) -> str:
    """Return ``value`` as a string.

    Args:
        value: A JSON value.
        what: What it is, for the error message.

    Returns:
        The string.

    Raises:
        DetectionError: It is not a string.
    """
    if not isinstance(value, str):
        raise DetectionError(f"snapshot {what}: expected a string, got {value!r}")
    return value


def as_opt_str(value: JsonValue, what: str) -> str | None:
    """Return ``value`` as a string or ``None``.

    Args:
        value: A JSON value.
        what: What it is, for the error message.

    Returns:
        The string, or ``None``.

    Raises:
        DetectionError: It is neither.
    """
    return None if value is None else as_str(value, what)
