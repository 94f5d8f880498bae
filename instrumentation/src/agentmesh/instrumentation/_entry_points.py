"""Names under which AgentMesh registers its OpenTelemetry entry points (no imports)."""

from typing import Final

__all__ = ["CONFIGURATOR_NAME", "DISTRO_NAME"]

DISTRO_NAME: Final = "agentmesh"
"""The ``opentelemetry_distro`` entry point (``OTEL_PYTHON_DISTRO``)."""

CONFIGURATOR_NAME: Final = "agentmesh"
"""The ``opentelemetry_configurator`` entry point (``OTEL_PYTHON_CONFIGURATOR``)."""
