"""The hook point of the provider call path, for routing (``instrumentation.routing`` sets it).

Every instrumented OpenAI and Anthropic model call runs :attr:`CallHooks.before` with its
keyword arguments just before the SDK call (it may return changed ones, for example another
model) and, when the SDK raises, :attr:`CallHooks.on_error` (it may return keyword arguments to
try again with, or ``None`` to let the error through). With no hooks installed (the default)
the cost is one global read per call. Hook failures are logged and ignored (fail-open).

Example:
    >>> set_hooks(CallHooks(before=lambda span, endpoint, kwargs: kwargs))
    >>> current() is not None
    True
    >>> set_hooks(None)
    >>> current() is None
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span

__all__ = ["BeforeCall", "CallHooks", "OnError", "current", "set_hooks"]

BeforeCall = Callable[[Span, str, dict[str, Any]], dict[str, Any]]
"""``(span, endpoint name, kwargs) -> kwargs to call the SDK with``."""

OnError = Callable[[Span, str, dict[str, Any], BaseException], dict[str, Any] | None]
"""``(span, endpoint name, kwargs that failed, error) -> kwargs to retry with, or None``."""


@dataclass(frozen=True, slots=True)
class CallHooks:
    """What runs around every instrumented provider call.

    Attributes:
        before: Called with the call's keyword arguments before the SDK call.
        on_error: Called when the SDK call raised; a non-``None`` result is retried (the hook
            bounds the number of attempts).
    """

    before: BeforeCall | None = None
    on_error: OnError | None = None


_current: CallHooks | None = None


def set_hooks(hooks: CallHooks | None) -> None:
    """Install (or with ``None`` remove) the hooks of every provider call.

    Args:
        hooks: The hooks.
    """
    global _current  # the one process-wide hook point
    _current = hooks


def current() -> CallHooks | None:
    """Return the installed hooks, if any."""
    return _current
