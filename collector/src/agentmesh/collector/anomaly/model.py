"""The interface of streaming anomaly models: one value in, one anomaly score out.

A model follows one stream (latencies of one agent and model, tokens of one task class, a NAB
series). Each :meth:`StreamingAnomalyModel.update` first scores the value against what the model
learned so far, then learns it. Scores are in ``[0, 1]``; a caller alerts when a score passes its
threshold. Models keep their state small and JSON-ready so baselines survive a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from agentmesh.collector.detection import JsonValue
from agentmesh.core.errors import DetectionError

__all__ = ["StreamingAnomalyModel", "state_float", "state_floats", "state_int"]


@runtime_checkable
class StreamingAnomalyModel(Protocol):
    """A per-stream online anomaly model.

    Implementations are not thread-safe; one model follows one stream.
    """

    @property
    def warmup(self) -> int:
        """Number of points the model must see before it scores anything above 0."""
        ...

    @property
    def seen(self) -> int:
        """Number of points the model has learned."""
        ...

    def expected(self, timestamp_s: float) -> float | None:
        """The value the model expects at a time, in the stream's units (for explanations).

        Args:
            timestamp_s: Unix seconds.

        Returns:
            The baseline, or ``None`` before any point was learned.
        """
        ...

    def update(self, value: float, timestamp_s: float) -> float:
        """Score a value, then learn it.

        Args:
            value: The observation (non-finite values score 0 and are not learned).
            timestamp_s: When it was observed, Unix seconds (streams may be irregular).

        Returns:
            The anomaly score in ``[0, 1]``: 0 during the cold start.
        """
        ...

    def snapshot(self) -> dict[str, JsonValue]:
        """Return the learned state as JSON-ready data.

        Returns:
            The state; :meth:`restore` takes it back.
        """
        ...

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Replace the learned state by a snapshot's.

        Args:
            state: What :meth:`snapshot` returned, possibly by another process.

        Raises:
            DetectionError: When the state is not one this model wrote.
        """
        ...


def state_float(state: Mapping[str, JsonValue], key: str) -> float:
    """Read a number from a snapshot.

    Args:
        state: The snapshot.
        key: The field.

    Returns:
        The number as a float.

    Raises:
        DetectionError: When the field is missing or not a number.
    """
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DetectionError(f"anomaly model state: {key!r} is not a number")
    return float(value)


def state_int(state: Mapping[str, JsonValue], key: str) -> int:
    """Read an integer from a snapshot.

    Args:
        state: The snapshot.
        key: The field.

    Returns:
        The integer.

    Raises:
        DetectionError: When the field is missing or not an integer.
    """
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DetectionError(f"anomaly model state: {key!r} is not an integer")
    return value


def state_floats(state: Mapping[str, JsonValue], key: str) -> list[float]:
    """Read a list of numbers from a snapshot.

    Args:
        state: The snapshot.
        key: The field.

    Returns:
        The numbers as floats.

    Raises:
        DetectionError: When the field is missing or holds something else than numbers.
    """
    value = state.get(key)
    if not isinstance(value, list):
        raise DetectionError(f"anomaly model state: {key!r} is not a list")
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise DetectionError(f"anomaly model state: {key!r} holds a non-number")
        out.append(float(item))
    return out
