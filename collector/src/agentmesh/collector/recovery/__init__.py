"""Automatic recovery (issue #5): detections become stopped runs and open circuit breakers.

The collector keeps a *control document* (:mod:`~agentmesh.collector.recovery.document`) in
memory or in Redis (:mod:`~agentmesh.collector.recovery.control_state`), serves it at
``GET /v1/control`` (:func:`control_routes`) and changes it with the
:class:`RecoveryEngine` according to the :class:`RecoveryPolicy`. Applications poll it: a
stopped run raises :class:`~agentmesh.core.errors.RunStoppedError` at its next step, a model
with an open breaker is skipped for a fallback.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.recovery.breakers import closes, is_half_open, reopened, tripped
    from agentmesh.collector.recovery.checkpoints import CheckpointIndex
    from agentmesh.collector.recovery.control_state import (
        Change,
        ControlState,
        MemoryControlState,
        expiry,
        needs_expiry,
    )
    from agentmesh.collector.recovery.document import (
        Breaker,
        BreakerState,
        ControlDocument,
        RunAction,
        RunControl,
    )
    from agentmesh.collector.recovery.endpoint import CONTROL_PATH, MAX_WAIT_SECONDS, control_routes
    from agentmesh.collector.recovery.engine import (
        ActionKind,
        RecoveryAction,
        RecoveryEngine,
        RecoveryObserver,
    )
    from agentmesh.collector.recovery.factory import make_control_state
    from agentmesh.collector.recovery.policy import (
        DEFAULT_ACTIONS,
        DETECTION_TYPES,
        MODEL_TYPES,
        PolicyAction,
        RecoveryPolicy,
        RecoverySettings,
    )
    from agentmesh.collector.recovery.redis_control_state import (
        ControlStateHealth,
        RedisControlState,
    )

__all__ = [
    "CONTROL_PATH",
    "DEFAULT_ACTIONS",
    "DETECTION_TYPES",
    "MAX_WAIT_SECONDS",
    "MODEL_TYPES",
    "ActionKind",
    "Breaker",
    "BreakerState",
    "Change",
    "CheckpointIndex",
    "ControlDocument",
    "ControlState",
    "ControlStateHealth",
    "MemoryControlState",
    "PolicyAction",
    "RecoveryAction",
    "RecoveryEngine",
    "RecoveryObserver",
    "RecoveryPolicy",
    "RecoverySettings",
    "RedisControlState",
    "RunAction",
    "RunControl",
    "closes",
    "control_routes",
    "expiry",
    "is_half_open",
    "make_control_state",
    "needs_expiry",
    "reopened",
    "tripped",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "ActionKind": "agentmesh.collector.recovery.engine",
        "Breaker": "agentmesh.collector.recovery.document",
        "BreakerState": "agentmesh.collector.recovery.document",
        "CONTROL_PATH": "agentmesh.collector.recovery.endpoint",
        "Change": "agentmesh.collector.recovery.control_state",
        "CheckpointIndex": "agentmesh.collector.recovery.checkpoints",
        "ControlDocument": "agentmesh.collector.recovery.document",
        "ControlState": "agentmesh.collector.recovery.control_state",
        "ControlStateHealth": "agentmesh.collector.recovery.redis_control_state",
        "DEFAULT_ACTIONS": "agentmesh.collector.recovery.policy",
        "DETECTION_TYPES": "agentmesh.collector.recovery.policy",
        "MAX_WAIT_SECONDS": "agentmesh.collector.recovery.endpoint",
        "MODEL_TYPES": "agentmesh.collector.recovery.policy",
        "MemoryControlState": "agentmesh.collector.recovery.control_state",
        "PolicyAction": "agentmesh.collector.recovery.policy",
        "RecoveryAction": "agentmesh.collector.recovery.engine",
        "RecoveryEngine": "agentmesh.collector.recovery.engine",
        "RecoveryObserver": "agentmesh.collector.recovery.engine",
        "RecoveryPolicy": "agentmesh.collector.recovery.policy",
        "RecoverySettings": "agentmesh.collector.recovery.policy",
        "RedisControlState": "agentmesh.collector.recovery.redis_control_state",
        "RunAction": "agentmesh.collector.recovery.document",
        "RunControl": "agentmesh.collector.recovery.document",
        "closes": "agentmesh.collector.recovery.breakers",
        "control_routes": "agentmesh.collector.recovery.endpoint",
        "expiry": "agentmesh.collector.recovery.control_state",
        "is_half_open": "agentmesh.collector.recovery.breakers",
        "make_control_state": "agentmesh.collector.recovery.factory",
        "needs_expiry": "agentmesh.collector.recovery.control_state",
        "reopened": "agentmesh.collector.recovery.breakers",
        "tripped": "agentmesh.collector.recovery.breakers",
    },
)
