"""Settings of the instrumentation: where spans go, how long exit may wait, what is captured.

Every field is read from an ``AGENTMESH_`` environment variable (``AGENTMESH_ENDPOINT``,
``AGENTMESH_SHUTDOWN_TIMEOUT_S``…); the endpoint and the service name fall back on the standard
OpenTelemetry variables so an app already configured for OpenTelemetry needs nothing more.

Example:
    >>> InstrumentationSettings.load(endpoint="http://collector:4317").endpoint
    'http://collector:4317'
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from agentmesh.core import AgentMeshSettings

__all__ = ["DEFAULT_ENDPOINT", "InstrumentationSettings"]

DEFAULT_ENDPOINT = "http://127.0.0.1:4317"
"""OTLP/gRPC endpoint used when neither AgentMesh nor OpenTelemetry variables name one."""

_OTEL_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def _default_endpoint() -> str:
    for name in _OTEL_ENDPOINT_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return DEFAULT_ENDPOINT


def _default_service_name() -> str:
    value = os.environ.get("OTEL_SERVICE_NAME", "").strip()
    if value:
        return value
    first = sys.argv[0] if sys.argv else ""
    if first == "-m":  # `python -m pkg.app` while the module is being found: name it "app"
        args = sys.orig_argv
        module = args[args.index("-m") + 1] if "-m" in args[:-1] else ""
        return module.rpartition(".")[2] or "unknown_service"
    if first in ("", "-c", "-"):  # code given on the command line, or read from stdin
        return "unknown_service"
    return Path(first).stem or "unknown_service"


class InstrumentationSettings(AgentMeshSettings):
    """How the instrumentation exports spans and what it records.

    Attributes:
        endpoint: OTLP/gRPC endpoint of the collector.
        service_name: ``service.name`` of the exported resource.
        export_timeout_s: Longest time one export (retries included) may take.
        shutdown_timeout_s: Longest time the process may spend flushing spans at exit.
        capture_content: Whether prompt and completion text may be recorded.
        disabled: Turn the instrumentation off entirely.
        step_markers: Export a start marker span when a workflow, agent, node or tool step
            starts (the collector then sees steps that never end).
        routing_mode: ``off`` (default), ``shadow`` (decide and record) or ``enforce``.
        routing_fallbacks: Fallback chains by requested model.
        routing_pins: Pinned routing rules (by task class, by requested model).
        routing_max_fallbacks: Most fallbacks tried for one call.
        routing_decision_log: JSON-lines file of routing decisions, if any.
        routing_cooldown_s: Local cooldown of a model after a retryable error (0: off).
        routing_cooldown_max_s: Longest local cooldown (``retry-after`` and doubling capped).
        routing_policy: ``utility`` (learned from the route table) or ``pass_through``.
        routing_candidates: Models each task class may be routed to (``"*"``: the others).
        routing_exploration: Share of utility decisions that explore a little-tried model.
        routing_cost_weight: λ of the utility when the route table sets none.
        routing_latency_weight: μ of the utility when the route table sets none.
        control_url: Collector base URL of the control document (derived by default).
        control_enabled: Follow the control document (``None``: when a collector is named).
        route_table_sync: Follow the collector's route table (``None``: when a collector is
            named).
        route_table_cache: File keeping the last route table received (default under the
            user's cache directory).
        checkpoint_url: Store of handoff checkpoints, if any (needs ``agentmesh-checkpoint``).
        checkpoint_queue_size: Handoff checkpoints waiting to be written, at most.
    """

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_", extra="ignore", validate_default=True
    )

    endpoint: str = Field(
        default_factory=_default_endpoint,
        min_length=1,
        description=(
            "OTLP/gRPC endpoint of the collector. Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "
            f"else OTEL_EXPORTER_OTLP_ENDPOINT, else {DEFAULT_ENDPOINT}."
        ),
    )
    service_name: str = Field(
        default_factory=_default_service_name,
        min_length=1,
        description=(
            "service.name of the spans. Default: OTEL_SERVICE_NAME, else the script's name (the "
            "module's for `python -m`)."
        ),
    )
    export_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds one export to the collector may take, retries included.",
    )
    shutdown_timeout_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Seconds the process may spend flushing spans at exit, in total.",
    )
    capture_content: bool = Field(
        default=False,
        description="Record prompt and completion text (off by default: it may be sensitive).",
    )
    propagate_to_public_providers: bool = Field(
        default=False,
        description=(
            "Send W3C trace context and baggage headers (run id, routing decision) to public "
            "model APIs too (api.openai.com, api.anthropic.com, openrouter.ai…). Off: they go "
            "only to other hosts (gateways, proxies, your own services)."
        ),
    )
    disabled: bool = Field(
        default=False,
        description="Turn AgentMesh instrumentation off: no provider, no patches.",
    )
    step_markers: bool = Field(
        default=True,
        description=(
            "Export a zero-length agentmesh.step.start span when a workflow, agent, node or "
            "tool step starts, so the collector sees steps that never end (stuck detection)."
        ),
    )
    routing_mode: Literal["off", "shadow", "enforce"] = Field(
        default="off",
        description=(
            "Routing of provider calls: off (no decision), shadow (decide and record on the "
            "span and in the decision log, change nothing) or enforce (apply the decision and "
            "fall back to the next candidate on a retryable provider error)."
        ),
    )
    routing_fallbacks: dict[str, list[str]] = Field(
        default={},
        description=(
            'Fallback chains as JSON: {"gpt-4o": ["gpt-4o-mini", "claude-sonnet-4-5"]}. '
            "Models of another provider than the call's are skipped (except via OpenRouter)."
        ),
    )
    routing_pins: dict[str, dict[str, str]] = Field(
        default={},
        description=(
            'Pinned routing rules as JSON: {"task_class": {"triage": "gpt-4o-mini"}, '
            '"model": {"gpt-4o": "gpt-4.1"}}; a task-class pin wins over a model pin.'
        ),
    )
    routing_max_fallbacks: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Most fallbacks tried for one call in enforce mode (0: never fall back).",
    )
    routing_decision_log: Path | None = Field(
        default=None,
        description=(
            "File every routing decision is appended to as a JSON line, by a background "
            "thread; the last 1024 decisions are also kept in memory."
        ),
    )
    routing_cooldown_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description=(
            "Seconds a model is avoided by this process after a retryable error (429, 408, "
            "5xx, connection error, timeout) when the provider sends no retry-after; the "
            "provider's retry-after wins. Then one call probes it; a failed probe doubles the "
            "cooldown. 0 turns local cooldowns off."
        ),
    )
    routing_cooldown_max_s: float = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="Longest local cooldown: retry-after and doubled cooldowns are capped to it.",
    )
    routing_policy: Literal["utility", "pass_through"] = Field(
        default="utility",
        description=(
            "utility: the candidate with the best predicted quality - cost_weight x USD - "
            "latency_weight x seconds, learned by the collector and received in the route table "
            "(pass-through until the table carries a predictor); pass_through: the requested "
            "model and its fallback chain. Pins apply first either way."
        ),
    )
    routing_candidates: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            'Models each task class may be routed to, as JSON: {"triage": ["gpt-4o-mini", '
            '"gpt-4o"], "*": ["gpt-4o", "gpt-4.1-mini"]}. Default: the requested model and its '
            "fallback chain."
        ),
    )
    routing_exploration: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description=(
            "Share of utility decisions that try the feasible candidate with the fewest outcomes "
            "(never one over budget or with an open circuit); 0 turns exploration off."
        ),
    )
    routing_cost_weight: float = Field(
        default=0.0,
        ge=0.0,
        description="Utility points per USD (λ) when the route table sets no trade-off.",
    )
    routing_latency_weight: float = Field(
        default=0.0,
        ge=0.0,
        description="Utility points per second (μ) when the route table sets no trade-off.",
    )
    control_url: str | None = Field(
        default=None,
        description=(
            "Base URL of the collector's OTLP/HTTP port, where the control document (stopped "
            "runs, open circuit breakers) is long-polled at /v1/control. Default: derived from "
            "the endpoint (port 4317 becomes 4318)."
        ),
    )
    control_enabled: bool | None = Field(
        default=None,
        description=(
            "Follow the collector's control document (stop runs, avoid models whose circuit is "
            "open). Default: on when AGENTMESH_CONTROL_URL, AGENTMESH_ENDPOINT or an "
            "OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT names the collector."
        ),
    )
    route_table_sync: bool | None = Field(
        default=None,
        description=(
            "Follow the collector's route table (routing modes, trade-offs, model statistics, "
            "the learned predictor), long-polled at /v1/route-table on the control URL. "
            "Default: on when AGENTMESH_CONTROL_URL, AGENTMESH_ENDPOINT or an "
            "OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT names the collector."
        ),
    )
    route_table_cache: Path | None = Field(
        default=None,
        description=(
            "File keeping the last route table received, used at start while the collector "
            "cannot be reached. Default: one file per collector URL, "
            "$XDG_CACHE_HOME/agentmesh/route_table-<hash of the URL>.json (else under ~/.cache)."
        ),
    )
    checkpoint_url: str | None = Field(
        default=None,
        description=(
            "Store the context of every handoff as a checkpoint there, written in the "
            "background (the handoff span carries its id): duckdb:///path/file.duckdb, "
            "redis://host:6379/0, postgresql://user@host/db or memory://. Needs the "
            "agentmesh-instrumentation[checkpoints] extra. Default: none (empty: none)."
        ),
    )
    checkpoint_queue_size: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description=(
            "Handoff checkpoints that may wait to be written; when the queue is full, new ones "
            "are dropped and counted (the application never waits)."
        ),
    )

    @field_validator("checkpoint_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None
