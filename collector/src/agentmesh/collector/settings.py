"""Settings of the collector service, read from ``AGENTMESH_COLLECTOR_*`` variables.

Example:
    >>> settings = CollectorSettings.load(grpc_port=0)
    >>> settings.grpc_port, settings.loop_max_repeats
    (0, 3)
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from agentmesh.core.settings import AgentMeshSettings

__all__ = ["CollectorSettings"]

_MIB = 1024 * 1024


class CollectorSettings(AgentMeshSettings):
    """How the collector listens, stores, buffers and detects.

    Build it with :meth:`~agentmesh.core.settings.AgentMeshSettings.load` so a wrong value
    raises a :class:`~agentmesh.core.errors.ConfigError` naming the variable.
    """

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_COLLECTOR_", extra="ignore", validate_default=True
    )

    grpc_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=255,
        description="Interface the OTLP/gRPC receiver binds to (`0.0.0.0` for every one).",
    )
    grpc_port: int = Field(
        default=4317,
        ge=0,
        le=65535,
        description="TCP port of the OTLP/gRPC receiver; 0 picks any free port.",
    )
    duckdb_path: Path = Field(
        default=Path("agentmesh.duckdb"),
        description="DuckDB file holding spans, graphs and detections (created if missing).",
    )
    max_receive_message_bytes: int = Field(
        default=16 * _MIB,
        ge=64 * 1024,
        le=1024 * _MIB,
        description="Largest OTLP request accepted, in bytes; bigger ones are refused by gRPC.",
    )
    queue_max_batches: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description=(
            "Span batches waiting to be processed before the receiver answers UNAVAILABLE "
            "(exporters then retry later)."
        ),
    )
    max_live_traces: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Traces whose graph is kept in memory; the least recently updated is evicted.",
    )
    loop_max_repeats: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Times an agent cycle may repeat in a row; one more repetition is a loop.",
    )
    loop_max_cycle_length: int = Field(
        default=4,
        ge=2,
        le=64,
        description="Longest agent cycle (distinct agents) the loop rule looks for.",
    )
    grpc_grace_seconds: float = Field(
        default=5.0,
        ge=0.0,
        le=300.0,
        description="Seconds in-flight OTLP requests get to finish when the receiver stops.",
    )
    drain_timeout_seconds: float = Field(
        default=30.0,
        ge=0.0,
        le=3600.0,
        description="Seconds the pipeline gets to process queued batches on shutdown.",
    )
