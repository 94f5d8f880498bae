"""Prices calls from the router's model catalog, loaded on first use."""

from __future__ import annotations

from agentmesh.core.log import get_logger
from agentmesh.router import ModelCatalog
from agentmesh.router.catalog import usable_catalog

__all__ = ["Pricer"]

_log = get_logger(__name__)


class Pricer:
    """Prices calls whose spans carry no ``agentmesh.cost.usd``.

    Args:
        catalog: The catalog to price from; ``None`` loads the default one on first use (an
            unreadable override is logged once, and calls are then left unpriced).
    """

    __slots__ = ("_catalog", "_loaded")

    def __init__(self, catalog: ModelCatalog | None = None) -> None:
        self._catalog = catalog
        self._loaded = catalog is not None

    def cost_usd(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int,
        cache_write_tokens: int = 0,
    ) -> float | None:
        """Price a call.

        Args:
            model: Model name as requested or answered.
            input_tokens: Prompt tokens.
            output_tokens: Completion tokens.
            cached_input_tokens: Prompt tokens read from the provider's cache.
            cache_write_tokens: Prompt tokens written to the provider's cache.

        Returns:
            US dollars, or ``None`` when the model is unknown.
        """
        if not self._loaded:
            self._loaded = True
            self._catalog = usable_catalog()
        if self._catalog is None:
            return None
        return self._catalog.cost_usd(
            model, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens
        )
