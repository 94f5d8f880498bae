"""Settings of the instrumentation: where spans go, how long exit may wait, what is captured.

Every field is read from an ``AGENTMESH_`` environment variable (``AGENTMESH_ENDPOINT``,
``AGENTMESH_SHUTDOWN_TIMEOUT_S``…); the endpoint and the service name fall back on the standard
OpenTelemetry variables so an app already configured for OpenTelemetry needs nothing more.

A wrong value is reported once per process (:func:`load_or_report`, :func:`report_invalid`) as
``agentmesh.invalid_configuration``, naming the variable and what it wants; the application is
then left uninstrumented, never stopped. The endpoint (``http://host:4317``, ``https://host``,
``host:4317`` or a ``unix:`` socket) and the control URL (``http(s)://host[:port]``) are checked
for a scheme, a host and a port that is a number; a number setting never takes ``nan``.

Example:
    >>> InstrumentationSettings.load(endpoint="http://collector:4317").endpoint
    'http://collector:4317'
    >>> endpoint_problem("ftp://collector:4317")
    'expected an http:// or https:// URL, like http://host:4317 (not ftp://)'
    >>> endpoint_port_hint("http://collector:4318") is not None
    True
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import ClassVar, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from agentmesh.core import AgentMeshSettings, ConfigError
from agentmesh.core.connection_urls import http_url_problem
from agentmesh.core.log import LoggingSettings, get_logger

__all__ = [
    "DEFAULT_ENDPOINT",
    "InstrumentationSettings",
    "check_logging_settings",
    "endpoint_port_hint",
    "endpoint_problem",
    "load_or_report",
    "report_invalid",
]

_log = get_logger(__name__)

DEFAULT_ENDPOINT = "http://127.0.0.1:4317"
"""OTLP/gRPC endpoint used when neither AgentMesh nor OpenTelemetry variables name one."""

_OTEL_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_ENDPOINT_VAR: Final = "AGENTMESH_ENDPOINT"
_GRPC_SOCKET_PREFIXES: Final = ("unix:", "unix-abstract:")
"""gRPC targets that name a socket, not a host (the exporter passes them to gRPC as they are)."""
_OTLP_HTTP_PORT: Final = 4318
"""The standard OTLP/HTTP port (the AgentMesh collector's too): not where OTLP/gRPC goes."""

_NOT_INSTRUMENTING: Final = "not instrumenting"

_reported: set[str] = set()
_reported_lock = threading.Lock()


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


def endpoint_problem(endpoint: str) -> str | None:
    """Say what is wrong with an OTLP/gRPC endpoint, or ``None`` when the exporter can use it.

    Taken: ``http://host:port`` and ``https://host[:port]`` (a path is ignored, as the
    exporter does), ``host:port`` and a ``unix:`` socket. Refused: another scheme (the exporter
    would quietly connect to its host as plain gRPC), no host, a port that is not a number
    from 1 to 65535, ``host`` without a port (gRPC would pick 443), white space.

    Args:
        endpoint: The endpoint.

    Returns:
        The problem in words, or ``None``.

    Example:
        >>> endpoint_problem("collector:4317") is None, endpoint_problem("[::1]:4317") is None
        (True, True)
        >>> endpoint_problem("::::")
        'expected http://host:4317, https://host or host:4317: the port must be a number from 1 to 65535'
    """  # noqa: E501 - a doctest's expected output is one line
    if endpoint.startswith(_GRPC_SOCKET_PREFIXES):
        if endpoint.partition(":")[2].strip("/"):
            return None
        return "a unix: endpoint needs the socket's path, like unix:///run/collector.sock"
    if "://" in endpoint:
        return http_url_problem(endpoint, example="http://host:4317")
    problem = http_url_problem(f"http://{endpoint}", example="host:4317")
    if problem is None and urlsplit(f"http://{endpoint}").port is None:
        problem = "no port (gRPC would use 443)"
    if problem is None:
        return None
    return f"expected http://host:4317, https://host or host:4317: {problem}"


def _endpoint_variable(endpoint: str) -> str:
    """The variable the endpoint was read from: ``AGENTMESH_ENDPOINT`` or an OTEL fallback."""
    if not os.environ.get(_ENDPOINT_VAR, ""):
        for name in _OTEL_ENDPOINT_VARS:
            if os.environ.get(name, "").strip() == endpoint:
                return name
    return _ENDPOINT_VAR


def endpoint_port_hint(endpoint: str) -> str | None:
    """Name a likely mistake: the endpoint is the OTLP/HTTP port (4318), spans go over gRPC.

    gRPC then fails each export with ``Failed parsing HTTP/2 (Expected SETTINGS frame as the
    first frame …) (Trying to connect an http1.x server (HTTP status 400))``, which does not
    say what to change.

    Args:
        endpoint: The OTLP/gRPC endpoint.

    Returns:
        What to change, or ``None`` when the port is not 4318.

    Example:
        >>> print(endpoint_port_hint("collector:4317"))
        None
    """
    text = endpoint if "://" in endpoint else f"http://{endpoint}"
    try:
        port = urlsplit(text).port
    except ValueError:
        return None
    if port != _OTLP_HTTP_PORT:
        return None
    variable = _endpoint_variable(endpoint)
    return (
        f"{variable}={endpoint!r} names port {_OTLP_HTTP_PORT}, the OTLP/HTTP port; AgentMesh "
        "exports spans over OTLP/gRPC: use the collector's gRPC port (4317 by default), like "
        "AGENTMESH_ENDPOINT=http://host:4317"
    )


def report_invalid(message: str, *, action: str = _NOT_INSTRUMENTING) -> None:
    """Log a configuration error once per process, as ``agentmesh.invalid_configuration``.

    The distro, the configurator, ``init()`` and the background clients all read the
    settings: a wrong value is said once, by whichever reads it first.

    Args:
        message: The error, naming the variable and what it wants.
        action: What AgentMesh does instead (``not instrumenting``, ``handoff checkpoints
            off``…).
    """
    with _reported_lock:
        first = message not in _reported
        _reported.add(message)
    if first:
        _log.error("agentmesh.invalid_configuration", error=message, action=action)


def load_or_report(**overrides: object) -> InstrumentationSettings | None:
    """Load the settings; report a wrong value once (:func:`report_invalid`) and return ``None``.

    Args:
        **overrides: Values that take precedence over the environment.

    Returns:
        The settings, or ``None`` when they are wrong (the application is not instrumented).
    """
    try:
        return InstrumentationSettings.load(**overrides)
    except ConfigError as exc:
        report_invalid(str(exc))
        return None


def check_logging_settings() -> bool:
    """Check ``AGENTMESH_LOG_LEVEL`` and ``AGENTMESH_LOG_FORMAT`` as the collector does.

    Fail-open: a wrong value is reported once (:func:`report_invalid`, naming the variable and
    the values it takes) and the defaults apply; the application stays instrumented. In an
    application AgentMesh's log lines follow the application's logging set-up
    (:mod:`agentmesh.core.log`); the two variables apply where AgentMesh configures logging
    (``configure_logging()``, the collector and the command line).

    Returns:
        Whether both are valid (or unset).
    """
    try:
        LoggingSettings.load()
    except ConfigError as exc:
        report_invalid(
            str(exc),
            action="ignored: the default applies (AGENTMESH_LOG_LEVEL=info, "
            "AGENTMESH_LOG_FORMAT=json); still instrumenting",
        )
        return False
    return True


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
        description=(
            "Record prompt and completion text (off by default: it may be sensitive). When "
            "unset, `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` turns it on; set, "
            "it wins over that variable; `init(capture_content=...)` wins over both."
        ),
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

    @field_validator("endpoint")
    @classmethod
    def _endpoint_usable(cls, value: str) -> str:
        problem = endpoint_problem(value)
        if problem is None:
            return value
        variable = _endpoint_variable(value)
        source = (
            f" (read from {variable}: {_ENDPOINT_VAR} is not set)"
            if variable != _ENDPOINT_VAR
            else ""
        )
        raise ValueError(f"{problem}{source}")

    @field_validator("control_url")
    @classmethod
    def _control_url_usable(cls, value: str | None) -> str | None:
        if value is None or not value.strip():  # blank: derived from the endpoint
            return value
        problem = http_url_problem(value, example="http://host:4318")
        if problem is not None:
            raise ValueError(problem)
        return value
