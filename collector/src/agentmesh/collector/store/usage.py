"""What the stores keep of an LLM call for cost queries, and the checks their queries share.

Stores keep four columns on each ``chat`` span, filled by :func:`chat_usage`, so costs by model
are a plain ``GROUP BY`` rather than JSON parsing at query time.

Example:
    >>> from agentmesh.collector.testing import SpanFactory
    >>> f = SpanFactory()
    >>> chat_usage(f.chat(parent=None, model="m", input_tokens=3, cost_usd=0.5))
    ChatUsage(model='m', input_tokens=3, output_tokens=0, cost_usd=0.5)
    >>> chat_usage(f.workflow("w")) is None
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentmesh.collector.model import SpanRecord, amount_of, count_of
from agentmesh.collector.store.base import RUN_STATES, CostGroup, CostRow, RunStateName
from agentmesh.core import semconv
from agentmesh.core.errors import StoreError

__all__ = [
    "ChatUsage",
    "chat_usage",
    "check_group_by",
    "check_limit",
    "check_state",
    "in_window",
    "sort_cost_rows",
]


@dataclass(frozen=True, slots=True)
class ChatUsage:
    """The model, tokens and cost of one ``chat`` span.

    Attributes:
        model: ``gen_ai.response.model``, else ``gen_ai.request.model``, else ``None``.
        input_tokens: ``gen_ai.usage.input_tokens`` (0 when absent or negative).
        output_tokens: ``gen_ai.usage.output_tokens`` (0 when absent or negative).
        cost_usd: ``agentmesh.cost.usd`` (0 when absent, negative, NaN or infinite).
    """

    model: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float


def chat_usage(span: SpanRecord) -> ChatUsage | None:
    """Read the usage of an LLM call, the way the graph builder counts it.

    Args:
        span: Any span.

    Returns:
        The usage of a ``chat`` span; ``None`` for every other span.
    """
    if span.operation != semconv.Operation.CHAT:
        return None
    return ChatUsage(
        model=span.str_attr(semconv.GEN_AI_RESPONSE_MODEL)
        or span.str_attr(semconv.GEN_AI_REQUEST_MODEL),
        input_tokens=count_of(span.attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=count_of(span.attributes.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)),
        cost_usd=amount_of(span.attributes.get(semconv.AGENTMESH_COST_USD)),
    )


def check_limit(limit: int | None) -> None:
    """Refuse a limit below 1.

    Args:
        limit: The limit, or ``None`` for none.

    Raises:
        StoreError: It is below 1.
    """
    if limit is not None and limit < 1:
        raise StoreError(f"limit must be at least 1, got {limit}")


def check_state(state: str | None) -> RunStateName | None:
    """Refuse a run state that is not one of :data:`~agentmesh.collector.store.base.RUN_STATES`.

    Args:
        state: The state, or ``None`` for any.

    Returns:
        The state, typed.

    Raises:
        StoreError: It is not a run state.
    """
    for known in RUN_STATES:
        if state == known:
            return known
    if state is not None:
        raise StoreError(f"state must be one of {', '.join(RUN_STATES)}, not {state!r}")
    return None


def check_group_by(group_by: str) -> CostGroup:
    """Refuse a grouping other than ``agent`` or ``model``.

    Args:
        group_by: The grouping asked for.

    Returns:
        It, typed.

    Raises:
        StoreError: It is neither.
    """
    if group_by == "agent":
        return "agent"
    if group_by == "model":
        return "model"
    raise StoreError(f"costs can be grouped by 'agent' or 'model', not {group_by!r}")


def in_window(start_ns: int, since_ns: int | None, until_ns: int | None) -> bool:
    """Tell whether a start time falls in a half-open window.

    Args:
        start_ns: The start.
        since_ns: Lower bound (included), or ``None``.
        until_ns: Upper bound (excluded), or ``None``.

    Returns:
        Whether ``since_ns <= start_ns < until_ns``.
    """
    return (since_ns is None or start_ns >= since_ns) and (until_ns is None or start_ns < until_ns)


def sort_cost_rows(rows: Iterable[CostRow]) -> list[CostRow]:
    """Order cost rows the way every store returns them.

    Args:
        rows: The rows.

    Returns:
        Highest cost first, then by key; the unknown model (``None``) last among equals.
    """
    return sorted(rows, key=lambda row: (-row.cost_usd, row.key is None, row.key or ""))
