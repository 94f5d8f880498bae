"""The task class in W3C baggage: annotate a piece of work with the kind of task it is.

The task class (``agentmesh.run.task_class``) rides in baggage next to the run id: every span
started inside carries it (the baggage span processor stamps it) and outgoing HTTP calls carry
it to other processes. Set it around a block, a function or a coroutine::

    with task_class("research"):
        graph.invoke(...)

    @task_class("summarise")
    async def summarise(text: str) -> str: ...

A LangGraph run may also name it in its config: ``{"metadata": {"agentmesh_task_class": …}}``.

Example:
    >>> with task_class("research"):
    ...     current_task_class()
    'research'
    >>> current_task_class() is None
    True
"""

from __future__ import annotations

from types import TracebackType
from typing import ParamSpec, TypeVar

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agentmesh.core.semconv import AGENTMESH_RUN_TASK_CLASS
from agentmesh.instrumentation._decorate import DecoratingScope
from agentmesh.instrumentation._failopen import safe_call

__all__ = ["TaskClassScope", "current_task_class", "task_class", "with_task_class"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def current_task_class(context: Context | None = None) -> str | None:
    """Return the task class carried in baggage, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The task class, or ``None``.
    """
    value = baggage.get_baggage(AGENTMESH_RUN_TASK_CLASS, context)
    return value if isinstance(value, str) and value else None


def with_task_class(name: str, context: Context | None = None) -> Context:
    """Return a context whose baggage carries the task class ``name``.

    Args:
        name: The task class.
        context: The context to extend; the current one by default.

    Returns:
        The new context (nothing is attached).
    """
    return baggage.set_baggage(AGENTMESH_RUN_TASK_CLASS, name, context)


class TaskClassScope(DecoratingScope):
    """Sets the task class for a block (``with``) or for each call of a function (decorator).

    Args:
        name: The task class.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tokens: list[object] = []

    def __enter__(self) -> str:
        token = safe_call("task_class.attach", otel_context.attach, with_task_class(self.name))
        self._tokens.append(token)
        return self.name

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token = self._tokens.pop() if self._tokens else None
        if token is not None:
            safe_call("task_class.detach", otel_context.detach, token)  # pyright: ignore[reportArgumentType]

    def fresh(self) -> TaskClassScope:
        """A new scope of the same task class, for one call of a decorated function.

        Returns:
            The scope.
        """
        return TaskClassScope(self.name)


def task_class(name: str) -> TaskClassScope:
    """Annotate work with its task class, as a context manager or a decorator.

    Args:
        name: The task class, for example ``"research"``.

    Returns:
        A scope usable as ``with task_class(...):`` or ``@task_class(...)``.

    Example:
        >>> @task_class("triage")
        ... def step() -> str | None:
        ...     return current_task_class()
        >>> step()
        'triage'
    """
    return TaskClassScope(name)
