"""Price a call from the router's catalog, with the model lookup cached per name.

Provider-agnostic (the Anthropic instrumentation uses it too). The catalog's forgiving lookup
(dated and ``vendor/`` variants) runs once per model name; later calls are a dict hit.

Example:
    >>> round(cost_usd(("gpt-4o-mini",), 1_000_000, 0), 6)
    0.15
    >>> cost_usd(("no-such-model",), 10, 10) is None
    True
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

from agentmesh.router.catalog import ModelCatalog, ModelInfo, reset_catalog, usable_catalog

__all__ = ["UNKNOWN_MODEL", "cost_usd", "forget", "model_info"]

UNKNOWN_MODEL: Final = "unknown"
"""The request model recorded when a call names none."""

_MAX_CACHED = 4096

_lock = threading.Lock()
_cache: dict[str, ModelInfo | None] = {}
_catalog: list[ModelCatalog] = []


def model_info(name: str) -> ModelInfo | None:
    """Return the catalog entry of a model name (cached; the catalog is read once).

    Args:
        name: The model name as requested or answered.

    Returns:
        The entry, or ``None`` when the catalog does not know the model.
    """
    try:
        return _cache[name]
    except KeyError:
        pass
    catalog = usable_catalog()
    info = catalog.get(name)
    with _lock:
        if not _catalog or _catalog[0] is not catalog:
            _cache.clear()
            _catalog[:] = [catalog]
        if len(_cache) < _MAX_CACHED:
            _cache[name] = info
    return info


def cost_usd(
    models: Iterable[str | None],
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float | None:
    """Price a call with the first of ``models`` the catalog knows.

    Args:
        models: Candidate names, best first (response model, then the model the call was
            sent to).
        input_tokens: Input tokens, cached ones (read or written) included.
        output_tokens: Output tokens.
        cached_tokens: The part of the input read from cache.
        cache_write_tokens: The part of the input written to the cache.

    Returns:
        US dollars, or ``None`` when no candidate is known.
    """
    for model in models:
        if not model or model == UNKNOWN_MODEL:
            continue
        info = model_info(model)
        if info is not None:
            return info.cost_usd(input_tokens, output_tokens, cached_tokens, cache_write_tokens)
    return None


def forget() -> None:
    """Drop the cached lookups and the catalog (for tests that change the catalog)."""
    with _lock:
        _cache.clear()
        _catalog.clear()
    reset_catalog()
