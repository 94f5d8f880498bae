"""``AgentMeshDistro``: the OpenTelemetry distro of the zero-code path.

Selected with ``OTEL_PYTHON_DISTRO=agentmesh`` (``agentmesh-instrument`` sets it). It makes
the AgentMesh configurator the default and applies instrumentors fail-open: ours only when their
library is installed in a supported version, and none at all when ``AGENTMESH_DISABLED`` is set.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` disables ours by entry point name (``agentmesh_openai``,
as OpenTelemetry does) or by library name (``openai``, ``langgraph``).
When our instrumentor for a library is applied, a peer's entry point named after that library
(``openai``: OpenLLMetry, OpenInference and the official GenAI instrumentation all use it;
``anthropic``, ``crewai``, ``langgraph``) is skipped and the skip logged: one span per call
(see :mod:`agentmesh.instrumentation._dedupe` for the rule at run time).
AgentMesh's own logs follow the app's logging setup (:mod:`agentmesh.core.log`), so the app's
output stays clean.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Final

from opentelemetry.instrumentation.distro import (  # pyright: ignore[reportMissingTypeStubs]
    BaseDistro,
)
from opentelemetry.instrumentation.environment_variables import (  # pyright: ignore[reportMissingTypeStubs]
    OTEL_PYTHON_CONFIGURATOR,
)
from opentelemetry.instrumentation.instrumentor import (  # pyright: ignore[reportMissingTypeStubs]
    BaseInstrumentor,
)
from opentelemetry.util._importlib_metadata import (  # pyright: ignore[reportPrivateUsage]
    EntryPoint,
)

from agentmesh.core.log import get_logger
from agentmesh.instrumentation._entry_points import CONFIGURATOR_NAME
from agentmesh.instrumentation._setup import (
    instrumentation_disabled,
    instrumentor_supported,
    load_settings,
)

__all__ = ["AgentMeshDistro"]

_OWN_PACKAGE = "agentmesh.instrumentation."

_SHADOWED: Final = frozenset({"openai", "anthropic", "crewai", "langgraph"})
"""Library names a peer's entry point may use, for libraries we instrument ourselves."""

_log = get_logger(__name__)


class AgentMeshDistro(BaseDistro):  # pyright: ignore[reportUntypedBaseClass]
    """The AgentMesh OpenTelemetry distro.

    Example:
        >>> AgentMeshDistro() is AgentMeshDistro()  # one per process
        True
    """

    def _configure(self, **kwargs: object) -> None:
        try:
            os.environ.setdefault(OTEL_PYTHON_CONFIGURATOR, CONFIGURATOR_NAME)
        except Exception as exc:  # noqa: BLE001 - never stop the app from starting
            _log.error("agentmesh.distro_failed", error=str(exc))

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: object) -> None:
        """Apply one ``opentelemetry_instrumentor`` entry point.

        Other packages' instrumentors are applied as OpenTelemetry does by default; ours are
        applied fail-open, and skipped when their library is missing or unsupported, when
        AgentMesh is disabled, or when ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names them.

        Args:
            entry_point: The entry point.
            **kwargs: Passed to ``instrument()``.
        """
        if not str(entry_point.value).startswith(_OWN_PACKAGE):
            if _shadowed_by_ours(entry_point.name):
                _log.info(
                    "agentmesh.peer_instrumentor_skipped",
                    entry_point=entry_point.name,
                    value=str(entry_point.value),
                    reason="AgentMesh instruments this library (one span per call)",
                )
                return
            super().load_instrumentor(entry_point, **kwargs)  # pyright: ignore[reportUnknownMemberType]
            return
        try:
            if instrumentation_disabled(entry_point.name):
                _log.debug("agentmesh.instrumentor_disabled", entry_point=entry_point.name)
                return
            settings = load_settings()
            if settings is None or settings.disabled:
                return
            loaded: object = entry_point.load()
            if not (isinstance(loaded, type) and issubclass(loaded, BaseInstrumentor)):
                return
            instrumentor = loaded()
            if not instrumentor_supported(instrumentor):
                _log.debug("agentmesh.instrumentor_skipped", entry_point=entry_point.name)
                return
            options = {k: v for k, v in kwargs.items() if k != "skip_dep_check"}
            instrumentor.instrument(skip_dep_check=True, **options)
        except Exception as exc:  # noqa: BLE001 - one instrumentor must not break the app
            _log.warning(
                "agentmesh.instrument_failed", entry_point=entry_point.name, error=str(exc)
            )


def _shadowed_by_ours(name: str) -> bool:
    """Whether our instrumentor for the library ``name`` is enabled and supported (fail-open)."""
    if name.lower() not in _SHADOWED:
        return False
    try:
        own = f"agentmesh_{name.lower()}"
        if instrumentation_disabled(own):
            return False
        settings = load_settings()
        if settings is None or settings.disabled:
            return False
        for candidate in entry_points(group="opentelemetry_instrumentor", name=own):
            if not candidate.value.startswith(_OWN_PACKAGE):
                continue
            loaded: object = candidate.load()
            if isinstance(loaded, type) and issubclass(loaded, BaseInstrumentor):
                return instrumentor_supported(loaded())
    except Exception as exc:  # noqa: BLE001 - when in doubt, let the peer instrument
        _log.warning("agentmesh.shadow_check_failed", entry_point=name, error=str(exc))
    return False
