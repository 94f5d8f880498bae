"""Routing policies: the :class:`RoutingPolicy` protocol and the two rule-based policies.

A policy turns a :class:`~agentmesh.router.request.RouteRequest` into a
:class:`~agentmesh.router.decision.RouteDecision`. It must be fast (it runs before every
provider call), thread-safe and side-effect free; the instrumentation records and applies
the decision. Learned policies (utility, bandit) implement the same protocol.

- :class:`PassThroughPolicy` chooses the requested model; its candidates are that model
  followed by its configured fallback chain.
- :class:`PinnedPolicy` applies deterministic user rules first (task class → model, then
  requested model → model) and asks an inner policy (pass-through by default) otherwise.

Both pass over the models whose circuit breaker is open (``request.open_circuits``): the next
candidate of the chain is chosen, with reason ``circuit open for <model>``
(:meth:`~agentmesh.router.decision.RouteDecision.avoiding`).

Example:
    >>> from agentmesh.router.request import RouteRequest
    >>> policy = PinnedPolicy(Pins(task_classes={"triage": "gpt-4o-mini"}))
    >>> policy.decide(RouteRequest("openai", "gpt-4o", task_class="triage")).chosen
    'gpt-4o-mini'
    >>> policy.decide(RouteRequest("openai", "gpt-4o")).chosen
    'gpt-4o'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from agentmesh.core import ConfigError
from agentmesh.router.budget import estimated_cost, within_budget
from agentmesh.router.catalog import ModelCatalog
from agentmesh.router.chains import FallbackChains, reachable, warn_unknown_models
from agentmesh.router.decision import RouteDecision
from agentmesh.router.request import RouteRequest

__all__ = [
    "PassThroughPolicy",
    "PinnedPolicy",
    "Pins",
    "RoutingPolicy",
    "budgeted",
    "text_chars_of",
]


@runtime_checkable
class RoutingPolicy(Protocol):
    """Chooses a model for a call.

    Implementations are called on the application's hot path, from any thread: keep
    :meth:`decide` fast and free of I/O. It may raise; the instrumentation then passes the
    call through unchanged. They should pass over ``request.open_circuits`` (for example with
    :meth:`RouteDecision.avoiding`); the instrumentation applies it to any decision anyway.
    A policy that reads the prompt has an integer ``text_chars`` attribute (see
    :func:`text_chars_of`); the others get an empty ``request.text``.
    """

    @property
    def name(self) -> str:
        """Short name recorded as ``agentmesh.route.policy``."""
        ...

    def decide(self, request: RouteRequest) -> RouteDecision:
        """Decide where a call goes.

        Args:
            request: The call.

        Returns:
            The decision: candidates in the order they are tried, chosen first.
        """
        ...


def text_chars_of(policy: RoutingPolicy) -> int:
    """Return how many characters of the prompt's end a policy reads (0: it reads no text).

    A policy that reads the prompt (a learned one placing it in a cluster) says so with an
    integer ``text_chars`` attribute; the instrumentation passes it that much of the last user
    message in :attr:`RouteRequest.text <agentmesh.router.request.RouteRequest.text>`, and
    nothing to any other policy.

    Args:
        policy: The policy.

    Returns:
        The characters it reads.

    Example:
        >>> text_chars_of(PassThroughPolicy())
        0
    """
    chars = getattr(policy, "text_chars", 0)
    return chars if isinstance(chars, int) and chars > 0 else 0


def _rule_scores(candidates: tuple[str, ...]) -> tuple[float, ...]:
    return (1.0,) + (0.0,) * (len(candidates) - 1)


class PassThroughPolicy:
    """Keep the requested model; offer its fallback chain as the next candidates.

    Args:
        fallbacks: The fallback chains; none by default.
    """

    def __init__(self, fallbacks: FallbackChains | None = None) -> None:
        self._fallbacks = fallbacks if fallbacks is not None else FallbackChains()

    @property
    def name(self) -> str:
        """``pass_through``."""
        return "pass_through"

    @property
    def fallbacks(self) -> FallbackChains:
        """The fallback chains."""
        return self._fallbacks

    def decide(self, request: RouteRequest) -> RouteDecision:
        """Choose the requested model.

        Args:
            request: The call.

        Returns:
            The decision: the requested model, or the next candidate whose circuit is closed.
        """
        model = request.requested_model
        candidates = self._fallbacks.candidates(request.provider, model)
        reason = "requested model"
        if request.budget_usd is not None:
            model, reason, candidates = budgeted(
                request, self._fallbacks.catalog, candidates, model, reason
            )
        decision = RouteDecision.new(
            request, self.name, candidates, _rule_scores(candidates), model, reason
        )
        return decision.avoiding(request.open_circuits) if request.open_circuits else decision


def budgeted(
    request: RouteRequest,
    catalog: ModelCatalog,
    candidates: tuple[str, ...],
    model: str,
    reason: str,
) -> tuple[str, str, tuple[str, ...]]:
    """Keep ``model`` if the catalog prices it within the call's budget, else the first fit.

    The first candidate that fits is put first; a model the catalog does not price is kept.

    Args:
        request: The call (its budget and prompt size).
        catalog: The model catalog.
        candidates: The candidates, ``model`` first.
        model: The model chosen so far.
        reason: Why it was chosen.

    Returns:
        The model, the reason and the candidates (the chosen one first).
    """
    budget = request.budget_usd
    if budget is None:
        return model, reason, candidates
    chars = request.features.total_chars
    cost = estimated_cost(catalog, model, chars)
    if cost is None or cost <= budget:
        return model, reason, candidates
    cheaper = within_budget(catalog, candidates, chars, budget)
    if cheaper is None:
        return model, f"{reason}; no candidate within the budget of ${budget:g}", candidates
    order = (cheaper, *(m for m in candidates if m != cheaper))
    return cheaper, f"within the budget of ${budget:g} ({model} would cost ${cost:.4g})", order


def _check_rules(rules: Mapping[str, str], what: str) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, model in rules.items():
        if not isinstance(key, str) or not key or not isinstance(model, str) or not model:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigError(f"routing pin {key!r} → {model!r}: expected {what} → model name")
        checked[key] = model
    return checked


@dataclass(frozen=True, slots=True)
class Pins:
    """Deterministic routing rules a user pins.

    Attributes:
        task_classes: Task class → model (checked first).
        models: Requested model → model.
    """

    task_classes: Mapping[str, str] = field(default_factory=dict[str, str])
    models: Mapping[str, str] = field(default_factory=dict[str, str])

    @classmethod
    def from_config(cls, raw: Mapping[str, Mapping[str, str]]) -> Pins:
        """Build pins from ``{"task_class": {...}, "model": {...}}`` (both optional).

        Args:
            raw: The configuration, as decoded from JSON.

        Returns:
            The pins.

        Raises:
            ConfigError: An unknown section, or a rule that is not name → model name.
        """
        unknown = set(raw) - {"task_class", "model"}
        if unknown:
            raise ConfigError(
                f"routing pins: unknown section(s) {sorted(unknown)}; use 'task_class', 'model'"
            )
        return cls(
            task_classes=_check_rules(raw.get("task_class", {}), "task class"),
            models=_check_rules(raw.get("model", {}), "model"),
        )

    def __bool__(self) -> bool:
        return bool(self.task_classes or self.models)


class PinnedPolicy:
    """Apply pinned rules first; defer to an inner policy when none applies.

    A task-class pin beats a requested-model pin. The pinned model's candidates are the pinned
    model, its fallback chain, then the requested model. A pin to a model the call's SDK
    cannot reach (another provider's model) is ignored.

    Args:
        pins: The rules.
        fallbacks: The fallback chains; the inner policy's (or none) by default.
        inner: Decides calls no pin matches; pass-through by default.
    """

    def __init__(
        self,
        pins: Pins,
        fallbacks: FallbackChains | None = None,
        inner: RoutingPolicy | None = None,
    ) -> None:
        if fallbacks is None:
            fallbacks = inner.fallbacks if isinstance(inner, PassThroughPolicy) else None
        self._fallbacks = fallbacks if fallbacks is not None else FallbackChains()
        self._inner: RoutingPolicy = (
            inner if inner is not None else PassThroughPolicy(self._fallbacks)
        )
        self._pins = pins
        warn_unknown_models(
            sorted({*pins.task_classes.values(), *pins.models, *pins.models.values()}),
            self._fallbacks.catalog,
            where="routing pins",
        )

    @property
    def name(self) -> str:
        """``pinned`` (a decision no pin matched carries the inner policy's name)."""
        return "pinned"

    @property
    def pins(self) -> Pins:
        """The rules."""
        return self._pins

    @property
    def text_chars(self) -> int:
        """Characters of the prompt the inner policy reads (pins read none)."""
        return text_chars_of(self._inner)

    def _pin(self, request: RouteRequest) -> tuple[str, str] | None:
        catalog = self._fallbacks.catalog
        task = request.task_class
        if task is not None:
            model = self._pins.task_classes.get(task)
            if model is not None and reachable(request.provider, model, catalog):
                return model, f"pinned: task class {task} → {model}"
        model = self._pins.models.get(request.requested_model)
        if model is not None and reachable(request.provider, model, catalog):
            return model, f"pinned: model {request.requested_model} → {model}"
        return None

    def decide(self, request: RouteRequest) -> RouteDecision:
        """Apply the first matching pin, else the inner policy.

        Args:
            request: The call.

        Returns:
            The decision.
        """
        pinned = self._pin(request) if self._pins else None
        if pinned is None:
            decision = self._inner.decide(request)
        else:
            model, reason = pinned
            candidates = self._fallbacks.candidates(request.provider, model)
            if request.requested_model not in candidates:
                candidates = (*candidates, request.requested_model)
            decision = RouteDecision.new(
                request, self.name, candidates, _rule_scores(candidates), model, reason
            )
        return decision.avoiding(request.open_circuits) if request.open_circuits else decision
