"""Fallback chains: which models to try, in order, when a model's call fails.

Chains come from configuration (``{"gpt-4o": ["gpt-4o-mini", "claude-sonnet-4-5"]}``) and are
checked against the catalog once: a model the catalog does not know is allowed (new models
ship before catalogs do) and logged once. A candidate is only offered to a call its SDK can
reach: a model the catalog places at another provider is skipped (an OpenAI client cannot
call ``claude-sonnet-4-5``), except through OpenRouter, which reaches every vendor.

Example:
    >>> chains = FallbackChains({"gpt-4o": ["gpt-4o-mini", "claude-sonnet-4-5"]})
    >>> chains.candidates("openai", "gpt-4o")
    ('gpt-4o', 'gpt-4o-mini')
    >>> chains.candidates("openai", "o3")
    ('o3',)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from agentmesh.core import ConfigError
from agentmesh.core.log import get_logger
from agentmesh.router.catalog import ModelCatalog, default_catalog

__all__ = ["FallbackChains", "reachable", "warn_unknown_models"]

_log = get_logger(__name__)

_ANY_VENDOR: Final = frozenset({"openrouter"})
_MAX_CACHED: Final = 4096

_warned_lock = threading.Lock()
_warned: set[str] = set()


def warn_unknown_models(names: Iterable[str], catalog: ModelCatalog, *, where: str) -> None:
    """Log each model name the catalog does not know, once per process.

    Args:
        names: The model names to check.
        catalog: The catalog.
        where: What configured them, for the log.
    """
    for name in names:
        if catalog.get(name) is not None:
            continue
        with _warned_lock:
            if name in _warned:
                continue
            _warned.add(name)
        _log.warning("agentmesh.router.unknown_model", model=name, where=where)


def reachable(provider: str, model: str, catalog: ModelCatalog) -> bool:
    """Tell whether a call made through ``provider``'s SDK can be sent to ``model``.

    Args:
        provider: Where the call goes: ``openai``, ``anthropic``, ``openrouter``.
        model: A candidate model.
        catalog: The catalog placing models at providers.

    Returns:
        ``True`` unless the catalog places the model at another provider (OpenRouter
        reaches every vendor; unknown models are given the benefit of the doubt).
    """
    if provider in _ANY_VENDOR:
        return True
    info = catalog.get(model)
    return info is None or info.provider == provider


def _validated(raw: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    chains: dict[str, tuple[str, ...]] = {}
    for model, chain in raw.items():
        if not isinstance(model, str) or not model:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigError(f"fallback chain key {model!r}: expected a model name")
        if isinstance(chain, str) or not all(isinstance(m, str) and m for m in chain):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigError(f"fallback chain of {model!r}: expected a list of model names")
        ordered: list[str] = []
        for name in chain:
            if name != model and name not in ordered:
                ordered.append(name)
        chains[model] = tuple(ordered)
    return chains


class FallbackChains:
    """Fallback chains by requested model, checked against the catalog.

    Args:
        chains: Model to the models to try after it, in order. Duplicates and the model itself
            are dropped.
        catalog: The catalog; the bundled one by default.

    Raises:
        ConfigError: A key is not a model name or a chain is not a list of names.
    """

    def __init__(
        self,
        chains: Mapping[str, Sequence[str]] | None = None,
        *,
        catalog: ModelCatalog | None = None,
    ) -> None:
        self._chains = _validated(chains or {})
        self._catalog = catalog if catalog is not None else default_catalog()
        names = {name for model, chain in self._chains.items() for name in (model, *chain)}
        warn_unknown_models(sorted(names), self._catalog, where="fallback chains")
        self._cache: dict[tuple[str, str], tuple[str, ...]] = {}

    @property
    def catalog(self) -> ModelCatalog:
        """The catalog models are checked against."""
        return self._catalog

    def chain(self, model: str) -> tuple[str, ...]:
        """Return the configured chain of a model, unfiltered.

        Args:
            model: The model.

        Returns:
            The models to try after it (empty when none is configured).
        """
        return self._chains.get(model, ())

    def candidates(self, provider: str, model: str) -> tuple[str, ...]:
        """Return ``model`` then its fallbacks that a ``provider`` call can reach (cached).

        Args:
            provider: Where the call goes.
            model: The first candidate.

        Returns:
            The candidates, ``model`` first.
        """
        key = (provider, model)
        found = self._cache.get(key)
        if found is not None:
            return found
        chain = tuple(m for m in self.chain(model) if reachable(provider, m, self._catalog))
        result = (model, *chain)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = result
        return result
