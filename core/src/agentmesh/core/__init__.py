"""AgentMesh core: errors, settings, logging, ids and the span contract.

The public surface is re-exported here; the span contract lives in
:mod:`agentmesh.core.semconv` and is imported from there. The errors and ids are imported with
the package; the logging and settings names (pydantic-settings, structlog) on first use, so a
module that only raises an AgentMesh error imports neither.
"""

from typing import TYPE_CHECKING

from agentmesh.core.errors import (
    AgentMeshError,
    CheckpointConflictError,
    CheckpointError,
    CheckpointSerdeError,
    CheckpointUnavailableError,
    CollectorError,
    ConfigError,
    ContractError,
    DetectionError,
    InstrumentationError,
    ProviderError,
    ReceiverError,
    ResumeError,
    RouteTableError,
    RunStoppedError,
    StoreError,
    StoreUnavailableError,
)
from agentmesh.core.ids import new_run_id, span_id_hex, trace_id_hex
from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.core.log import Logger, LoggingSettings, configure_logging, get_logger
    from agentmesh.core.settings import AgentMeshSettings, LogLevel

__all__ = [
    "AgentMeshError",
    "AgentMeshSettings",
    "CheckpointConflictError",
    "CheckpointError",
    "CheckpointSerdeError",
    "CheckpointUnavailableError",
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
    "ResumeError",
    "RouteTableError",
    "RunStoppedError",
    "StoreError",
    "StoreUnavailableError",
    "configure_logging",
    "get_logger",
    "new_run_id",
    "span_id_hex",
    "trace_id_hex",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "AgentMeshSettings": "agentmesh.core.settings",
        "LogLevel": "agentmesh.core.settings",
        "Logger": "agentmesh.core.log",
        "LoggingSettings": "agentmesh.core.log",
        "configure_logging": "agentmesh.core.log",
        "get_logger": "agentmesh.core.log",
    },
)
