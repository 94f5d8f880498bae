"""The collector's detectors, built from its settings: :func:`build_rules`, :func:`build_detectors`.

One place decides which detectors run and with which bounds, so the service, the benchmarks
and the tests all run the same set. ``detectors_disabled`` turns types off; a name in it that is
no type here is refused (:class:`~agentmesh.core.errors.ConfigError` naming the valid types),
when the settings are loaded and again here, so a typo never leaves a detector on. Rules and
detectors of your own, given to :class:`~agentmesh.collector.service.Collector` directly, are
not built here: leave them out rather than list their types in ``detectors_disabled``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from agentmesh.collector.detection_settings import unknown_detection_types
from agentmesh.collector.detectors.base import Detector, Rule
from agentmesh.collector.detectors.context_loss import ContextLossDetector
from agentmesh.collector.detectors.error_cascade import ErrorCascadeDetector
from agentmesh.collector.detectors.handoff_loop import HandoffLoopRule, PingPongRule
from agentmesh.collector.detectors.outage import PROVIDER_RECOVERED, ProviderOutageDetector
from agentmesh.collector.detectors.rate_limit import RateLimitStormDetector
from agentmesh.collector.detectors.runaway import RunawayDetector
from agentmesh.collector.detectors.spikes import SpikeDetector
from agentmesh.collector.detectors.state_store import (
    DetectorStateBackend,
    FileStateBackend,
    RedisStateBackend,
    default_state_path,
)
from agentmesh.collector.detectors.stuck import StuckDetector
from agentmesh.collector.detectors.tool_loop import ToolLoopDetector
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError

__all__ = [
    "DETECTION_TYPES",
    "build_detectors",
    "build_rules",
    "state_backend",
    "unknown_detection_type",
]

DETECTION_TYPES = (
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


def unknown_detection_type(kind: str, extra: Iterable[str] = ()) -> str | None:
    """Say so, in plain words, when ``kind`` is no type the collector reports.

    A query for such a type finds nothing; telling the reader beats an empty list that looks
    like "no detections" (``handoff-loop`` for ``handoff_loop``). Callers ask only when the
    query found nothing, so a custom rule's type that is stored is never refused.

    Args:
        kind: The type asked for.
        extra: Other types this collector reports (its custom rules).

    Returns:
        The message, or ``None`` when ``kind`` is a known type.
    """
    known = {*DETECTION_TYPES, PROVIDER_RECOVERED, *extra}
    if kind in known:
        return None
    return f"no detection type is called {kind!r}; the types are: {', '.join(sorted(known))}"


_SPIKE_METRICS = {"latency_spike": "latency", "token_spike": "tokens", "cost_spike": "cost"}


def _spikes(settings: CollectorSettings, off: set[str]) -> Detector:
    return SpikeDetector(
        [metric for kind, metric in _SPIKE_METRICS.items() if kind not in off],  # pyright: ignore[reportArgumentType]
        score_threshold=settings.detect_spike_score_threshold,
        min_ratio=settings.detect_spike_min_ratio,
        min_latency_excess_seconds=settings.detect_spike_min_latency_excess_seconds,
    )


def _handoff_loop(settings: CollectorSettings) -> Rule:
    return HandoffLoopRule(
        max_repeats=settings.loop_max_repeats,
        max_cycle_length=settings.loop_max_cycle_length,
        settle_seconds=settings.detect_settle_seconds,
    )


def _ping_pong(settings: CollectorSettings) -> Rule:
    return PingPongRule(
        max_repeats=settings.detect_ping_pong_max_repeats,
        settle_seconds=settings.detect_settle_seconds,
    )


_RULES: Final[tuple[tuple[str, Callable[[CollectorSettings], Rule]], ...]] = (
    ("handoff_loop", _handoff_loop),
    ("ping_pong", _ping_pong),
)
"""Each graph rule's detection type and how to build it from the settings."""

_DETECTORS: Final[
    tuple[tuple[tuple[str, ...], Callable[[CollectorSettings, set[str]], Detector]], ...]
] = (
    (("tool_loop",), lambda s, _: ToolLoopDetector(s.detect_tool_loop_max_repeats)),
    (
        ("error_cascade",),
        lambda s, _: ErrorCascadeDetector(
            s.detect_cascade_min_agents, settle_seconds=s.detect_settle_seconds
        ),
    ),
    (("context_loss",), lambda _s, _o: ContextLossDetector()),
    (
        ("runaway",),
        lambda s, _: RunawayDetector(
            min_runs=s.detect_runaway_min_runs,
            p95_factor=s.detect_runaway_p95_factor,
            max_run_cost_usd=s.detect_runaway_max_run_cost_usd,
            max_run_tokens=s.detect_runaway_max_run_tokens,
        ),
    ),
    (
        ("stuck",),
        lambda s, _: StuckDetector(
            default_bound_seconds=s.detect_stuck_default_bound_seconds,
            bound_factor=s.detect_stuck_bound_factor,
            min_bound_seconds=s.detect_stuck_min_bound_seconds,
        ),
    ),
    (tuple(_SPIKE_METRICS), lambda s, off: _spikes(s, off)),
    (
        ("rate_limit_storm",),
        lambda s, _: RateLimitStormDetector(
            window_seconds=s.detect_rate_limit_window_seconds,
            min_events=s.detect_rate_limit_min_events,
        ),
    ),
    (
        ("provider_outage",),
        lambda s, _: ProviderOutageDetector(
            window_seconds=s.detect_outage_window_seconds,
            error_rate=s.detect_outage_error_rate,
            latency_factor=s.detect_outage_latency_factor,
        ),
    ),
)
"""Each streaming detector's detection types and how to build it (one detector serves the three
spike types)."""


def _disabled(settings: CollectorSettings) -> set[str]:
    """The types ``detectors_disabled`` turns off, refused when one is no type here.

    Settings made with ``model_copy(update=…)`` or ``model_construct`` skip validation; this
    catches what :meth:`CollectorSettings.load` would have refused.
    """
    problem = unknown_detection_types(list(settings.detectors_disabled))
    if problem is not None:
        raise ConfigError(f"{CollectorSettings.env_var('detectors_disabled')}: {problem}")
    return set(settings.detectors_disabled)


def build_rules(settings: CollectorSettings) -> list[Rule]:
    """The graph rules: handoff loops (3+ agents) and ping-pong (2 agents).

    Args:
        settings: The collector's settings.

    Returns:
        The rules not disabled.

    Raises:
        ConfigError: ``detectors_disabled`` names a type the collector does not detect.
    """
    off = _disabled(settings)
    return [build(settings) for kind, build in _RULES if kind not in off]


def build_detectors(settings: CollectorSettings) -> list[Detector]:
    """The streaming detectors, with the settings' bounds.

    Args:
        settings: The collector's settings.

    Returns:
        The detectors not disabled, in a fixed order.

    Raises:
        ConfigError: ``detectors_disabled`` names a type the collector does not detect.
    """
    off = _disabled(settings)
    return [build(settings, off) for kinds, build in _DETECTORS if any(k not in off for k in kinds)]


def state_backend(settings: CollectorSettings) -> DetectorStateBackend | None:
    """Where learned detector state is saved (``detector_state``), or ``None`` when off.

    Args:
        settings: The collector's settings.

    Returns:
        Redis (shared by every collector) or a file next to the DuckDB file; in ``auto`` mode
        without Redis, a file only for the DuckDB store.
    """
    mode = settings.detector_state
    if mode == "off":
        return None
    if mode == "redis" or (mode == "auto" and settings.redis_url is not None):
        if settings.redis_url is None:
            return None
        return RedisStateBackend(
            settings.redis_url.get_secret_value(),
            prefix=settings.redis_prefix,
            timeout_seconds=settings.redis_timeout_seconds,
        )
    if mode == "auto" and settings.store != "duckdb":
        return None  # memory is for tests and demos; Postgres users share state through Redis
    path = settings.detector_state_path or default_state_path(settings.duckdb_path)
    return FileStateBackend(path)
