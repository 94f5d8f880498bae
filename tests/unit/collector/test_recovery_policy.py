"""Recovery policy: defaults, the forms of the actions table, and plain-words config errors."""

from dataclasses import dataclass

import pytest

from agentmesh.collector.recovery import DEFAULT_ACTIONS, DETECTION_TYPES, RecoveryPolicy
from agentmesh.core import ConfigError


def test_defaults_cover_every_type_sensibly() -> None:
    policy = RecoveryPolicy.parse()
    assert set(policy.actions) == set(DETECTION_TYPES)
    assert {t for t in DETECTION_TYPES if policy.action_for(t) == "stop"} == {
        "handoff_loop",
        "ping_pong",
        "tool_loop",
        "runaway",
    }
    assert policy.action_for("provider_outage") == policy.action_for("rate_limit_storm") == "break"
    assert policy.action_for("stuck") == policy.action_for("context_loss") == "warn"
    assert policy.action_for("latency_spike") == "warn"
    assert policy.action_for("a_type_from_the_future") == "none"
    assert RecoveryPolicy().actions == DEFAULT_ACTIONS
    assert (policy.breaker_cooldown_seconds, policy.breaker_max_cooldown_seconds) == (30.0, 600.0)
    assert policy.run_ttl_seconds == 3600.0


@pytest.mark.parametrize(
    "actions",
    [
        '{"stuck": "stop", "runaway": "warn", "latency_spike": "none"}',
        " stuck=stop, runaway = WARN ,latency_spike=none,",
        {"stuck": "stop", "runaway": "warn", "latency_spike": "none"},
    ],
)
def test_overrides_in_every_form_keep_the_other_defaults(actions: object) -> None:
    policy = RecoveryPolicy.parse(actions)  # type: ignore[arg-type]
    assert policy.action_for("stuck") == "stop"
    assert policy.action_for("runaway") == "warn"
    assert policy.action_for("latency_spike") == "none"
    assert policy.action_for("handoff_loop") == "stop"
    assert policy.action_for("provider_outage") == "break"


def test_empty_values_keep_the_defaults() -> None:
    assert RecoveryPolicy.parse("").actions == RecoveryPolicy.parse(None).actions == DEFAULT_ACTIONS
    assert RecoveryPolicy.parse("  ").actions == DEFAULT_ACTIONS


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (
            '{"handof_loop": "stop"}',
            "unknown detection type 'handof_loop'; known types: handoff_loop",
        ),
        ("stuck=kill", "unknown action 'kill' for stuck; use one of stop, warn, break, none"),
        ('{"handoff_loop": "break"}', "handoff_loop cannot 'break' (its detections name no model)"),
        ('{"stuck": ', "AGENTMESH_COLLECTOR_RECOVERY_ACTIONS: not valid JSON"),
        ('["stuck"]', "'[\"stuck\"]' is not type=action"),  # JSON, but not an object
        ('{"stuck": 1}', "the action of stuck must be a string, got 1"),
        ("stuck:stop", "'stuck:stop' is not type=action"),
    ],
)
def test_bad_actions_are_config_errors_naming_the_variable(actions: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RecoveryPolicy.parse(actions)
    assert message in str(caught.value)
    assert "AGENTMESH_COLLECTOR_RECOVERY_ACTIONS" in str(caught.value)


def test_break_is_allowed_for_model_types() -> None:
    assert RecoveryPolicy.parse("latency_spike=break").action_for("latency_spike") == "break"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"breaker_cooldown_seconds": 0}, "RECOVERY_BREAKER_COOLDOWN_SECONDS must be positive"),
        (
            {"breaker_cooldown_seconds": 60, "breaker_max_cooldown_seconds": 30},
            "RECOVERY_BREAKER_MAX_COOLDOWN_SECONDS (30) must be at least the first cool-down (60)",
        ),
        ({"run_ttl_seconds": -1}, "RECOVERY_RUN_TTL_SECONDS must be positive, got -1"),
    ],
)
def test_bad_durations_are_config_errors(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RecoveryPolicy.parse(None, **kwargs)
    assert message in str(caught.value)


@dataclass
class _Settings:
    recovery_actions: str = '{"ping_pong": "warn"}'
    recovery_breaker_cooldown_seconds: float = 5.0
    recovery_breaker_max_cooldown_seconds: float = 40.0
    recovery_run_ttl_seconds: float = 120.0


def test_from_settings_reads_the_recovery_fields() -> None:
    policy = RecoveryPolicy.from_settings(_Settings())
    assert policy.action_for("ping_pong") == "warn"
    assert policy.breaker_cooldown_seconds == 5.0
    assert policy.breaker_max_cooldown_seconds == 40.0
    assert policy.run_ttl_seconds == 120.0
    with pytest.raises(ConfigError, match="unknown action 'halt'"):
        RecoveryPolicy.from_settings(_Settings(recovery_actions="ping_pong=halt"))
