"""Build the route table store the settings ask for.

Example:
    >>> from agentmesh.collector.settings import CollectorSettings
    >>> type(make_route_table_state(CollectorSettings.load())).__name__  # no redis_url
    'MemoryRouteTableState'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentmesh.collector.routing.redis_table_state import RedisRouteTableState
from agentmesh.collector.routing.table_state import MemoryRouteTableState, RouteTableState

if TYPE_CHECKING:
    from agentmesh.collector.recovery.control_state import ControlState
    from agentmesh.collector.settings import CollectorSettings

__all__ = ["make_route_table_state"]


def make_route_table_state(
    settings: CollectorSettings, control: ControlState | None = None
) -> RouteTableState:
    """Return the Redis route table store when ``redis_url`` is set (shared, kept on restart).

    Args:
        settings: The collector's settings (``redis_url``, ``redis_prefix``,
            ``redis_timeout_seconds``).
        control: The control state whose open breakers the served table lists, if any.

    Returns:
        The store, not opened yet (opening never raises: a dead Redis is logged).
    """
    if settings.redis_url is None:
        return MemoryRouteTableState(control)
    return RedisRouteTableState(
        settings.redis_url.get_secret_value(),
        control=control,
        prefix=settings.redis_prefix,
        timeout_seconds=settings.redis_timeout_seconds,
    )
