"""The AgentMesh exception tree.

Every error AgentMesh raises on purpose derives from :class:`AgentMeshError`, so callers can
catch the whole family with one ``except`` clause. Foreign exceptions (pydantic, grpc, duckdb…)
are translated at the boundary with ``raise OurError(...) from exc``::

    AgentMeshError
    ├── ConfigError            a setting is missing or has a wrong value
    ├── ContractError          a span or attribute breaks the span contract
    ├── InstrumentationError   an instrumentor could not be applied (never raised into apps)
    ├── ProviderError          a (fake) provider script or request is invalid
    ├── CollectorError
    │   ├── ReceiverError      the OTLP receiver could not start or decode a request
    │   └── StoreError         a storage backend failed
    └── DetectionError         a detector was misconfigured or failed
"""

from __future__ import annotations

__all__ = [
    "AgentMeshError",
    "CollectorError",
    "ConfigError",
    "ContractError",
    "DetectionError",
    "InstrumentationError",
    "ProviderError",
    "ReceiverError",
    "StoreError",
]


class AgentMeshError(Exception):
    """Root of every exception AgentMesh raises on purpose."""


class ConfigError(AgentMeshError):
    """A setting is missing or has a wrong value.

    The message names the environment variable (or option) and what it wants.
    """


class ContractError(AgentMeshError):
    """A span, attribute or baggage entry breaks the span contract."""


class InstrumentationError(AgentMeshError):
    """An instrumentor could not be applied.

    The instrumentation logs these and carries on: they never reach the application.
    """


class ProviderError(AgentMeshError):
    """A provider script or request is invalid (for example in the fake provider)."""


class CollectorError(AgentMeshError):
    """A failure inside the collector service."""


class ReceiverError(CollectorError):
    """The OTLP receiver could not start, or could not decode a request."""


class StoreError(CollectorError):
    """A storage backend failed to read or write."""


class DetectionError(AgentMeshError):
    """A detector was misconfigured or failed while scoring."""
