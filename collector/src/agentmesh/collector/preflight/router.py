"""The router trainer's configuration: the offline predictor loads, the trade-offs are valid."""

from __future__ import annotations

from agentmesh.collector.preflight.finding import Finding
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError

__all__ = ["check_catalog", "check_router"]


def check_catalog() -> Finding:
    """Read the model catalog with ``AGENTMESH_ROUTER_CATALOG_PATH`` applied.

    The collector prices calls with it; an override it cannot use would be logged and left
    out at run time (the bundled catalog prices), which is worth knowing before starting.

    Returns:
        The finding (``model catalog``).
    """
    from agentmesh.router.catalog import RouterSettings, default_catalog

    default_catalog.cache_clear()
    try:
        catalog = default_catalog()
    except ConfigError as exc:
        return Finding("model catalog", "fail", str(exc))
    path = RouterSettings.load().catalog_path
    source = f"bundled, with {path}" if path is not None else "bundled"
    return Finding("model catalog", "ok", f"{len(list(catalog))} models ({source})")


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
