"""The collector's detectors, built from its settings: :func:`build_rules`, :func:`build_detectors`.

One place decides which detectors run and with which bounds, so the service, the benchmarks
and the tests all run the same set. ``detectors_disabled`` turns types off.
"""

from __future__ import annotations

from agentmesh.collector.detectors.base import Detector, Rule
from agentmesh.collector.detectors.context_loss import ContextLossDetector
from agentmesh.collector.detectors.error_cascade import ErrorCascadeDetector
from agentmesh.collector.detectors.handoff_loop import HandoffLoopRule, PingPongRule
from agentmesh.collector.detectors.outage import ProviderOutageDetector
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

__all__ = ["DETECTION_TYPES", "build_detectors", "build_rules", "state_backend"]

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

_SPIKE_METRICS = {"latency_spike": "latency", "token_spike": "tokens", "cost_spike": "cost"}


def build_rules(settings: CollectorSettings) -> list[Rule]:
    """The graph rules: handoff loops (3+ agents) and ping-pong (2 agents).

    Args:
        settings: The collector's settings.

    Returns:
        The rules not disabled.
    """
    off = set(settings.detectors_disabled)
    rules: list[Rule] = []
    if "handoff_loop" not in off:
        rules.append(
            HandoffLoopRule(
                max_repeats=settings.loop_max_repeats,
                max_cycle_length=settings.loop_max_cycle_length,
                settle_seconds=settings.detect_settle_seconds,
            )
        )
    if "ping_pong" not in off:
        rules.append(
            PingPongRule(
                max_repeats=settings.detect_ping_pong_max_repeats,
                settle_seconds=settings.detect_settle_seconds,
            )
        )
    return rules


def build_detectors(settings: CollectorSettings) -> list[Detector]:
    """The streaming detectors, with the settings' bounds.

    Args:
        settings: The collector's settings.

    Returns:
        The detectors not disabled, in a fixed order.
    """
    off = set(settings.detectors_disabled)
    detectors: list[Detector] = []
    if "tool_loop" not in off:
        detectors.append(ToolLoopDetector(settings.detect_tool_loop_max_repeats))
    if "error_cascade" not in off:
        detectors.append(
            ErrorCascadeDetector(
                settings.detect_cascade_min_agents, settle_seconds=settings.detect_settle_seconds
            )
        )
    if "context_loss" not in off:
        detectors.append(ContextLossDetector())
    if "runaway" not in off:
        detectors.append(
            RunawayDetector(
                min_runs=settings.detect_runaway_min_runs,
                p95_factor=settings.detect_runaway_p95_factor,
                max_run_cost_usd=settings.detect_runaway_max_run_cost_usd,
                max_run_tokens=settings.detect_runaway_max_run_tokens,
            )
        )
    if "stuck" not in off:
        detectors.append(
            StuckDetector(
                default_bound_seconds=settings.detect_stuck_default_bound_seconds,
                bound_factor=settings.detect_stuck_bound_factor,
                min_bound_seconds=settings.detect_stuck_min_bound_seconds,
            )
        )
    metrics = [metric for kind, metric in _SPIKE_METRICS.items() if kind not in off]
    if metrics:
        detectors.append(
            SpikeDetector(
                metrics,  # pyright: ignore[reportArgumentType]
                score_threshold=settings.detect_spike_score_threshold,
                min_ratio=settings.detect_spike_min_ratio,
            )
        )
    if "rate_limit_storm" not in off:
        detectors.append(
            RateLimitStormDetector(
                window_seconds=settings.detect_rate_limit_window_seconds,
                min_events=settings.detect_rate_limit_min_events,
            )
        )
    if "provider_outage" not in off:
        detectors.append(
            ProviderOutageDetector(
                window_seconds=settings.detect_outage_window_seconds,
                error_rate=settings.detect_outage_error_rate,
                latency_factor=settings.detect_outage_latency_factor,
            )
        )
    return detectors


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
