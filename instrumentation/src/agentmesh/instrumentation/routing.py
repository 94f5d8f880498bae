"""The routing hook: every provider call asks the in-process router where it goes.

A provider wrapper calls :func:`before_call` with the SDK method's keyword arguments before
starting its span, sends the call with ``routed.kwargs``, and on a provider error asks
:func:`on_error` for the keyword arguments of the next candidate::

    routed = routing.before_call("openai", kwargs)
    token = routed.attach()              # decision id in baggage for child spans and headers
    try:
        span = start_span(..., attributes=routing.span_attributes(routed))
        while True:
            try:
                result = wrapped(*args, **routed.kwargs)
                break
            except BaseException as exc:
                retry = routing.on_error(routed, exc)
                if retry is None:
                    raise                # the app's exception, untouched
                span.add_event(*routing.fallback_event(routed, exc, retry["model"]))
        routing.on_success(routed)       # ends the answering model's cooldown, if any
    finally:
        routing.detach(token)

Modes (``AGENTMESH_ROUTING_MODE``): ``off`` (the default) returns at once and changes
nothing; ``shadow`` decides and changes nothing (decisions are recorded, on the span and in the
decision log: the data the router learns from; the first mode to turn on); ``enforce`` (opt-in)
replaces the model by the chosen one and falls back to the next candidates, at most
``AGENTMESH_ROUTING_MAX_FALLBACKS`` times, on a retryable provider error (429, 408, 5xx,
connection error, timeout; recognised by class name and status attributes, so no SDK is
imported).

Models whose circuit breaker the collector opened
(:func:`agentmesh.instrumentation.control.open_breakers`) reach the policy as
``RouteRequest.open_circuits``: in enforce mode the call goes to the next candidate of the
fallback chain instead (reason ``circuit open for <model>``), and a fallback after an error
does not try them; in shadow mode that choice is only recorded.

Local cooldowns (:mod:`agentmesh.instrumentation._cooldowns`) close the gap until the
collector's breaker arrives: the first retryable error of a model cools it down in this
process for the provider's ``retry-after`` (else ``AGENTMESH_ROUTING_COOLDOWN_S``, 30 s by
default; 0 turns them off), and it joins ``open_circuits`` meanwhile, so the next calls go
straight to the next candidate (reason ``cooldown for <model>``; the utility policy adds
``; cooldown for <model>`` to its own reason): one failed request per outage, not one per
call. Then one call at a time probes it (enforce mode); a success ends the cooldown, a failure
doubles it (capped by ``AGENTMESH_ROUTING_COOLDOWN_MAX_S``). The provider
hooks learn a probe succeeded when its span has ended without a retryable error (checked at the
next routing decision); wrappers calling :func:`before_call` themselves call
:func:`on_success`. In shadow mode the errors of the calls as sent feed the cooldowns too, and
the decisions show what enforce mode would do.

Everything here is fail-open: when the policy or our code raises, the error is logged and the
call goes through unchanged. The one exception let through on purpose is the provider hook's
:class:`~agentmesh.core.errors.RunStoppedError`, for a run the collector stopped.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any, Final, cast

from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from agentmesh.core.log import get_logger
from agentmesh.core.semconv import (
    AGENTMESH_ROUTE_DECISION_ID,
    AGENTMESH_ROUTE_FALLBACK_FROM,
    AGENTMESH_ROUTE_FALLBACK_TO,
    ERROR_TYPE,
    EVENT_FALLBACK,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
)
from agentmesh.instrumentation._cooldowns import CooldownTable, retry_after_seconds
from agentmesh.instrumentation._failopen import report, safe_call
from agentmesh.instrumentation.baggage import current_task_class
from agentmesh.instrumentation.control import (
    check_current_run,
    control_client,
    open_breakers,
    shutdown_control,
)
from agentmesh.instrumentation.control._slot import changes, note_change
from agentmesh.instrumentation.feedback import remember_route
from agentmesh.instrumentation.route_budget import current_call_budget
from agentmesh.instrumentation.route_table import current_route_table, route_table_client
from agentmesh.instrumentation.settings import InstrumentationSettings, load_or_report
from agentmesh.router import (
    DecisionLog,
    FallbackChains,
    ModelCatalog,
    PassThroughPolicy,
    PinnedPolicy,
    Pins,
    RouteDecision,
    RouteMode,
    RouteRequest,
    RoutingPolicy,
    Tradeoff,
    UtilityPolicy,
    prompt_features,
    prompt_text,
    text_chars_of,
)
from agentmesh.router.catalog import usable_catalog
from agentmesh.router.table import BUNDLED_TABLE

_log = get_logger(__name__)

__all__ = [
    "RoutedCall",
    "RoutingConfig",
    "before_call",
    "configure_routing",
    "current_decision_id",
    "decision_log",
    "detach",
    "fallback_event",
    "hook_before",
    "hook_on_error",
    "install_provider_hooks",
    "is_retryable",
    "on_error",
    "on_success",
    "reset_routing",
    "routing_config",
    "span_attributes",
    "uninstall_provider_hooks",
]

_RETRYABLE_NAMES: Final = frozenset(
    {
        "APIConnectionError",
        "APITimeoutError",
        "RateLimitError",
        "InternalServerError",
        "ServiceUnavailableError",
        "OverloadedError",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "TimeoutException",
        "ConnectionError",
        "TimeoutError",
    }
)
_RETRYABLE_STATUSES: Final = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The routing in force: mode, policy, fallback bound and decision log.

    Attributes:
        mode: ``off``, ``shadow`` or ``enforce``.
        policy: The policy that decides.
        max_fallbacks: Most fallbacks tried for one call (enforce mode).
        log: Where decisions are kept.
        cooldowns: The models this process avoids after their retryable errors.
        explicit_mode: Whether the app chose its mode (``AGENTMESH_ROUTING_MODE`` set, or
            ``configure_routing(mode=...)``): the route table's fleet-wide ``"*"`` mode then
            does not replace it, and an explicit ``off`` is never overridden.
    """

    mode: RouteMode
    policy: RoutingPolicy
    max_fallbacks: int
    log: DecisionLog
    cooldowns: CooldownTable = field(default_factory=CooldownTable)
    explicit_mode: bool = False


@dataclass(slots=True)
class RoutedCall:
    """One provider call as routed: its decision and the keyword arguments to send.

    Attributes:
        provider: Where the call goes (``openai``, ``anthropic``, ``openrouter``).
        kwargs: The keyword arguments to call the SDK with (the model replaced in enforce
            mode, and again on each fallback).
        decision: The decision, or ``None`` (mode off, no model named, or routing failed).
        mode: The mode the call was routed in.
        max_fallbacks: Most fallbacks this call may make.
        failed: Models tried that failed, in order (each then fell back).
        unavailable: Models this call sent to that answered a retryable error, in order.
        cooldowns: The cooldown table the call's outcomes go to, if any.
    """

    provider: str
    kwargs: dict[str, Any]
    decision: RouteDecision | None = None
    mode: RouteMode = "off"
    max_fallbacks: int = 0
    failed: list[str] = field(default_factory=list[str])
    unavailable: list[str] = field(default_factory=list[str])
    cooldowns: CooldownTable | None = None

    @property
    def model(self) -> str | None:
        """The model the next send goes to."""
        value = self.kwargs.get("model")
        return value if isinstance(value, str) else None

    def context(self, parent: Context | None = None) -> Context | None:
        """Return a context whose baggage carries the decision id (``None`` without decision).

        Args:
            parent: The context to extend; the current one by default.

        Returns:
            The new context, or ``None``.
        """
        if self.decision is None:
            return None
        return baggage.set_baggage(AGENTMESH_ROUTE_DECISION_ID, self.decision.decision_id, parent)

    def attach(self) -> object | None:
        """Put the decision id in the current context's baggage; never raises.

        Child spans then carry ``agentmesh.route.decision_id`` and outgoing HTTP calls send
        it. Give the result to :func:`detach` when the call is over.

        Returns:
            A token for :func:`detach`, or ``None`` (no decision, or attaching failed).
        """
        if self.decision is None:
            return None
        ctx = safe_call("routing.context", self.context)
        if ctx is None:
            return None
        return safe_call("routing.attach", otel_context.attach, ctx)


def detach(token: object | None) -> None:
    """Restore the context :meth:`RoutedCall.attach` replaced; never raises.

    Args:
        token: What ``attach`` returned.
    """
    if token is not None:
        safe_call("routing.detach", otel_context.detach, token)  # pyright: ignore[reportArgumentType]


def current_decision_id(context: Context | None = None) -> str | None:
    """Return the routing decision id carried in baggage, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The decision id, or ``None``.
    """
    value = baggage.get_baggage(AGENTMESH_ROUTE_DECISION_ID, context)
    return value if isinstance(value, str) and value else None


# --- configuration ----------------------------------------------------------------------------

_lock = threading.Lock()
_config: RoutingConfig | None = None
_atexit_registered = False


def _policy_from(settings: InstrumentationSettings) -> RoutingPolicy:
    # an unusable catalog override is logged once and the bundled catalog routes
    fallbacks = FallbackChains(settings.routing_fallbacks, catalog=usable_catalog())
    pins = Pins.from_config(settings.routing_pins)
    inner: RoutingPolicy
    if settings.routing_policy == "utility":
        inner = UtilityPolicy(
            current_route_table,
            candidates=settings.routing_candidates or None,
            fallbacks=fallbacks,
            tradeoff=Tradeoff(settings.routing_cost_weight, settings.routing_latency_weight),
            exploration=settings.routing_exploration,
        )
    else:
        inner = PassThroughPolicy(fallbacks)
    if pins:
        return PinnedPolicy(pins, fallbacks, inner)
    return inner


def _mode_of(config: RoutingConfig) -> RouteMode:
    """The mode for this call.

    An app that chose its mode keeps it, except where the route table names the call's task
    class (an operator's decision for that class); an explicit ``off`` is always kept. An app
    that did not choose follows the table: its mode for the task class, else its ``"*"``.
    """
    table = current_route_table()
    if table.default_mode is None and not table.modes:
        return config.mode
    if not config.explicit_mode:
        return table.mode_for(current_task_class(), config.mode)
    if config.mode == "off":
        return "off"
    task_class = current_task_class()
    named = table.modes.get(task_class) if task_class is not None else None
    if named is None or named == config.mode:
        return config.mode
    if (task_class, named) not in _overrides_noted:
        _overrides_noted.add((task_class, named))
        _log.info(
            "route table sets the routing mode of a task class",
            task_class=task_class,
            mode=named,
            app_mode=config.mode,
        )
    return named


_overrides_noted: set[tuple[str | None, str]] = set()


def _close_log() -> None:
    config = _config
    if config is not None:
        config.log.close()


def _install(config: RoutingConfig) -> RoutingConfig:
    global _config, _atexit_registered
    with _lock:
        previous, _config = _config, config
        note_change()
        if config.log.path is not None and not _atexit_registered:
            atexit.register(_close_log)
            _atexit_registered = True
    if previous is not None and previous.log is not config.log:
        safe_call("routing.close_log", previous.log.close)
    return config


def configure_routing(
    *,
    mode: RouteMode | None = None,
    policy: RoutingPolicy | None = None,
    max_fallbacks: int | None = None,
    log: DecisionLog | None = None,
    cooldowns: CooldownTable | None = None,
    settings: InstrumentationSettings | None = None,
) -> RoutingConfig:
    """Set the routing in force; what is not given comes from the settings.

    This is also how a learned policy plugs in: ``configure_routing(policy=MyPolicy())``.

    Args:
        mode: ``off``, ``shadow`` or ``enforce``.
        policy: The policy; by default the one ``AGENTMESH_ROUTING_POLICY`` names (``utility``,
            learned from the route table and pass-through until the table carries a predictor;
            or ``pass_through``), under pinned rules when ``AGENTMESH_ROUTING_PINS`` has any,
            with the fallback chains of ``AGENTMESH_ROUTING_FALLBACKS``.
        max_fallbacks: Most fallbacks per call.
        log: The decision log; a new one (writing to ``AGENTMESH_ROUTING_DECISION_LOG``).
        cooldowns: The local cooldown table; a new one (``AGENTMESH_ROUTING_COOLDOWN_S``,
            ``AGENTMESH_ROUTING_COOLDOWN_MAX_S``).
        settings: The settings to read; loaded from the environment by default.

    Returns:
        The configuration now in force.

    Raises:
        ConfigError: The settings are invalid.
    """
    loaded = settings if settings is not None else InstrumentationSettings.load()
    config = RoutingConfig(
        explicit_mode=mode is not None or "routing_mode" in loaded.model_fields_set,
        mode=mode if mode is not None else loaded.routing_mode,
        policy=policy if policy is not None else _policy_from(loaded),
        max_fallbacks=max_fallbacks if max_fallbacks is not None else loaded.routing_max_fallbacks,
        log=log if log is not None else DecisionLog(path=loaded.routing_decision_log),
        cooldowns=cooldowns
        if cooldowns is not None
        else CooldownTable(loaded.routing_cooldown_s, max_s=loaded.routing_cooldown_max_s),
    )
    return _install(config)


def _off_config() -> RoutingConfig:
    # No catalog read here: this is the fallback when reading the configuration failed.
    policy = PassThroughPolicy(FallbackChains(catalog=ModelCatalog([])))
    return RoutingConfig("off", policy, 0, DecisionLog(capacity=1), CooldownTable(0.0))


def routing_config() -> RoutingConfig:
    """Return the routing in force, configured from the settings on first use (never raises).

    Invalid settings are logged as an error once per process (by whatever read them first,
    ``agentmesh.invalid_configuration``) and routing is turned off (said at info level).

    Returns:
        The configuration.
    """
    config = _config
    if config is not None:
        return config
    try:
        loaded = load_or_report()
        if loaded is None:
            _log.info(
                "routing is off: its settings cannot be used",
                where="routing.configure",
                reason="invalid settings, logged as agentmesh.invalid_configuration",
            )
            return _install(_off_config())
        return configure_routing(settings=loaded)
    except Exception as exc:  # noqa: BLE001 - fail-open: the app runs unrouted
        with suppress(Exception):
            _log.error(
                "routing is off: its settings cannot be used",
                where="routing.configure",
                error=str(exc),
            )
        return _install(_off_config())


def reset_routing() -> None:
    """Forget the routing in force (its log is closed); the next call reads the settings."""
    global _config
    with _lock:
        previous, _config = _config, None
        note_change()
    with _inflight_lock:
        _watched.clear()
    _overrides_noted.clear()
    if previous is not None:
        safe_call("routing.close_log", previous.log.close)


def decision_log() -> DecisionLog:
    """Return the decision log of the routing in force.

    Returns:
        The log.
    """
    return routing_config().log


# --- the hook -----------------------------------------------------------------------------------


def _probe_or_avoid(
    decision: RouteDecision, circuits: frozenset[str], table: CooldownTable
) -> RouteDecision:
    """Claim the probe of a half-open chosen model, else pass over it (enforce mode)."""
    blocked = set(circuits)
    while (
        decision.chosen in table
        and decision.chosen not in blocked
        and not table.admit(decision.chosen)
    ):
        blocked.add(decision.chosen)  # another call is probing it
        decision = decision.avoiding(blocked)
    return decision


_CIRCUIT_OPEN: Final = "circuit open for "


def _cooldown_reason(
    decision: RouteDecision, breakers: frozenset[str], table: CooldownTable
) -> RouteDecision:
    """Say ``cooldown for <model>`` for the models passed over that cool down locally.

    The policies name the models they pass over for an open circuit in a ``circuit open for
    <model>, <model>`` clause of the reason (the whole reason for pass-through and pins, after
    ``; `` for the utility policy); the ones cooling down in this process, and whose breaker is
    not open too, are named in a ``cooldown for`` clause instead.
    """
    reason = decision.reason
    if _CIRCUIT_OPEN not in reason:
        return decision
    clauses = reason.split("; ")
    changed = False
    for at, clause in enumerate(clauses):
        if not clause.startswith(_CIRCUIT_OPEN):
            continue
        models = clause[len(_CIRCUIT_OPEN) :].split(", ")
        cooling = [m for m in models if m not in breakers and m in table]
        if not cooling:
            continue
        broken = [m for m in models if m not in cooling]
        clauses[at] = f"cooldown for {', '.join(cooling)}" + (
            f"; {_CIRCUIT_OPEN}{', '.join(broken)}" if broken else ""
        )
        changed = True
    return replace(decision, reason="; ".join(clauses)) if changed else decision


def _decide(
    config: RoutingConfig, provider: str, kwargs: dict[str, Any], mode: RouteMode
) -> RoutedCall:
    model = kwargs.get("model")
    if not isinstance(model, str) or not model:
        return RoutedCall(provider, kwargs)
    table = config.cooldowns
    breakers = open_breakers()
    routed_table = current_route_table()
    if routed_table.breakers:
        breakers = breakers | routed_table.open_circuits(time.time())
    cooling = table.avoid()
    circuits = breakers | cooling if cooling else breakers
    policy = config.policy
    chars = text_chars_of(policy)
    # One character more than the policy reads: its hasher then drops the word the cut went
    # through, as it did in training on whole prompts.
    text = prompt_text(kwargs, chars + 1) if chars else ""
    request = RouteRequest(
        provider,
        model,
        current_task_class(),
        prompt_features(kwargs),
        mode,
        circuits,
        text,
        current_call_budget(),
        routed_table.version,  # its mode and breakers shape the call, whatever the policy reads
    )
    decision = policy.decide(request)
    if circuits:  # a policy that ignores open circuits is corrected here
        decision = decision.avoiding(circuits)
    if mode == "enforce" and len(table):
        decision = _probe_or_avoid(decision, circuits, table)
    if len(table):
        decision = _cooldown_reason(decision, breakers, table)
    config.log.record(decision)
    if mode == "enforce" and decision.chosen != model:
        kwargs = {**kwargs, "model": decision.chosen}
    cooldowns = table if table.enabled else None
    return RoutedCall(provider, kwargs, decision, mode, config.max_fallbacks, cooldowns=cooldowns)


def before_call(provider: str, kwargs: dict[str, Any]) -> RoutedCall:
    """Route a provider call before it is sent (never raises).

    Args:
        provider: Where the call goes: ``openai``, ``anthropic``, ``openrouter``.
        kwargs: The SDK method's keyword arguments (not modified).

    Returns:
        The routed call: send ``routed.kwargs``. Without a decision (mode off, no model,
        routing failed) they are ``kwargs`` themselves.
    """
    config = _config or routing_config()
    mode = _mode_of(config)
    if mode == "off":
        return RoutedCall(provider, kwargs)
    routed = safe_call("routing.before_call", _decide, config, provider, kwargs, mode)
    return routed if routed is not None else RoutedCall(provider, kwargs)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is None:
        status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Tell whether a provider error is worth trying another model for.

    Retryable: HTTP 408, 429 and 5xx (Anthropic's 529 included), connection errors and
    timeouts. Decided from the status attributes and the class names in the exception's
    MRO, so no SDK is imported.

    Args:
        exc: The error the SDK raised.

    Returns:
        Whether to fall back.
    """
    status = _status(exc)
    if status is not None:
        return status in _RETRYABLE_STATUSES or 500 <= status <= 599
    return any(cls.__name__ in _RETRYABLE_NAMES for cls in type(exc).__mro__)


def _cool_down(table: CooldownTable, model: str, exc: BaseException) -> None:
    table.record_failure(model, retry_after_seconds(exc))


def _admitted(table: CooldownTable | None, model: str) -> bool:
    if table is None:
        return True
    try:
        return table.admit(model)
    except Exception as exc:  # noqa: BLE001 - fail-open: the fallback goes on
        report("routing.cooldown_admit", exc)
        return True


def _next(call: RoutedCall, exc: BaseException) -> dict[str, Any] | None:
    decision = call.decision
    if decision is None or not is_retryable(exc):
        return None
    current = call.model
    table = call.cooldowns
    if current is not None:
        call.unavailable.append(current)
        if table is not None:  # its own fail-open: a bug there must not cost the fallback
            safe_call("routing.cooldown", _cool_down, table, current, exc)
    if call.mode != "enforce" or len(call.failed) >= call.max_fallbacks:
        return None
    tried = {*call.failed, current, *decision.avoided}
    for candidate in decision.candidates:
        if candidate not in tried and _admitted(table, candidate):
            if current is not None:
                call.failed.append(current)
            call.kwargs = {**call.kwargs, "model": candidate}
            return call.kwargs
    return None


def on_error(call: RoutedCall, exc: BaseException) -> dict[str, Any] | None:
    """Choose what to send next after a provider error (never raises).

    A retryable error cools the model down in this process (shadow and enforce mode; see
    the module's docstring). Then, only in enforce mode, only for a retryable error, and at
    most ``max_fallbacks`` times per call: the keyword arguments for the next untried
    candidate not cooling down are returned (and become ``call.kwargs``). Otherwise ``None``:
    the wrapper re-raises the application's error.

    Args:
        call: The routed call.
        exc: The error the SDK raised.

    Returns:
        The keyword arguments to send next, or ``None``.
    """
    if call.decision is None or (call.mode != "enforce" and call.cooldowns is None):
        return None
    return safe_call("routing.on_error", _next, call, exc)


def _succeeded(call: RoutedCall) -> None:
    model, table = call.model, call.cooldowns
    if model is not None and table is not None and model not in call.unavailable:
        table.record_success(model)


def on_success(call: RoutedCall) -> None:
    """Tell routing the call was answered: the answering model's cooldown ends (never raises).

    The provider hooks call it themselves (when the call's span has ended); a wrapper that
    calls :func:`before_call` and :func:`on_error` calls it once the SDK call returned. A
    call whose last model answered a retryable error changes nothing; a client error (400,
    401…) counts as an answer: the model is up.

    Args:
        call: The routed call.
    """
    if call.cooldowns is not None and len(call.cooldowns):
        safe_call("routing.on_success", _succeeded, call)


def span_attributes(call: RoutedCall) -> dict[str, AttributeValue]:
    """Return the ``agentmesh.route.*`` attributes of the call's span (never raises).

    Args:
        call: The routed call.

    Returns:
        The attributes (empty without decision).
    """
    decision = call.decision
    if decision is None:
        return {}
    attrs: Mapping[str, AttributeValue] | None = safe_call(
        "routing.span_attributes", decision.span_attributes
    )
    return dict(attrs) if attrs is not None else {}


def fallback_event(
    call: RoutedCall, exc: BaseException, next_model: str
) -> tuple[str, dict[str, AttributeValue]]:
    """Return the span event recording a fallback: its name and attributes.

    Args:
        call: The routed call (after :func:`on_error` chose ``next_model``).
        exc: The error that caused the fallback.
        next_model: The model tried next.

    Returns:
        ``("agentmesh.route.fallback", {from, to, error.type, decision id})``.
    """
    failed = call.failed[-1] if call.failed else (call.model or "")
    attrs: dict[str, AttributeValue] = {
        AGENTMESH_ROUTE_FALLBACK_FROM: failed,
        AGENTMESH_ROUTE_FALLBACK_TO: next_model,
        ERROR_TYPE: type(exc).__name__,
    }
    if call.decision is not None:
        attrs[AGENTMESH_ROUTE_DECISION_ID] = call.decision.decision_id
    return EVENT_FALLBACK, attrs


# --- adapter to the provider wrappers' hook point -------------------------------------------------

_UNROUTED_ENDPOINTS: Final = ("embeddings",)  # another model means other vectors: never route
_inflight_lock = threading.Lock()
_inflight: weakref.WeakKeyDictionary[Span, RoutedCall] = weakref.WeakKeyDictionary()
_watched: list[tuple[Span, RoutedCall]] = []  # calls sent to a model cooling down or half-open
_WATCHED_MAX: Final = 64


def _watch(span: Span, routed: RoutedCall) -> None:
    """Watch a call sent to a model in the cooldown table: its span's end tells the outcome."""
    table, model = routed.cooldowns, routed.model
    if table is None or model is None or model not in table:
        return
    with _inflight_lock:
        if any(call is routed for _, call in _watched):
            return
        if len(_watched) >= _WATCHED_MAX:
            del _watched[0]
        _watched.append((span, routed))


def _settle_watched() -> None:
    """Report the outcome of the watched calls whose span has ended."""
    with _inflight_lock:
        ended = [(span, call) for span, call in _watched if not span.is_recording()]
        if not ended:
            return
        _watched[:] = [(span, call) for span, call in _watched if span.is_recording()]
    for _, call in ended:
        _succeeded(call)  # a retryable error was recorded by on_error: this skips it


def _provider_of(span: Span, endpoint: str) -> str:
    attrs: object = getattr(span, "attributes", None)
    if isinstance(attrs, Mapping):
        value = cast("Mapping[str, object]", attrs).get(GEN_AI_PROVIDER_NAME)
        if isinstance(value, str) and value:
            return value
    return endpoint.split(".", 1)[0]


_W3C_BAGGAGE: Final = W3CBaggagePropagator()


def _baggage_header(decision_id: str) -> str | None:
    """The ``baggage`` header value of the current baggage plus the decision id, if sent."""
    if "baggage" not in propagate.get_global_textmap().fields:
        return None  # the app propagates no baggage: neither do we
    if not baggage.get_all():  # the common case, without the propagator's encoding work
        return f"{AGENTMESH_ROUTE_DECISION_ID}={decision_id}"
    carrier: dict[str, str] = {}
    _W3C_BAGGAGE.inject(
        carrier, context=baggage.set_baggage(AGENTMESH_ROUTE_DECISION_ID, decision_id)
    )
    return carrier.get("baggage")


def _with_baggage_header(routed: RoutedCall, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Add a ``baggage`` header carrying the decision id (unless the app set one)."""
    decision = routed.decision
    existing = kwargs.get("extra_headers")
    if decision is None or (existing is not None and not isinstance(existing, Mapping)):
        return kwargs
    headers = cast("Mapping[str, object] | None", existing) or {}
    if any(str(name).lower() == "baggage" for name in headers):
        return kwargs
    value = _baggage_header(decision.decision_id)
    if value is None:
        return kwargs
    return {**kwargs, "extra_headers": {**headers, "baggage": value}}


def _before_hook(span: Span, endpoint: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if endpoint.endswith(_UNROUTED_ENDPOINTS):
        return kwargs
    config = _config or routing_config()
    if config.mode == "off" and _mode_of(config) == "off":
        return kwargs
    if _watched:
        _settle_watched()
    routed = before_call(_provider_of(span, endpoint), kwargs)
    if routed.decision is None:
        return kwargs
    span.set_attributes(span_attributes(routed))
    _name_sent_model(span, kwargs.get("model"), routed.kwargs.get("model"))
    remember_route(span, routed.decision.decision_id, routed.decision.chosen)
    if routed.mode == "enforce" or routed.cooldowns is not None:
        with _inflight_lock:
            _inflight[span] = routed
        if len(config.cooldowns):
            _watch(span, routed)
    return _with_baggage_header(routed, routed.kwargs)


def _name_sent_model(span: Span, requested: object, sent: object) -> None:
    """Name the model actually sent on the span (``gen_ai.request.model``, the span name).

    GenAI backends count a call under its request model; after enforce replaced the app's
    model (kept in ``agentmesh.route.requested_model``) or a fallback, that is the sent one.
    """
    if not isinstance(sent, str) or not isinstance(requested, str) or sent == requested:
        return
    span.set_attribute(GEN_AI_REQUEST_MODEL, sent)
    name: object = getattr(span, "name", None)
    if isinstance(name, str) and name.endswith(f" {requested}"):
        span.update_name(f"{name[: -len(requested)]}{sent}")


def hook_before(span: Span, endpoint: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The provider wrappers' ``before`` hook: stop a stopped run, else route the call.

    First the run in baggage is checked against the collector's control document
    (:func:`agentmesh.instrumentation.control.check_run`): the call of a stopped run raises
    :class:`~agentmesh.core.errors.RunStoppedError`, the one exception this hook lets out on
    purpose (the wrappers pass it through and end the span with it). Then the call is routed:
    the decision is recorded on ``span`` and the keyword arguments to send are returned (the
    chosen model in enforce mode, models whose circuit is open or that cool down locally passed
    over) with the decision id in the outgoing ``baggage`` header. Embeddings are never routed.
    Any other failure is logged and the call goes through unchanged.

    Args:
        span: The call's span, started.
        endpoint: The endpoint's name (``openai.chat``, ``anthropic.messages``…).
        kwargs: The SDK method's keyword arguments.

    Returns:
        The keyword arguments to call the SDK with.

    Raises:
        RunStoppedError: The collector stopped the run this call belongs to.
    """
    global _idle_at
    seen = changes()
    if seen == _idle_at:  # nothing changed since a call found nothing to do: nothing to do
        return kwargs
    check_current_run()  # fail-open inside, except for the stop itself
    try:  # inline rather than safe_call: this runs on every provider call
        result = _before_hook(span, endpoint, kwargs)
        if _nothing_acts():
            _idle_at = seen
        return result
    except Exception as exc:  # noqa: BLE001 - fail-open
        report("routing.hook_before", exc)
        return kwargs


_idle_at = -1
"""The value of :func:`changes` at which a provider call was found to need no hook work."""


def _nothing_acts() -> bool:
    """Whether no hook work can apply until :func:`changes` moves.

    True when routing is off, the route table in force (the followed one, else the bundled
    defaults) sets no mode, the control document lists no run, and no call sent to a
    cooling-down model is still watched. A new configuration, client, table or document moves
    :func:`changes` (the long-poll clients after they take a document).
    """
    config = _config
    if config is None or config.mode != "off" or _watched:
        return False
    control = control_client()
    if control is not None and control.document.runs:
        return False
    follower = route_table_client()
    table = follower.table if follower is not None else BUNDLED_TABLE
    return table.default_mode is None and not table.modes


def _on_error_hook(
    span: Span, endpoint: str, kwargs: dict[str, Any], exc: BaseException
) -> dict[str, Any] | None:
    with _inflight_lock:
        routed = _inflight.get(span)
    if routed is None:
        return None
    retry = on_error(routed, exc)
    if retry is None:
        return None
    name, attrs = fallback_event(routed, exc, str(retry.get("model")))
    span.add_event(name, attrs)
    _name_sent_model(span, kwargs.get("model"), retry.get("model"))
    _watch(span, routed)
    return _with_baggage_header(routed, retry)


def hook_on_error(
    span: Span, endpoint: str, kwargs: dict[str, Any], exc: BaseException
) -> dict[str, Any] | None:
    """The provider wrappers' ``on_error`` hook: fall back to the next candidate (never raises).

    Args:
        span: The call's span.
        endpoint: The endpoint's name.
        kwargs: The keyword arguments that failed.
        exc: The SDK's error.

    Returns:
        The keyword arguments to retry with (the ``agentmesh.route.fallback`` event is added
        to ``span``), or ``None`` to let the error through.
    """
    return safe_call("routing.hook_on_error", _on_error_hook, span, endpoint, kwargs, exc)


def install_provider_hooks() -> bool:
    """Route every instrumented OpenAI and Anthropic call (installs the hooks; never raises).

    Returns:
        Whether the hooks are installed.
    """
    return safe_call("routing.install_hooks", _set_hooks, True) is not None


def uninstall_provider_hooks() -> None:
    """Stop routing provider calls and following the control document (never raises)."""
    safe_call("routing.uninstall_hooks", _set_hooks, False)
    shutdown_control()


def _set_hooks(on: bool) -> bool:
    from agentmesh.instrumentation.openai import _hooks  # our module; imports no SDK

    _hooks.set_hooks(_hooks.CallHooks(before=hook_before, on_error=hook_on_error) if on else None)
    return on
