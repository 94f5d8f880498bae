"""``AgentMeshConfigurator``: the OpenTelemetry SDK configurator of the zero-code path.

Loaded by ``opentelemetry-instrument`` / ``agentmesh-instrument`` through the
``opentelemetry_configurator`` entry point (``OTEL_PYTHON_CONFIGURATOR=agentmesh``), after the
distro and before the instrumentors. It builds the tracer provider (OTLP/gRPC exporter to
``AGENTMESH_ENDPOINT``, bounded shutdown, start markers for steps unless
``AGENTMESH_STEP_MARKERS=false``) and sets it global; it never raises.
"""

from __future__ import annotations

from opentelemetry.sdk._configuration import (  # pyright: ignore[reportPrivateUsage]
    _BaseConfigurator,  # pyright: ignore[reportPrivateUsage]
)

from agentmesh.core.log import get_logger
from agentmesh.instrumentation._setup import configure_tracing, load_settings

__all__ = ["AgentMeshConfigurator"]

_log = get_logger(__name__)


class AgentMeshConfigurator(_BaseConfigurator):
    """Configure the OpenTelemetry SDK for AgentMesh from ``AGENTMESH_*`` settings.

    Example:
        >>> AgentMeshConfigurator() is AgentMeshConfigurator()  # one per process
        True
    """

    def _configure(self, **kwargs: object) -> None:
        try:
            settings = load_settings()
            if settings is not None:
                configure_tracing(settings)
        except Exception as exc:  # noqa: BLE001 - the app must start even if we cannot
            _log.error("agentmesh.configure_failed", error_type=type(exc).__name__, error=str(exc))
