"""``agentmesh.instrumentation.init``: the one-line set-up, which never raises, even on import.

Its work is in :mod:`agentmesh.instrumentation._setup`, which imports OpenTelemetry's SDK; that
import raises for some settings of OpenTelemetry's own (``OTEL_PROPAGATORS`` naming a
propagator that is not installed), before ``_setup.init`` could catch anything.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from agentmesh.core.log import get_logger

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["init"]


def init(**overrides: object) -> TracerProvider | None:
    """Instrument this process: export spans to the AgentMesh collector, patch every library.

    Builds a tracer provider (resource ``service.name``, OTLP/gRPC exporter with a bounded
    shutdown) and sets it global, then instruments every installed supported library
    (``openai``, ``langgraph``). Idempotent: later calls return the same provider. Never
    raises: a wrong setting, or an OpenTelemetry that cannot start (``OTEL_PROPAGATORS``
    naming a propagator that is not installed), is logged and the application runs
    uninstrumented. AgentMesh's
    own logs follow the application's logging setup (see :mod:`agentmesh.core.log`).

    Args:
        **overrides: Settings that take precedence over ``AGENTMESH_*`` variables, for
            example ``endpoint="http://collector:4317"`` or ``service_name="research-bot"``.

    Returns:
        The global SDK tracer provider, or ``None`` when disabled or misconfigured.

    Example:
        >>> import agentmesh.instrumentation as am
        >>> am.init(disabled=True) is None
        True
    """
    try:  # importing OpenTelemetry's SDK can itself raise (OTEL_PROPAGATORS, say)
        from agentmesh.instrumentation._setup import init as setup
    except Exception as exc:  # noqa: BLE001 - init() never raises into the application
        with suppress(Exception):
            get_logger(__name__).error(
                "agentmesh.init_failed", error_type=type(exc).__name__, error=str(exc)
            )
        return None
    return setup(**overrides)
