"""Settings of detection, its events and recovery (``AGENTMESH_COLLECTOR_*`` variables).

:class:`DetectionSettings` is a base of
:class:`~agentmesh.collector.settings.CollectorSettings`: the fields below are collector
settings like any other (each has its ``--flag`` in ``agentmesh collector``); they live in
their own file because they are many.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from agentmesh.collector.recovery.policy import DETECTION_TYPES, check_actions
from agentmesh.core.settings import AgentMeshSettings, HttpUrlList, TextList

__all__ = ["DetectionSettings", "unknown_detection_types"]


def unknown_detection_types(types: list[str]) -> str | None:
    """Say which of ``types`` the collector has no detector for, naming the valid types.

    Args:
        types: Detection types, as ``detectors_disabled`` lists them.

    Returns:
        The message, or ``None`` when every one is a type the collector detects.

    Example:
        >>> for part in unknown_detection_types(["stuck", "latency-spike"]).split("; "):
        ...     print(part)  # doctest: +ELLIPSIS
        unknown detection type 'latency-spike' (did you mean 'latency_spike'?)
        the types are: handoff_loop, ping_pong, ..., context_loss
        >>> unknown_detection_types(["stuck"]) is None
        True
    """
    unknown = [kind for kind in dict.fromkeys(types) if kind not in DETECTION_TYPES]
    if not unknown:
        return None
    named: list[str] = []
    for kind in unknown:
        close = difflib.get_close_matches(kind.replace("-", "_").lower(), DETECTION_TYPES, n=1)
        named.append(f"{kind!r} (did you mean {close[0]!r}?)" if close else repr(kind))
    plural = "s" if len(unknown) > 1 else ""
    return (
        f"unknown detection type{plural} {', '.join(named)}; "
        f"the types are: {', '.join(DETECTION_TYPES)}"
    )


class DetectionSettings(AgentMeshSettings):
    """Detectors' bounds, where detections go, and what recovery does about them."""

    # --- detectors ----------------------------------------------------------------------------
    detectors_disabled: TextList = Field(
        default=[],
        description=(
            "Detection types not to look for (comma-separated or a JSON list), for example "
            "`latency_spike,token_spike`; an unknown type is refused, naming the valid ones."
        ),
    )
    detect_settle_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description=(
            "Run time (by span end times) the loop, ping-pong and cascade rules leave for late "
            "spans before judging a live run's steps: spans are exported when they end, so a "
            "parent arrives after its children (already allowed for). 0 judges at once; raise "
            "it when one run's spans come from processes that export with different delays."
        ),
    )
    detect_ping_pong_max_repeats: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Times two agents may hand work back and forth; one more is ping-pong.",
    )
    detect_tool_loop_max_repeats: int = Field(
        default=3,
        ge=1,
        le=1000,
        description=(
            "Times a tool may be called with the same arguments and the same result in a run; "
            "one more is a tool loop."
        ),
    )
    detect_cascade_min_agents: int = Field(
        default=2,
        ge=2,
        le=100,
        description="Agents of one run that must fail, one after another, for an error cascade.",
    )
    detect_runaway_max_run_cost_usd: float | None = Field(
        default=None,
        ge=0.001,
        description=(
            "Cost in US dollars no run may exceed (runs can also carry their own budget in "
            "`agentmesh.run.budget_usd`); unset: only budgets and the workflow's norm apply."
        ),
    )
    detect_runaway_max_run_tokens: int | None = Field(
        default=None, ge=1, description="Tokens no run may exceed; unset: no global bound."
    )
    detect_runaway_min_runs: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Completed runs of a workflow needed before its norm is used for runaway.",
    )
    detect_runaway_p95_factor: float = Field(
        default=3.0,
        ge=1.01,
        le=1000,
        description="A run costing more than this many times its workflow's p95 is a runaway.",
    )
    detect_stuck_default_bound_seconds: float = Field(
        default=300.0,
        ge=0.001,
        le=604_800,
        description="Seconds a step may run before it is stuck, until its own bound is learned.",
    )
    detect_stuck_bound_factor: float = Field(
        default=5.0,
        ge=1.01,
        le=1000,
        description="Learned bound of a step: this many times the p99 of its past durations.",
    )
    detect_stuck_min_bound_seconds: float = Field(
        default=30.0, ge=0.001, le=604_800, description="Smallest learned bound of a step."
    )
    detect_spike_min_ratio: float = Field(
        default=5.0,
        ge=1.01,
        le=1000,
        description=(
            "A latency, token or cost spike must be at least this many times the key's normal "
            "value (and anomalous for the streaming model)."
        ),
    )
    detect_spike_min_latency_excess_seconds: float = Field(
        default=0.25,
        ge=0,
        le=3600,
        description=(
            "A latency spike must also be at least this many seconds above the key's normal "
            "latency: ten times a 4 ms call is no incident."
        ),
    )
    detect_spike_score_threshold: float = Field(
        default=0.3,
        ge=0.001,
        le=0.99,
        description="Anomaly score (0-1) of the streaming model above which a value may spike.",
    )
    detect_rate_limit_window_seconds: float = Field(
        default=30.0, ge=0.001, le=86_400, description="Window of a rate-limit storm."
    )
    detect_rate_limit_min_events: int = Field(
        default=5,
        ge=2,
        le=100_000,
        description="429 answers for one model, from at least two runs, within the window.",
    )
    detect_outage_window_seconds: float = Field(
        default=60.0, ge=0.001, le=86_400, description="Window of a provider outage."
    )
    detect_outage_error_rate: float = Field(
        default=0.34,
        ge=0.001,
        le=1,
        description=(
            "Share of failed calls (5xx, timeouts, connection errors) to one model that is an "
            "outage (0.34: more than a third of the recent calls, at least 6 from 2 runs)."
        ),
    )
    detect_outage_latency_factor: float = Field(
        default=5.0,
        ge=1.01,
        le=1000,
        description="Median latency jump over the model's baseline that is an outage.",
    )
    # --- detection events ---------------------------------------------------------------------
    detection_otlp_export: bool = Field(
        default=True,
        description=(
            "Send each detection as a span (in the run's trace) to the forwarding targets "
            "(LangSmith, Braintrust, OTLP endpoints), so they show detections next to the run."
        ),
    )
    detection_otlp_batch: int = Field(
        default=100, ge=1, le=10_000, description="Detections per OTLP request at most."
    )
    detection_otlp_flush_seconds: float = Field(
        default=0.2,
        ge=0.001,
        le=60,
        description="Longest wait before a partial batch of detection spans is sent.",
    )
    detection_webhook_urls: HttpUrlList = Field(
        default=[],
        description=(
            "URLs each detection is POSTed to as JSON (comma-separated or a JSON list); "
            "retried with backoff on connection errors, 408, 429 and 5xx."
        ),
    )
    detection_webhook_headers: dict[str, dict[str, SecretStr]] = Field(
        default={},
        description=(
            'Extra headers per webhook URL, as JSON (`{"https://hooks.example/x": '
            '{"Authorization": "Bearer …"}}`); values are secrets.'
        ),
    )
    detection_webhook_queue_max: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Deliveries held per webhook URL; when full the oldest is dropped (counted).",
    )
    detection_webhook_timeout_seconds: float = Field(
        default=5.0, ge=0.001, le=600, description="Longest time one webhook attempt may take."
    )
    detection_webhook_max_attempts: int = Field(
        default=5, ge=1, le=100, description="Attempts per webhook delivery before giving up."
    )
    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus metrics at `GET /metrics` on the OTLP/HTTP port.",
    )
    # --- detector state -----------------------------------------------------------------------
    detector_state: Literal["auto", "file", "redis", "off"] = Field(
        default="auto",
        description=(
            "Where learned detector state (baselines, streaming models) is saved so it survives "
            "a restart: `auto` is Redis when `redis_url` is set, else a file next to the DuckDB "
            "file; `redis` needs `redis_url`; `off` starts cold every time."
        ),
    )
    detector_state_path: Path | None = Field(
        default=None,
        description="The state file (`file` mode); next to `duckdb_path` when unset.",
    )
    detector_state_save_seconds: float = Field(
        default=30.0, ge=0.001, le=86_400, description="Seconds between saves of detector state."
    )
    # --- recovery -----------------------------------------------------------------------------
    recovery_enabled: bool = Field(
        default=True,
        description=(
            "Act on detections: stop or warn runs and open circuit breakers in the control "
            "document apps poll at `GET /v1/control`."
        ),
    )
    recovery_actions: str = Field(
        default="",
        description=(
            "Per detection type, what to do (`stop`, `warn`, `break`, `none`) over the defaults, "
            'as a JSON object (`{"stuck": "stop"}`) or `stuck=stop,latency_spike=none`.'
        ),
    )
    recovery_breaker_cooldown_seconds: float = Field(
        default=30.0,
        ge=0.001,
        le=86_400,
        description="How long a tripped breaker keeps apps off a model the first time.",
    )
    recovery_breaker_max_cooldown_seconds: float = Field(
        default=600.0,
        ge=0.001,
        le=604_800,
        description="Cap of the cool-down, which doubles each time a half-open breaker fails.",
    )
    recovery_run_ttl_seconds: float = Field(
        default=3600.0,
        ge=0.001,
        le=604_800,
        description="How long a stopped or warned run stays in the control document.",
    )

    @field_validator("detectors_disabled")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        """Refuse a type no detector reports (a typo would leave that detector on)."""
        problem = unknown_detection_types(value)
        if problem is not None:
            raise PydanticCustomError("detection_type", "{problem}", {"problem": problem})
        return value

    @field_validator("recovery_actions")
    @classmethod
    def _valid_actions(cls, value: str) -> str:
        """Refuse a malformed actions table now, so the message names the flag or variable."""
        try:
            check_actions(value)
        except ValueError as exc:
            raise PydanticCustomError(
                "recovery_actions", "{problem}", {"problem": str(exc)}
            ) from exc
        return value
