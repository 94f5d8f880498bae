"""Wrappers that run the wrapped call inside a scope our code starts and finishes.

The shape every framework wrapper shares: start a scope (a span and its context) fail-open,
pass the call through untouched when starting failed, run the call with the scope's context
attached, and finish the scope with the result or the application's exception (re-raised
unchanged).

Every step first asks the control client whether the collector stopped its run
(:func:`~agentmesh.instrumentation.control.check_current_run`): a stopped run's next step raises
:class:`~agentmesh.core.errors.RunStoppedError`, recorded on the step's span, instead of running.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from opentelemetry.context import Context

from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._failopen import safe_call
from agentmesh.instrumentation.control import check_current_run

__all__ = ["Scope", "ScopeStarter", "async_scoped", "sync_scoped"]


class Scope(Protocol):
    """Something started around a call: its context, and how it ends."""

    @property
    def context(self) -> Context:
        """The context made current while the call runs."""
        ...

    def finish(self, result: object, error: BaseException | None) -> None:
        """End the scope with the call's result or exception."""
        ...


ScopeStarter = Callable[[tuple[Any, ...], dict[str, Any]], Scope | None]
"""Starts a scope from the call's ``(args, kwargs)``; ``None`` or an error (logged) skips it."""

_Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def sync_scoped(where: str, start: ScopeStarter) -> _Wrapper:
    """Build a wrapt wrapper running a synchronous call inside a started scope.

    Args:
        where: Name of the start step, for the fail-open log.
        start: Starts the scope.

    Returns:
        The wrapper.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scope = safe_call(where, start, args, kwargs)
        if scope is None:
            return wrapped(*args, **kwargs)
        try:
            with attached(scope.context):
                check_current_run()  # raises only for a run the collector stopped
                result = wrapped(*args, **kwargs)
        except BaseException as exc:
            scope.finish(None, exc)
            raise
        scope.finish(result, None)
        return result

    return wrapper


def async_scoped(where: str, start: ScopeStarter) -> _Wrapper:
    """Build a wrapt wrapper running a coroutine call inside a started scope.

    Args:
        where: Name of the start step, for the fail-open log.
        start: Starts the scope.

    Returns:
        The wrapper (it returns a coroutine).
    """

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        scope = safe_call(where, start, args, kwargs)
        if scope is None:
            return await wrapped(*args, **kwargs)
        try:
            with attached(scope.context):
                check_current_run()  # raises only for a run the collector stopped
                result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            scope.finish(None, exc)
            raise
        scope.finish(result, None)
        return result

    return wrapper
