"""The shared scoped wrappers (:mod:`agentmesh.instrumentation._scoped`) for methods.

:func:`~agentmesh.instrumentation._scoped.sync_scoped` starts its scope from the call's
``(args, kwargs)``; CrewAI's scopes also need the object the method is called on (the crew,
the agent, the tool). These adapters hand it over and keep the shared start, attach and finish
logic.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation._scoped import Scope, async_scoped, sync_scoped

__all__ = ["InstanceStarter", "async_method_scoped", "sync_method_scoped"]

InstanceStarter = Callable[[Any, tuple[Any, ...], dict[str, Any]], Scope | None]
"""Starts a scope from ``(instance, args, kwargs)``; ``None`` or an error (logged) skips it."""


def sync_method_scoped(where: str, start: InstanceStarter) -> Wrapper:
    """Build a wrapt wrapper running a synchronous method inside a started scope.

    Args:
        where: Name of the start step, for the fail-open log.
        start: Starts the scope.

    Returns:
        The wrapper.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scoped = sync_scoped(where, partial(start, instance))
        return scoped(wrapped, instance, args, kwargs)

    return wrapper


def async_method_scoped(where: str, start: InstanceStarter) -> Wrapper:
    """Build a wrapt wrapper running a coroutine method inside a started scope.

    Args:
        where: Name of the start step, for the fail-open log.
        start: Starts the scope.

    Returns:
        The wrapper (it returns a coroutine).
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scoped = async_scoped(where, partial(start, instance))
        return scoped(wrapped, instance, args, kwargs)

    return wrapper
