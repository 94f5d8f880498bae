"""Build the hot state the settings ask for.

Example:
    >>> from agentmesh.collector.settings import CollectorSettings
    >>> make_hot_state(CollectorSettings.load()) is None  # no redis_url: no hot state
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentmesh.collector.hot_state.fail_open import FailOpenHotState
from agentmesh.collector.hot_state.redis_state import RedisHotState

if TYPE_CHECKING:
    from agentmesh.collector.settings import CollectorSettings

__all__ = ["make_hot_state"]


def make_hot_state(settings: CollectorSettings) -> FailOpenHotState | None:
    """Build the Redis hot state of ``settings.redis_url``, wrapped to fail open.

    Args:
        settings: The collector's settings (``redis_*``).

    Returns:
        The hot state (not opened yet: ``await hot.open()`` never raises), or ``None`` when
        ``redis_url`` is unset.
    """
    if settings.redis_url is None:
        return None
    redis = RedisHotState(
        settings.redis_url.get_secret_value(),
        prefix=settings.redis_prefix,
        finished_ttl_seconds=settings.redis_finished_run_ttl_seconds,
        idle_ttl_seconds=settings.redis_idle_run_ttl_seconds,
        timeout_seconds=settings.redis_timeout_seconds,
    )
    return FailOpenHotState(redis)
