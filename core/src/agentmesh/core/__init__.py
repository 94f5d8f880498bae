"""AgentMesh core: errors, settings, logging, ids and the span contract.

The public surface is re-exported here; the span contract lives in
:mod:`agentmesh.core.semconv` and is imported from there.
"""

from agentmesh.core.errors import (
    AgentMeshError,
    CheckpointConflictError,
    CheckpointError,
    CheckpointSerdeError,
    CollectorError,
    ConfigError,
    ContractError,
    DetectionError,
    InstrumentationError,
    ProviderError,
    ReceiverError,
    RouteTableError,
    RunStoppedError,
    StoreError,
)
from agentmesh.core.ids import new_run_id, span_id_hex, trace_id_hex
from agentmesh.core.log import Logger, LoggingSettings, configure_logging, get_logger
from agentmesh.core.settings import AgentMeshSettings, LogLevel

__all__ = [
    "AgentMeshError",
    "AgentMeshSettings",
    "CheckpointConflictError",
    "CheckpointError",
    "CheckpointSerdeError",
    "CollectorError",
    "ConfigError",
    "ContractError",
    "DetectionError",
    "InstrumentationError",
    "LogLevel",
    "Logger",
    "LoggingSettings",
    "ProviderError",
    "ReceiverError",
    "RouteTableError",
    "RunStoppedError",
    "StoreError",
    "configure_logging",
    "get_logger",
    "new_run_id",
    "span_id_hex",
    "trace_id_hex",
]
