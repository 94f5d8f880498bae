"""Streaming anomaly models for per-key numeric streams (latency, tokens, cost).

:func:`new_model` gives the default model; :func:`model_from_snapshot` rebuilds any model of this
package from its :meth:`~StreamingAnomalyModel.snapshot` (after a collector restart).
"""

from __future__ import annotations

from collections.abc import Mapping

from agentmesh.collector.anomaly.adaptive import AdaptiveSpikeModel
from agentmesh.collector.anomaly.model import StreamingAnomalyModel
from agentmesh.collector.anomaly.windowed_gaussian import WindowedGaussian
from agentmesh.collector.detection import JsonValue
from agentmesh.core.errors import DetectionError

__all__ = [
    "AdaptiveSpikeModel",
    "StreamingAnomalyModel",
    "WindowedGaussian",
    "model_from_snapshot",
    "new_model",
]


def new_model(*, spikes_only: bool = False) -> StreamingAnomalyModel:
    """Create the default model (:class:`AdaptiveSpikeModel`, cold start of 100 points).

    Args:
        spikes_only: For positive, skewed streams where only increases matter (latency, token
            counts, cost): model the logarithm and alert on upward departures only.

    Returns:
        A fresh model.
    """
    if spikes_only:
        return AdaptiveSpikeModel(log_scale=True, upward_only=True)
    return AdaptiveSpikeModel()


def model_from_snapshot(state: Mapping[str, JsonValue]) -> StreamingAnomalyModel:
    """Rebuild a model from its snapshot.

    Args:
        state: What a model's ``snapshot()`` returned.

    Returns:
        A model of the snapshot's kind, in the snapshot's state.

    Raises:
        DetectionError: When the snapshot's kind is unknown or its fields are wrong.
    """
    kind = state.get("kind")
    model: StreamingAnomalyModel
    if kind == "adaptive_spike":
        model = AdaptiveSpikeModel()
    elif kind == "windowed_gaussian":
        model = WindowedGaussian()
    else:
        raise DetectionError(f"anomaly model state: unknown kind {kind!r}")
    model.restore(state)
    return model
