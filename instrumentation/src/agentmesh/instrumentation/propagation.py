"""Continue a trace and its baggage in a server: extract W3C context from incoming headers.

Outgoing calls of instrumented SDKs carry ``traceparent`` and ``baggage`` headers (run id,
task class…). An agent service that receives such a call continues the caller's trace by
extracting them, so its spans share the caller's trace id and carry its run id::

    def do_POST(self):
        with continue_from(self.headers):
            ...  # spans started here are children of the caller's span

Any mapping-like object with ``items()`` works (a ``dict``, ``http.server`` headers, aiohttp's
``CIMultiDict``, a WSGI or ASGI header list turned into a ``dict``); names are matched without
regard to case. The propagators are OpenTelemetry's global ones (``OTEL_PROPAGATORS``; W3C trace
context and baggage by default).

Example:
    >>> from agentmesh.instrumentation.run_context import current_run_id
    >>> headers = {
    ...     "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ...     "Baggage": "agentmesh.run.id=run-42",
    ... }
    >>> with continue_from(headers):
    ...     current_run_id()
    'run-42'
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from contextlib import contextmanager
from typing import Protocol, cast

from opentelemetry import propagate
from opentelemetry.context import Context

from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._failopen import safe_call

__all__ = ["HeaderSource", "continue_from", "extract_context"]


class HeaderSource(Protocol):
    """Anything holding HTTP headers: ``items()`` gives ``(name, value)`` pairs."""

    def items(self) -> Iterable[tuple[str, str]]:
        """Return the headers.

        Returns:
            ``(name, value)`` pairs.
        """
        ...


def _normalise(headers: HeaderSource | Iterable[tuple[str, str]]) -> dict[str, str]:
    source = cast("HeaderSource", headers).items() if hasattr(headers, "items") else headers
    items = cast("Iterable[object]", source)
    carrier: dict[str, str] = {}
    for item in items:
        if isinstance(item, tuple) and len(cast("tuple[object, ...]", item)) == 2:
            name, value = cast("tuple[object, object]", item)
            if isinstance(name, str) and isinstance(value, str):
                carrier[name.lower()] = value
    return carrier


def _extract(headers: HeaderSource | Iterable[tuple[str, str]], context: Context | None) -> Context:
    return propagate.extract(_normalise(headers), context=context)


def extract_context(
    headers: HeaderSource | Iterable[tuple[str, str]], context: Context | None = None
) -> Context:
    """Return the context carried by incoming HTTP headers (trace parent and baggage).

    Never raises: unreadable headers give back ``context`` (or the current context).

    Args:
        headers: The request's headers.
        context: The context to extend; the current one by default.

    Returns:
        The extracted context (nothing is attached).
    """
    extracted = safe_call("propagation.extract", _extract, headers, context)
    if extracted is None:
        from opentelemetry import context as otel_context

        return context if context is not None else otel_context.get_current()
    return extracted


@contextmanager
def continue_from(headers: HeaderSource | Iterable[tuple[str, str]]) -> Generator[Context]:
    """Run a block in the context carried by incoming HTTP headers.

    Args:
        headers: The request's headers.

    Yields:
        The attached context.
    """
    context = extract_context(headers)
    with attached(context):
        yield context
