"""Hot state shared by collectors: live run index, latest state per run, detection pub/sub.

:class:`RedisHotState` is the shared backend, :class:`MemoryHotState` the one for tests;
:class:`FailOpenHotState` wraps either so that a dead Redis is logged and counted while the
pipeline carries on. :func:`make_hot_state` builds what the settings ask for.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.hot_state.base import (
        DetectionSubscription,
        HotState,
        RunState,
        RunStatus,
    )
    from agentmesh.collector.hot_state.events import (
        detection_from_dict,
        detection_from_json,
        detection_to_dict,
        detection_to_json,
    )
    from agentmesh.collector.hot_state.factory import make_hot_state
    from agentmesh.collector.hot_state.fail_open import FailOpenHotState, HotStateHealth
    from agentmesh.collector.hot_state.memory_state import MemoryHotState
    from agentmesh.collector.hot_state.redis_state import RedisHotState

__all__ = [
    "DetectionSubscription",
    "FailOpenHotState",
    "HotState",
    "HotStateHealth",
    "MemoryHotState",
    "RedisHotState",
    "RunState",
    "RunStatus",
    "detection_from_dict",
    "detection_from_json",
    "detection_to_dict",
    "detection_to_json",
    "make_hot_state",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "DetectionSubscription": "agentmesh.collector.hot_state.base",
        "FailOpenHotState": "agentmesh.collector.hot_state.fail_open",
        "HotState": "agentmesh.collector.hot_state.base",
        "HotStateHealth": "agentmesh.collector.hot_state.fail_open",
        "MemoryHotState": "agentmesh.collector.hot_state.memory_state",
        "RedisHotState": "agentmesh.collector.hot_state.redis_state",
        "RunState": "agentmesh.collector.hot_state.base",
        "RunStatus": "agentmesh.collector.hot_state.base",
        "detection_from_dict": "agentmesh.collector.hot_state.events",
        "detection_from_json": "agentmesh.collector.hot_state.events",
        "detection_to_dict": "agentmesh.collector.hot_state.events",
        "detection_to_json": "agentmesh.collector.hot_state.events",
        "make_hot_state": "agentmesh.collector.hot_state.factory",
    },
)
