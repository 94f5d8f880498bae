"""A call's budget against the catalog's price for its prompt: :func:`within_budget`.

A learned cost is a model's *mean* cost per call in a task class; a call with a long prompt
costs more than that. So a budget is checked against the larger of what was learned and what
the catalog charges for a prompt of this call's size (and :data:`DEFAULT_OUTPUT_TOKENS` of
answer). Before anything is learned, the catalog alone decides.

Example:
    >>> from agentmesh.router.catalog import bundled_catalog
    >>> catalog = bundled_catalog()
    >>> round(estimated_cost(catalog, "gpt-4o", 12_000) or 0, 5)
    0.01006
    >>> within_budget(catalog, ("gpt-4o", "gpt-4o-mini"), 12_000, 0.002)
    'gpt-4o-mini'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from agentmesh.router.catalog import ModelCatalog

__all__ = ["CHARS_PER_TOKEN", "DEFAULT_OUTPUT_TOKENS", "estimated_cost", "within_budget"]

CHARS_PER_TOKEN: Final = 4.0
"""Characters of prompt text per token, for estimates."""
DEFAULT_OUTPUT_TOKENS: Final = 256
"""Answer tokens assumed when pricing a call before it is made."""


def estimated_cost(catalog: ModelCatalog, model: str, chars: int) -> float | None:
    """What the catalog charges for a call of ``chars`` prompt characters.

    Args:
        catalog: The model catalog.
        model: The model.
        chars: Characters of prompt text.

    Returns:
        US dollars, or ``None`` when the catalog does not know the model.
    """
    info = catalog.get(model)
    if info is None:
        return None
    return info.cost_usd(int(chars / CHARS_PER_TOKEN), DEFAULT_OUTPUT_TOKENS)


def within_budget(
    catalog: ModelCatalog, candidates: Iterable[str], chars: int, budget: float
) -> str | None:
    """The first candidate the catalog prices within ``budget`` for this prompt.

    Args:
        catalog: The model catalog.
        candidates: Models in order of preference.
        chars: Characters of prompt text.
        budget: Most the call may cost, US dollars.

    Returns:
        The model, or ``None`` when none is known to fit.
    """
    for model in candidates:
        cost = estimated_cost(catalog, model, chars)
        if cost is not None and cost <= budget:
            return model
    return None
