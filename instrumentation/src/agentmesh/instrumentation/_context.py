"""Attach an OpenTelemetry context around a piece of the application's work, fail-open.

Example:
    >>> from opentelemetry import context
    >>> key = context.create_key("demo")
    >>> with attached(context.set_value(key, 1)):
    ...     context.get_value(key)
    1
    >>> context.get_value(key) is None
    True
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agentmesh.instrumentation._failopen import safe_call

__all__ = ["attached"]


@contextmanager
def attached(context: Context) -> Generator[None]:
    """Make ``context`` current for the block, then restore the previous one.

    Attaching and detaching are our code: their failures are logged, never raised. The block's
    own exceptions pass through untouched.

    Args:
        context: The context to make current.

    Yields:
        Nothing.
    """
    token = safe_call("context.attach", otel_context.attach, context)
    try:
        yield
    finally:
        if token is not None:
            safe_call("context.detach", otel_context.detach, token)
