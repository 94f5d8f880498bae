"""A budget for routed model calls, carried in W3C baggage: the most one call may cost.

Inside the block, the learned routing policy passes over candidates whose expected cost is above
the budget (``agentmesh.route.budget_usd``); other processes reached over HTTP get it too::

    with call_budget(0.002):
        client.chat.completions.create(model="gpt-4o", messages=...)

A value that is not a positive number is ignored (fail-open), never raised into the app.

Example:
    >>> with call_budget(0.002):
    ...     current_call_budget()
    0.002
    >>> current_call_budget() is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Generator
from contextlib import contextmanager

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agentmesh.core.semconv import AGENTMESH_ROUTE_BUDGET_USD

__all__ = ["call_budget", "current_call_budget"]


def current_call_budget(context: Context | None = None) -> float | None:
    """Return the per-call budget in baggage, in USD, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The budget, or ``None`` (absent, or not a positive finite number).
    """
    value = baggage.get_baggage(AGENTMESH_ROUTE_BUDGET_USD, context)
    if value is None:
        return None
    try:
        budget = float(str(value))
    except ValueError:
        return None
    return budget if math.isfinite(budget) and budget > 0 else None


@contextmanager
def call_budget(usd: float) -> Generator[None]:
    """Set the most one model call may cost, in USD, for a block.

    Args:
        usd: The budget (a positive number; anything else leaves the block without one).

    Yields:
        Nothing.
    """
    try:
        value = float(usd)
    except (TypeError, ValueError):
        value = math.nan  # fail-open: a budget that is not a number is no budget
    token = otel_context.attach(baggage.set_baggage(AGENTMESH_ROUTE_BUDGET_USD, repr(value)))
    try:
        yield
    finally:
        otel_context.detach(token)
