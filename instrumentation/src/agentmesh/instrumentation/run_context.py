"""The run id in W3C baggage: read it for a span, put it in a context for a run.

A workflow span puts ``agentmesh.run.id`` into baggage; every span started under it (agent
steps, LLM calls) copies it, and propagators carry it to other processes. Code without a
framework opens a run with :func:`run_scope`.

Example:
    >>> ctx = with_run_id("5f0c9a6e2b7d4c1e9a3f8b2d6e4c1a07")
    >>> current_run_id(ctx)
    '5f0c9a6e2b7d4c1e9a3f8b2d6e4c1a07'
    >>> with run_scope("run-1") as run_id:
    ...     current_run_id() == run_id
    True
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from opentelemetry import baggage
from opentelemetry.context import Context

from agentmesh.core import new_run_id
from agentmesh.core.semconv import AGENTMESH_RUN_ID
from agentmesh.instrumentation._context import attached

__all__ = ["current_run_id", "run_scope", "with_run_id"]


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


@contextmanager
def run_scope(run_id: str | None = None) -> Generator[str]:
    """Run a block as one AgentMesh run: its run id is in baggage for everything inside.

    Spans started inside (LLM calls, agent steps, graphs) carry the run id, and outgoing
    HTTP calls carry it to other processes. Inside an existing run, the block joins it.

    Args:
        run_id: The run id; the current run's, or a new one, by default.

    Yields:
        The run id.
    """
    chosen = run_id or current_run_id() or new_run_id()
    with attached(with_run_id(chosen)):
        yield chosen
