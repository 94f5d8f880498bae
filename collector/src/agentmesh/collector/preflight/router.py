"""The router trainer's configuration: the offline predictor loads, the trade-offs are valid."""

from __future__ import annotations

from agentmesh.collector.preflight.finding import Finding
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError

__all__ = ["check_router"]


def check_router(settings: CollectorSettings) -> Finding:
    """Load the predictor and read the trade-offs the route table trainer would start with.

    Args:
        settings: The collector's settings.

    Returns:
        The finding (``router``).
    """
    if not settings.router_training:
        return Finding("router", "ok", "route table training off")
    from agentmesh.collector.routing.trainer import load_predictor, tradeoffs_from_settings

    try:
        tradeoffs = tradeoffs_from_settings(settings)
        path = settings.router_predictor_path
        predictor = load_predictor(path) if path is not None else None
    except ConfigError as exc:
        return Finding("router", "fail", str(exc))
    weights = f"; trade-offs for {len(tradeoffs)} task class(es)" if tradeoffs else ""
    if predictor is None:
        return Finding("router", "ok", f"learns from outcomes, no offline predictor{weights}")
    reads = "reads the prompt's end" if predictor.reads_text else "by task class"
    return Finding("router", "ok", f"predictor {path} loads ({reads}){weights}")
