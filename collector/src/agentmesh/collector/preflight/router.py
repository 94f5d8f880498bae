"""The router's configuration: the offline predictor loads, the modes and trade-offs are valid."""

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
    """Load the predictor and read the modes and trade-offs the route table would carry.

    The modes and trade-offs are published with training off too (configuration, not
    learning); the offline predictor is only loaded when training is on.

    Args:
        settings: The collector's settings.

    Returns:
        The finding (``router``).
    """
    from agentmesh.collector.routing.configured import configured_change, tradeoffs_from_settings
    from agentmesh.collector.routing.trainer import load_predictor

    try:
        configured_change(settings)  # what the route table could not carry fails here
        tradeoffs = tradeoffs_from_settings(settings)
        path = settings.router_predictor_path
        predictor = load_predictor(path) if path is not None and settings.router_training else None
    except ConfigError as exc:
        return Finding("router", "fail", str(exc))
    weights = f"; trade-offs for {len(tradeoffs)} task class(es)" if tradeoffs else ""
    if not settings.router_training:
        parts: list[str] = []
        if settings.router_modes:
            parts.append(f"modes for {len(settings.router_modes)} task class(es)")
        if tradeoffs:
            parts.append(f"trade-offs for {len(tradeoffs)} task class(es)")
        if not parts:
            return Finding("router", "ok", "route table training off")
        published = " and ".join(parts)
        return Finding(
            "router", "ok", f"route table training off; publishes the {published} (no learning)"
        )
    if predictor is None:
        return Finding("router", "ok", f"learns from outcomes, no offline predictor{weights}")
    reads = "reads the prompt's end" if predictor.reads_text else "by task class"
    return Finding("router", "ok", f"predictor {path} loads ({reads}){weights}")
