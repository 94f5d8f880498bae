"""Run each call of a function, or of a coroutine function, inside a fresh context manager.

The shared body of the scopes that are both ``with`` blocks and decorators
(:func:`~agentmesh.instrumentation.baggage.task_class`,
:func:`~agentmesh.instrumentation.steps.agent`…): they derive from :class:`DecoratingScope`.

Example:
    >>> from contextlib import nullcontext
    >>> double = each_call_in(nullcontext, lambda x: 2 * x)
    >>> double(21)
    42
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from typing import ParamSpec, TypeVar, cast, overload

__all__ = ["DecoratingScope", "each_call_in"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def each_call_in(
    scope: Callable[[], AbstractContextManager[object]], fn: Callable[_P, object]
) -> Callable[_P, object]:
    """Wrap ``fn`` so that each call (each await, for a coroutine function) runs in ``scope()``.

    Args:
        scope: Makes the context manager of one call.
        fn: The function or coroutine function.

    Returns:
        The wrapped function, of the same kind.
    """
    if inspect.iscoroutinefunction(fn):
        afn = cast("Callable[_P, Awaitable[object]]", fn)

        @functools.wraps(fn)
        async def awrapper(*args: _P.args, **kwargs: _P.kwargs) -> object:
            with scope():
                return await afn(*args, **kwargs)

        return awrapper

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> object:
        with scope():
            return fn(*args, **kwargs)

    return wrapper


class DecoratingScope:
    """A scope that is also a decorator: each call of the function runs in a fresh copy."""

    def fresh(self) -> AbstractContextManager[object]:
        """A new scope like this one, for one call (scopes hold per-entry state).

        Returns:
            The scope.
        """
        raise NotImplementedError

    @overload
    def __call__(
        self, fn: Callable[_P, Coroutine[object, object, _R]]
    ) -> Callable[_P, Coroutine[object, object, _R]]: ...

    @overload
    def __call__(self, fn: Callable[_P, _R]) -> Callable[_P, _R]: ...

    def __call__(self, fn: Callable[_P, object]) -> Callable[_P, object]:
        """Decorate a function or coroutine function: each call runs in :meth:`fresh`.

        Args:
            fn: The function.

        Returns:
            The wrapped function.
        """
        return each_call_in(self.fresh, fn)
