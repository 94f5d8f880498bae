"""The route table's configured part: the modes and trade-offs the settings name.

``router_modes`` and ``router_tradeoffs`` are configuration, not learning: the router trainer
writes them into every table it publishes, and a collector that does not train
(``router_training`` off) publishes them once, at start (:func:`publish_configuration`), so
applications get them either way. What the table already holds (a predictor, the models'
statistics, from Redis or an earlier publication) is kept.

Example:
    >>> from agentmesh.collector.settings import CollectorSettings
    >>> from agentmesh.router.table import BUNDLED_TABLE
    >>> settings = CollectorSettings.load(router_modes={"*": "shadow", "triage": "enforce"})
    >>> change = configured_change(settings)
    >>> table = change(BUNDLED_TABLE) if change is not None else BUNDLED_TABLE
    >>> table.default_mode, dict(table.modes)
    ('shadow', {'triage': 'enforce'})
    >>> configured_change(CollectorSettings.load()) is None  # nothing configured
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from agentmesh.collector.routing.table_state import RouteTableState, TableChange, checked
from agentmesh.core.errors import ConfigError, RouteTableError
from agentmesh.core.log import get_logger
from agentmesh.router.request import RouteMode
from agentmesh.router.table import BUNDLED_TABLE, RouteTable, Tradeoff

if TYPE_CHECKING:
    from agentmesh.collector.settings import CollectorSettings

__all__ = [
    "configured_change",
    "publish_configuration",
    "tradeoffs_from_settings",
    "with_configuration",
]

_log = get_logger(__name__)

_EVERY_CLASS = "*"


def tradeoffs_from_settings(settings: CollectorSettings) -> dict[str, Tradeoff] | None:
    """Read ``router_tradeoffs``: each task class's cost and latency weights.

    Args:
        settings: The collector's settings.

    Returns:
        The trade-offs by task class, or ``None`` when none are configured.

    Raises:
        ConfigError: A task class has an unknown key, or a weight that is negative or not a
            finite number (NaN and infinity cannot be published: JSON has neither).
    """
    if not settings.router_tradeoffs:
        return None
    tradeoffs: dict[str, Tradeoff] = {}
    for task, raw in settings.router_tradeoffs.items():
        unknown = set(raw) - {"cost_weight", "latency_weight"}
        if unknown or any(not math.isfinite(v) or v < 0 for v in raw.values()):
            raise ConfigError(
                f"AGENTMESH_COLLECTOR_ROUTER_TRADEOFFS[{task!r}]: expected non-negative, finite "
                f"cost_weight and latency_weight, got {raw}"
            )
        tradeoffs[task] = Tradeoff(raw.get("cost_weight", 0.0), raw.get("latency_weight", 0.0))
    return tradeoffs


def with_configuration(
    table: RouteTable,
    modes: Mapping[str, RouteMode] | None,
    tradeoffs: Mapping[str, Tradeoff] | None,
) -> RouteTable:
    """Write configured modes and trade-offs into a table (what is not configured is kept).

    Args:
        table: The table.
        modes: Mode by task class; ``"*"`` becomes the table's ``default_mode``.
        tradeoffs: Trade-off weights by task class.

    Returns:
        The table with them.
    """
    if modes is not None:
        named = {task: mode for task, mode in modes.items() if task != _EVERY_CLASS}
        table = replace(table, modes=named, default_mode=modes.get(_EVERY_CLASS))
    if tradeoffs is not None:
        table = replace(table, tradeoffs=dict(tradeoffs))
    return table


def configured_change(settings: CollectorSettings) -> TableChange | None:
    """Return the change writing the settings' modes and trade-offs into a table.

    Args:
        settings: The collector's settings (``router_modes``, ``router_tradeoffs``).

    Returns:
        The change (``"*"`` of ``router_modes`` becomes the table's ``default_mode``), or
        ``None`` when neither is set.

    Raises:
        ConfigError: A trade-off is invalid (an unknown key, a negative or infinite weight).
    """
    modes = dict(settings.router_modes) if settings.router_modes else None
    tradeoffs = tradeoffs_from_settings(settings)
    if modes is None and tradeoffs is None:
        return None

    def change(table: RouteTable) -> RouteTable:
        return with_configuration(table, modes, tradeoffs)

    try:
        checked(change(BUNDLED_TABLE))  # what applications would refuse is refused here
    except RouteTableError as exc:
        raise ConfigError(f"AGENTMESH_COLLECTOR_ROUTER_TRADEOFFS: {exc}") from exc
    return change


async def publish_configuration(
    settings: CollectorSettings, state: RouteTableState
) -> RouteTable | None:
    """Publish the settings' modes and trade-offs (for a collector that does not train).

    Nothing is published when the table already says the same (a restart on the same Redis).

    Args:
        settings: The collector's settings.
        state: The route table store, opened.

    Returns:
        The table published, or ``None`` when there was nothing to publish.

    Raises:
        ConfigError: A trade-off is invalid.
    """
    change = configured_change(settings)
    if change is None:
        return None
    published = state.published
    if change(published) == published:
        return None
    table = await state.publish(change)
    _log.info(
        "router.configuration_published",
        version=table.version,
        default_mode=table.default_mode,
        modes=dict(table.modes),
        tradeoffs=sorted(table.tradeoffs),
    )
    return table
