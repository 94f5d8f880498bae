"""What the collector does about each detection type: :class:`RecoveryPolicy`.

Actions:

- ``stop``: list the run in the control document with action ``stop``; its next step raises
  :class:`~agentmesh.core.errors.RunStoppedError` (with the last good handoff checkpoint).
- ``warn``: list the run with action ``warn``; the application reports it and carries on.
- ``break``: open a circuit breaker on the detection's model (``details["model"]``);
  applications fall back to other models until it closes. Only for types about a model.
- ``none``: record nothing (the detection is still stored and published).

Defaults (:data:`DEFAULT_ACTIONS`): the failures that burn budget without progress stop the run
(``handoff_loop``, ``ping_pong``, ``tool_loop``, ``runaway``); provider trouble breaks the model
(``provider_outage``, ``rate_limit_storm``); the rest warn (``stuck`` may be a slow step,
spikes and ``error_cascade`` are signals, ``context_loss`` is a correctness issue the
application should see but may survive).

Example:
    >>> policy = RecoveryPolicy.parse('{"stuck": "stop", "latency_spike": "none"}')
    >>> policy.action_for("stuck"), policy.action_for("handoff_loop"), policy.action_for("x")
    ('stop', 'stop', 'none')
    >>> RecoveryPolicy.parse("token_spike=break").action_for("token_spike")
    'break'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, Protocol, cast, get_args

from agentmesh.core.errors import ConfigError

__all__ = [
    "ACTIONS_VARIABLE",
    "DEFAULT_ACTIONS",
    "DETECTION_TYPES",
    "MODEL_TYPES",
    "PolicyAction",
    "RecoveryPolicy",
    "RecoverySettings",
    "check_actions",
]

PolicyAction = Literal["stop", "warn", "break", "none"]
"""What to do about a detection type."""

ACTIONS_VARIABLE: Final = "AGENTMESH_COLLECTOR_RECOVERY_ACTIONS"
"""The environment variable error messages name for the actions table."""

DETECTION_TYPES: Final = (
    "handoff_loop",
    "ping_pong",
    "tool_loop",
    "stuck",
    "runaway",
    "latency_spike",
    "token_spike",
    "cost_spike",
    "error_cascade",
    "rate_limit_storm",
    "provider_outage",
    "context_loss",
)
"""Every detection type the collector reports."""

MODEL_TYPES: Final = frozenset(
    {
        "provider_outage",
        "rate_limit_storm",
        "error_cascade",
        "latency_spike",
        "token_spike",
        "cost_spike",
    }
)
"""Types whose detections may name a model, so ``break`` is allowed for them."""

DEFAULT_ACTIONS: Final[Mapping[str, PolicyAction]] = MappingProxyType(
    {
        "handoff_loop": "stop",
        "ping_pong": "stop",
        "tool_loop": "stop",
        "runaway": "stop",
        "stuck": "warn",
        "latency_spike": "warn",
        "token_spike": "warn",
        "cost_spike": "warn",
        "error_cascade": "warn",
        "context_loss": "warn",
        "rate_limit_storm": "break",
        "provider_outage": "break",
    }
)
"""The action of each type when the settings do not say."""

_ACTIONS: Final = cast(tuple[PolicyAction, ...], get_args(PolicyAction))


class RecoverySettings(Protocol):
    """The settings :meth:`RecoveryPolicy.from_settings` reads (``CollectorSettings`` fields)."""

    @property
    def recovery_actions(self) -> str | Mapping[str, str] | None:
        """Detection type → action overrides (JSON object, ``type=action,…``, or a mapping)."""
        ...

    @property
    def recovery_breaker_cooldown_seconds(self) -> float:
        """First cool-down of a breaker."""
        ...

    @property
    def recovery_breaker_max_cooldown_seconds(self) -> float:
        """Longest cool-down (re-opening doubles it up to this)."""
        ...

    @property
    def recovery_run_ttl_seconds(self) -> float:
        """How long a run stays in the control document."""
        ...


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """Detection type → action, and the timings of breakers and run controls.

    Build it with :meth:`parse` or :meth:`from_settings` (they validate); the constructor
    trusts its arguments.

    Attributes:
        actions: The action of each detection type (types absent: ``none``).
        breaker_cooldown_seconds: How long a breaker stays open the first time.
        breaker_max_cooldown_seconds: Cap of the doubled cool-down of a breaker that re-opens;
            also how long a half-open breaker stays when no call tries the model.
        run_ttl_seconds: How long a run stays in the control document after the decision.
    """

    actions: Mapping[str, PolicyAction] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    breaker_cooldown_seconds: float = 30.0
    breaker_max_cooldown_seconds: float = 600.0
    run_ttl_seconds: float = 3600.0

    def action_for(self, detection_type: str) -> PolicyAction:
        """Return the action for a detection type.

        Args:
            detection_type: For example ``handoff_loop``.

        Returns:
            The configured action; ``none`` for a type the policy does not know.
        """
        return self.actions.get(detection_type, "none")

    @classmethod
    def parse(
        cls,
        actions: str | Mapping[str, str] | None = None,
        *,
        breaker_cooldown_seconds: float = 30.0,
        breaker_max_cooldown_seconds: float = 600.0,
        run_ttl_seconds: float = 3600.0,
    ) -> RecoveryPolicy:
        """Build a policy from configuration values, over the defaults.

        Args:
            actions: Overrides of :data:`DEFAULT_ACTIONS`: a JSON object
                (``{"stuck": "stop"}``), ``type=action`` pairs separated by commas, or a
                mapping; empty or ``None`` keeps the defaults.
            breaker_cooldown_seconds: First cool-down of a breaker (> 0).
            breaker_max_cooldown_seconds: Cap of the doubled cool-down (>= the first).
            run_ttl_seconds: How long a run stays listed (> 0).

        Returns:
            The policy.

        Raises:
            ConfigError: A value is malformed, a type or action is unknown, ``break`` is asked
                for a type that names no model, or a duration is out of range.
        """
        try:
            table: dict[str, PolicyAction] = {**DEFAULT_ACTIONS, **check_actions(actions)}
        except ValueError as exc:
            raise ConfigError(f"{ACTIONS_VARIABLE}: {exc}") from exc
        if not breaker_cooldown_seconds > 0:
            raise ConfigError(
                "AGENTMESH_COLLECTOR_RECOVERY_BREAKER_COOLDOWN_SECONDS must be positive, "
                f"got {breaker_cooldown_seconds}"
            )
        if not breaker_max_cooldown_seconds >= breaker_cooldown_seconds:
            raise ConfigError(
                "AGENTMESH_COLLECTOR_RECOVERY_BREAKER_MAX_COOLDOWN_SECONDS "
                f"({breaker_max_cooldown_seconds}) must be at least the first cool-down "
                f"({breaker_cooldown_seconds})"
            )
        if not run_ttl_seconds > 0:
            raise ConfigError(
                f"AGENTMESH_COLLECTOR_RECOVERY_RUN_TTL_SECONDS must be positive, got "
                f"{run_ttl_seconds}"
            )
        return cls(
            MappingProxyType(table),
            float(breaker_cooldown_seconds),
            float(breaker_max_cooldown_seconds),
            float(run_ttl_seconds),
        )

    @classmethod
    def from_settings(cls, settings: RecoverySettings) -> RecoveryPolicy:
        """Build the policy the collector's settings ask for.

        Args:
            settings: Settings with the ``recovery_*`` fields.

        Returns:
            The policy.

        Raises:
            ConfigError: See :meth:`parse`.
        """
        return cls.parse(
            settings.recovery_actions,
            breaker_cooldown_seconds=settings.recovery_breaker_cooldown_seconds,
            breaker_max_cooldown_seconds=settings.recovery_breaker_max_cooldown_seconds,
            run_ttl_seconds=settings.recovery_run_ttl_seconds,
        )


def check_actions(actions: str | Mapping[str, str] | None) -> dict[str, PolicyAction]:
    """Read and check the overrides of the actions table, as :meth:`RecoveryPolicy.parse` does.

    Settings call it when they are loaded, so a wrong value is reported with the flag or the
    variable that gave it.

    Args:
        actions: A JSON object, ``type=action`` pairs separated by commas, a mapping, or
            empty / ``None``.

    Returns:
        The overrides: action by detection type.

    Raises:
        ValueError: The value is malformed, a type or action is unknown, or ``break`` is asked
            for a type that names no model (the message names neither flag nor variable).

    Example:
        >>> check_actions("stuck=stop, latency_spike=NONE")
        {'stuck': 'stop', 'latency_spike': 'none'}
    """
    table: dict[str, PolicyAction] = {}
    for detection_type, action in _overrides(actions).items():
        if detection_type not in DETECTION_TYPES:
            raise ValueError(
                f"unknown detection type {detection_type!r}; "
                f"known types: {', '.join(DETECTION_TYPES)}"
            )
        if action not in _ACTIONS:
            raise ValueError(
                f"unknown action {action!r} for {detection_type}; use one of {', '.join(_ACTIONS)}"
            )
        if action == "break" and detection_type not in MODEL_TYPES:
            raise ValueError(
                f"{detection_type} cannot 'break' (its detections name no model); "
                f"'break' is for {', '.join(sorted(MODEL_TYPES))}"
            )
        table[detection_type] = action
    return table


def _overrides(actions: str | Mapping[str, str] | None) -> dict[str, str]:
    if actions is None:
        return {}
    if not isinstance(actions, str):
        return {str(key).strip(): str(value).strip().lower() for key, value in actions.items()}
    text = actions.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data: object = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        found: dict[str, str] = {}
        for key, value in cast(dict[str, object], data).items():  # "{…}" parses to an object
            if not isinstance(value, str):
                raise ValueError(f"the action of {key} must be a string, got {value!r}")
            found[key.strip()] = value.strip().lower()
        return found
    found = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(
                f"{part.strip()!r} is not type=action (for example "
                "'stuck=stop,latency_spike=none', or a JSON object)"
            )
        found[key.strip()] = value.strip().lower()
    return found
