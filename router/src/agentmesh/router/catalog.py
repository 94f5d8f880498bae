"""The model catalog: prices, context windows and capabilities, and the cost of a call.

A bundled catalog (``data/models.json``) covers current OpenAI, Anthropic and popular
OpenRouter models; ``AGENTMESH_ROUTER_CATALOG_PATH`` names a JSON file of the same shape whose
entries add to or replace the bundled ones.

Names are matched forgivingly, the way providers answer: ``gpt-4o-mini-2024-07-18`` (a dated
snapshot), ``openai/gpt-4o-mini`` (an OpenRouter-style name) and ``claude-sonnet-4-5-20250929``
all find their base model. OpenRouter spells versions with a dot where some vendors' own ids
use a dash: ``anthropic/claude-sonnet-4.5`` finds ``claude-sonnet-4-5``, but only a model the
catalog places at that vendor (``openai/gpt-4.1`` is ``gpt-4.1``, never a ``gpt-4-1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import SettingsConfigDict

from agentmesh.core import AgentMeshSettings, ConfigError
from agentmesh.core.log import get_logger

__all__ = [
    "ModelCatalog",
    "ModelInfo",
    "RouterSettings",
    "bundled_catalog",
    "default_catalog",
    "reset_catalog",
    "undated_model",
    "usable_catalog",
]

_log = get_logger(__name__)
_warned: set[str] = set()

_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$")
_VERSION_DOT = re.compile(r"(?<=\d)\.(?=\d)")


class RouterSettings(AgentMeshSettings):
    """Settings of the router package."""

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_ROUTER_", extra="ignore", validate_default=True
    )

    catalog_path: Path | None = Field(
        default=None,
        description=(
            "JSON file of models that add to or replace the bundled catalog (when it cannot be "
            "read, the instrumentation and the collector log it once and price by the bundled "
            "catalog)."
        ),
    )


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model of the catalog.

    Attributes:
        name: The model's name as its provider spells it (OpenRouter: ``vendor/model``).
        provider: ``openai``, ``anthropic`` or ``openrouter``.
        input_per_mtok: US dollars per million prompt tokens.
        output_per_mtok: US dollars per million completion tokens.
        cached_input_per_mtok: US dollars per million prompt tokens read from cache, when the
            provider discounts them.
        cache_write_per_mtok: US dollars per million prompt tokens written to the cache, when
            the provider charges them apart (Anthropic: 1.25 times the input price); ``None``:
            at the input price.
        context_window: Largest prompt plus completion, in tokens.
        capabilities: What it supports: ``tools``, ``vision``, ``json_mode``, ``reasoning``.
    """

    name: str
    provider: str
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None
    context_window: int
    capabilities: frozenset[str]
    cache_write_per_mtok: float | None = None

    def cost_usd(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """Price a call.

        Args:
            input_tokens: Prompt tokens, cached ones (read or written) included.
            output_tokens: Completion tokens, reasoning ones included.
            cached_input_tokens: The part of ``input_tokens`` read from cache.
            cache_write_tokens: The part of ``input_tokens`` written to the cache.

        Returns:
            The cost in US dollars.

        Example:
            >>> m = ModelInfo("m", "openai", 1.0, 2.0, 0.5, 1000, frozenset())
            >>> round(m.cost_usd(1_000_000, 500_000, cached_input_tokens=200_000), 6)
            1.9
            >>> w = ModelInfo("w", "anthropic", 1.0, 2.0, 0.1, 1000, frozenset(), 1.25)
            >>> round(w.cost_usd(1_000_000, 0, cache_write_tokens=1_000_000), 6)
            1.25
        """
        cached = min(max(cached_input_tokens, 0), input_tokens)
        written = min(max(cache_write_tokens, 0), input_tokens - cached)
        cached_price = (
            self.input_per_mtok
            if self.cached_input_per_mtok is None
            else self.cached_input_per_mtok
        )
        write_price = (
            self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        )
        return (
            (input_tokens - cached - written) * self.input_per_mtok
            + cached * cached_price
            + written * write_price
            + output_tokens * self.output_per_mtok
        ) / 1_000_000


class ModelCatalog:
    """Models by name, with forgiving lookup.

    Args:
        models: The models; a later one replaces an earlier one of the same name.
    """

    def __init__(self, models: list[ModelInfo]) -> None:
        self._models: dict[str, ModelInfo] = {m.name: m for m in models}

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._models.values())

    def get(self, name: str) -> ModelInfo | None:
        """Find a model by the name a request or response used.

        Args:
            name: ``gpt-4o-mini``, ``gpt-4o-mini-2024-07-18``, ``openai/gpt-4o-mini``,
                ``anthropic/claude-sonnet-4.5``…

        Returns:
            The model, or ``None`` when the catalog does not know it.

        Example:
            >>> catalog = bundled_catalog()
            >>> catalog.get("anthropic/claude-3.5-sonnet").name
            'claude-3-5-sonnet'
            >>> catalog.get("openai/gpt-4.1-mini-2025-04-14").name
            'gpt-4.1-mini'
        """
        for candidate in _name_variants(name):
            found = self._models.get(candidate)
            if found is not None:
                return found
        return self._dashed_version(name)

    def _dashed_version(self, name: str) -> ModelInfo | None:
        """The vendor's own model of an OpenRouter name with a dotted version, if known.

        ``anthropic/claude-3.5-sonnet`` is Anthropic's ``claude-3-5-sonnet``: the dots between
        digits become dashes, and the model found must be one the catalog places at the
        vendor the name starts with (so no dotted name is ever taken for another model).
        """
        vendor, slash, bare = name.partition("/")
        if not slash or _VERSION_DOT.search(bare) is None:
            return None
        for candidate in (bare, _DATE_SUFFIX.sub("", bare)):
            found = self._models.get(_VERSION_DOT.sub("-", candidate))
            if found is not None and found.provider == vendor:
                return found
        return None

    def cost_usd(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float | None:
        """Price a call to ``model``.

        Args:
            model: The model name as requested or answered.
            input_tokens: Prompt tokens.
            output_tokens: Completion tokens.
            cached_input_tokens: Prompt tokens read from cache.
            cache_write_tokens: Prompt tokens written to the cache.

        Returns:
            US dollars, or ``None`` when the model is not in the catalog.
        """
        info = self.get(model)
        if info is None:
            return None
        return info.cost_usd(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)

    @classmethod
    def from_json(cls, text: str, *, source: str = "<string>") -> ModelCatalog:
        """Parse a catalog document (``{"models": [...]}``).

        Args:
            text: The JSON text.
            source: Where it came from, for error messages.

        Returns:
            The catalog.

        Raises:
            ConfigError: The document is not valid JSON or an entry misses a field.
        """
        try:
            raw: object = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"model catalog {source} is invalid: not JSON ({exc})") from exc
        entries = cast("dict[str, object]", raw).get("models") if isinstance(raw, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(
                f'model catalog {source} is invalid: expected {{"models": [...]}}, a list of '
                "models each with name, provider, input, output and context_window"
            )
        return cls(
            [
                _parse_entry(entry, index, source)
                for index, entry in enumerate(cast("list[object]", entries))
            ]
        )

    def merged(self, other: ModelCatalog) -> ModelCatalog:
        """Return a catalog with ``other``'s models added, replacing same-named ones.

        Args:
            other: The overriding catalog.

        Returns:
            A new catalog.
        """
        return ModelCatalog([*self, *other])


class _Entry(BaseModel):
    """One model of a catalog file, as written: prices per million tokens, never negative."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    context_window: int = Field(gt=0)
    capabilities: list[str] = Field(default_factory=lambda: [])


def _parse_entry(entry: object, index: int, source: str) -> ModelInfo:
    try:
        parsed = _Entry.model_validate(entry)
    except ValidationError as exc:
        named = cast("dict[str, object]", entry).get("name") if isinstance(entry, dict) else None
        which = f"model {named!r}" if isinstance(named, str) and named else f"model #{index + 1}"
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'entry'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"model catalog {source} is invalid: {which}: {problems}") from exc
    return ModelInfo(
        name=parsed.name,
        provider=parsed.provider,
        input_per_mtok=parsed.input,
        output_per_mtok=parsed.output,
        cached_input_per_mtok=parsed.cached_input,
        context_window=parsed.context_window,
        capabilities=frozenset(parsed.capabilities),
        cache_write_per_mtok=parsed.cache_write,
    )


def undated_model(name: str) -> str:
    """A model name without its date or ``-latest`` suffix (the model it is a version of).

    Args:
        name: A model name, as a provider or an application writes it.

    Returns:
        The name without the suffix; the name itself when it has none.

    Example:
        >>> undated_model("gpt-4o-2024-08-06"), undated_model("claude-3-5-haiku-latest")
        ('gpt-4o', 'claude-3-5-haiku')
        >>> undated_model("gpt-4o-mini")
        'gpt-4o-mini'
    """
    return _DATE_SUFFIX.sub("", name)


def _name_variants(name: str) -> list[str]:
    variants = [name]
    bare = name.split("/", 1)[1] if "/" in name else name
    for candidate in (bare, _DATE_SUFFIX.sub("", name), _DATE_SUFFIX.sub("", bare)):
        if candidate not in variants:
            variants.append(candidate)
    return variants


@cache
def bundled_catalog() -> ModelCatalog:
    """Return the catalog shipped with the router, without any override (cached).

    Returns:
        The catalog.
    """
    text = resources.files("agentmesh.router").joinpath("data/models.json").read_text()
    return ModelCatalog.from_json(text, source="bundled models.json")


@cache
def default_catalog() -> ModelCatalog:
    """Return the bundled catalog, with ``AGENTMESH_ROUTER_CATALOG_PATH`` applied (cached).

    Returns:
        The catalog.

    Raises:
        ConfigError: The override file is missing or invalid.
    """
    catalog = bundled_catalog()
    path = RouterSettings.load().catalog_path
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(
                f"{RouterSettings.env_var('catalog_path')}={str(path)!r}: cannot read it ({exc})"
            ) from exc
        catalog = catalog.merged(ModelCatalog.from_json(text, source=str(path)))
    return catalog


def usable_catalog() -> ModelCatalog:
    """Return :func:`default_catalog`, or the bundled catalog when the override cannot be used.

    What prices calls and routes them must not stop working over a catalog file: a missing or
    invalid ``AGENTMESH_ROUTER_CATALOG_PATH`` is logged once (an error naming the variable and
    the problem) and the bundled catalog is used. ``agentmesh check`` refuses it outright.

    Returns:
        The catalog.
    """
    try:
        return default_catalog()
    except ConfigError as exc:
        reason = str(exc)
        if reason not in _warned:
            _warned.add(reason)
            _log.error(
                "model catalog override unusable; the bundled catalog prices and routes calls",
                reason=reason,
            )
        return bundled_catalog()


def reset_catalog() -> None:
    """Forget the loaded catalog and the warnings given (the next use reads the settings)."""
    default_catalog.cache_clear()
    _warned.clear()
