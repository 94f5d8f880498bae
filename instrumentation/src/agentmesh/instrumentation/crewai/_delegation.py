"""Delegation handoffs: what a delegation tool hands to a coworker.

CrewAI's delegation tools (``Delegate work to coworker``, ``Ask question to coworker``) both
end in ``BaseAgentTool._execute(agent_name, task, context)``, which runs the coworker's
``execute_task`` in the same thread. The wrapper announces a :class:`PendingHandoff` in the
context for that call: the coworker's agent span takes it (source: the delegating agent;
digest and size of ``{"task": …, "context": …}``; with content capture on, that itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.context import Context

from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.crewai._crossing import crossing_attributes
from agentmesh.instrumentation.crewai._execution import (
    PendingHandoff,
    current_step,
    with_pending_handoff,
)

__all__ = ["delegation_wrapper"]


def _crossing(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, object]:
    task: object = args[1] if len(args) > 1 else kwargs.get("task")
    context: object = args[2] if len(args) > 2 else kwargs.get("context")
    return {"task": task, "context": context}


def _announce(
    capture_content: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Context | None:
    step = current_step()
    if step is None:
        return None
    handed = _crossing(args, kwargs)
    crossed = crossing_attributes(handed, capture_content=capture_content)
    return with_pending_handoff(PendingHandoff(step.role, "delegation", crossed, handed))


def delegation_wrapper(capture_content: bool) -> Wrapper:
    """Build the wrapper of ``BaseAgentTool._execute``.

    Args:
        capture_content: Record what crossed (capped), not only its digest and size.

    Returns:
        A wrapt wrapper.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        context = _failopen.safe_call("crewai.delegation", _announce, capture_content, args, kwargs)
        if context is None:
            return wrapped(*args, **kwargs)
        with attached(context):
            return wrapped(*args, **kwargs)

    return wrapper
