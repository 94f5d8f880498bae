"""Build the control document store the settings ask for.

Example:
    >>> from agentmesh.collector.settings import CollectorSettings
    >>> type(make_control_state(CollectorSettings.load())).__name__  # no redis_url: in memory
    'MemoryControlState'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentmesh.collector.recovery.control_state import ControlState, MemoryControlState
from agentmesh.collector.recovery.redis_control_state import RedisControlState

if TYPE_CHECKING:
    from agentmesh.collector.settings import CollectorSettings

__all__ = ["make_control_state"]


def make_control_state(settings: CollectorSettings) -> ControlState:
    """Return the Redis control state when ``redis_url`` is set (shared by every collector).

    Args:
        settings: The collector's settings (``redis_url``, ``redis_prefix``,
            ``redis_timeout_seconds``).

    Returns:
        The store, not opened yet (opening never raises: a dead Redis is logged).
    """
    if settings.redis_url is None:
        return MemoryControlState()
    return RedisControlState(
        settings.redis_url.get_secret_value(),
        prefix=settings.redis_prefix,
        timeout_seconds=settings.redis_timeout_seconds,
    )
