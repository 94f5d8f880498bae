"""The AgentMesh run id carried in baggage, when the instrumentation package is installed."""

from __future__ import annotations

__all__ = ["baggage_run_id"]


def baggage_run_id() -> str | None:
    """Return the run id of the current AgentMesh run, if any.

    ``agentmesh.instrumentation`` puts it in OpenTelemetry baggage (a crew kickoff does, and so
    does ``run_scope``); without that package, or outside a run, there is none.

    Returns:
        The run id, or ``None``.
    """
    try:
        from agentmesh.instrumentation.run_context import current_run_id
    except ImportError:
        return None
    return current_run_id()
