"""The run id in W3C baggage: read it for a span, put it in a context for a run.

A workflow span puts ``agentmesh.run.id`` into baggage; every span started under it (agent
steps, LLM calls) copies it, and propagators carry it to other processes.

Example:
    >>> ctx = with_run_id("5f0c9a6e2b7d4c1e9a3f8b2d6e4c1a07")
    >>> current_run_id(ctx)
    '5f0c9a6e2b7d4c1e9a3f8b2d6e4c1a07'
"""

from __future__ import annotations

from opentelemetry import baggage
from opentelemetry.context import Context

from agentmesh.core.semconv import AGENTMESH_RUN_ID

__all__ = ["current_run_id", "with_run_id"]


def current_run_id(context: Context | None = None) -> str | None:
    """Return the run id carried in baggage, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The run id, or ``None`` when baggage carries none.
    """
    value = baggage.get_baggage(AGENTMESH_RUN_ID, context)
    return value if isinstance(value, str) and value else None


def with_run_id(run_id: str, context: Context | None = None) -> Context:
    """Return a context whose baggage carries ``run_id``.

    Args:
        run_id: The run id.
        context: The context to extend; the current one by default.

    Returns:
        The new context (nothing is attached).
    """
    return baggage.set_baggage(AGENTMESH_RUN_ID, run_id, context)
