"""Settings of the collector service, read from ``AGENTMESH_COLLECTOR_*`` variables.

Example:
    >>> settings = CollectorSettings.load(grpc_port=0)
    >>> settings.grpc_port, settings.loop_max_repeats
    (0, 3)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from agentmesh.collector.detection_settings import DetectionSettings
from agentmesh.core.connection_urls import postgres_dsn_problem, redis_url_problem
from agentmesh.core.settings import HttpUrlList, SecretList

__all__ = ["CollectorSettings"]

_MIB = 1024 * 1024


class CollectorSettings(DetectionSettings):
    """How the collector listens, stores, buffers and detects.

    Build it with :meth:`~agentmesh.core.settings.AgentMeshSettings.load` so a wrong value
    raises a :class:`~agentmesh.core.errors.ConfigError` naming the variable.
    """

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_COLLECTOR_", extra="ignore", validate_default=True
    )

    grpc_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=255,
        description="Interface the OTLP/gRPC receiver binds to (`0.0.0.0` for every one).",
    )
    grpc_port: int = Field(
        default=4317,
        ge=0,
        le=65535,
        description="TCP port of the OTLP/gRPC receiver; 0 picks any free port.",
    )
    http_enabled: bool = Field(
        default=True,
        description="Whether to serve OTLP/HTTP (`POST /v1/traces`, protobuf or JSON, gzip).",
    )
    web_enabled: bool = Field(
        default=True,
        description=(
            "Whether to serve the web dashboard at `/ui/` on the OTLP/HTTP port (runs, a run's "
            "graph, timeline and detections, costs; it reads the query API, under the same "
            "credentials)."
        ),
    )
    http_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=255,
        description="Interface the OTLP/HTTP receiver binds to (`0.0.0.0` for every one).",
    )
    http_port: int = Field(
        default=4318,
        ge=0,
        le=65535,
        description="TCP port of the OTLP/HTTP receiver; 0 picks any free port.",
    )
    duckdb_path: Path = Field(
        default=Path("agentmesh.duckdb"),
        description="DuckDB file holding spans, graphs and detections (created if missing).",
    )
    duckdb_memory_limit: str = Field(
        default="256MB",
        pattern=r"(?i)^\s*\d+(\.\d+)?\s*([KMGT]i?B|B|%)\s*$",
        description="Memory DuckDB may use for its cache, sorts and joins (`512MB`, `2GiB`).",
    )
    duckdb_checkpoint_threshold: str = Field(
        default="256MB",
        pattern=r"(?i)^\s*\d+(\.\d+)?\s*([KMGT]i?B|B)\s*$",
        description=(
            "Write-ahead log DuckDB writes between two checkpoints (`64MB`, `1GiB`). Spans "
            "appended since the last checkpoint also stay in DuckDB's memory, so memory rises by "
            "about this much and falls at each checkpoint; a lower value flattens that saw tooth "
            "and costs CPU (each checkpoint rewrites the last, partly filled row group)."
        ),
    )
    duckdb_threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description=(
            "Threads DuckDB may use (0: one per CPU). One by default: the collector's appends "
            "cost less CPU single-threaded (measured 6.0 vs 6.9 µs per span) and leave the "
            "other cores to decoding; raise it for heavy queries on the same file."
        ),
    )
    duckdb_dedupe_spans: int = Field(
        default=500_000,
        ge=0,
        le=100_000_000,
        description=(
            "Recently stored span keys a re-delivered span is checked against before it is "
            "appended to DuckDB (older duplicates are stored but never read twice)."
        ),
    )
    store: Literal["duckdb", "postgres", "memory"] = Field(
        default="duckdb",
        description=(
            "Where spans, graphs and detections go: the DuckDB file (`duckdb_path`), PostgreSQL "
            "(`postgres_dsn`, for several collectors) or memory (tests and demos: lost on exit)."
        ),
    )
    retention_days: float = Field(
        default=0.0,
        ge=0.0,
        le=36_500.0,
        description=(
            "Days a run is kept after it ended: older runs are deleted whole (spans, graph, "
            "detections) while the collector runs; 0 keeps everything. At least 1/24 (an hour)."
        ),
    )
    retention_interval_seconds: float = Field(
        default=3600.0,
        ge=10.0,
        le=7 * 86_400.0,
        description="Seconds between two retention passes (the first runs at start).",
    )
    postgres_dsn: SecretStr = Field(
        default=SecretStr("postgresql://agentmesh@127.0.0.1:5432/agentmesh"),
        description=(
            "PostgreSQL URL when `store` is `postgres` (default "
            "`postgresql://agentmesh@127.0.0.1:5432/agentmesh`); give the password in "
            "`PGPASSWORD` rather than in the URL."
        ),
    )
    postgres_schema: str = Field(
        default="public",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Schema holding the collector's tables (created and migrated at start).",
    )
    postgres_pool_min_size: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="PostgreSQL connections the pool keeps open.",
    )
    postgres_pool_max_size: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Most PostgreSQL connections the pool opens.",
    )
    postgres_connect_timeout_seconds: float = Field(
        default=10.0,
        ge=0.1,
        le=600.0,
        description="Seconds to wait for PostgreSQL to accept a connection.",
    )
    postgres_command_timeout_seconds: float = Field(
        default=60.0,
        ge=0.1,
        le=3600.0,
        description=(
            "Seconds one query or write may wait for PostgreSQL's answer; past it the store "
            "counts as unavailable (writes are held and retried), as when the connection drops. "
            "A server that stops answering without closing its connections (a network "
            "partition) would otherwise hold writes until TCP gives up."
        ),
    )
    store_probe_seconds: float = Field(
        default=5.0,
        ge=0.0,
        le=3600.0,
        description=(
            "Seconds between two checks that a store kept elsewhere (PostgreSQL) still answers "
            "while no write went through: a cheap read, given as long to answer. Readiness "
            "(`/readyz`, gRPC health, `agentmesh_store_unavailable`) follows it, so a database "
            "lost while no span arrives is reported (then checked every 2 s until it "
            "answers). 0 turns the check off; DuckDB and memory stores are never checked."
        ),
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "Redis URL (`redis://host:6379/0`) for the hot shared state: live run index, latest "
            "state per run, detection pub/sub; off when unset."
        ),
    )
    redis_prefix: str = Field(
        default="agentmesh:",
        min_length=1,
        max_length=100,
        description="Prefix of every Redis key and channel the collector uses.",
    )
    redis_finished_run_ttl_seconds: int = Field(
        default=600,
        ge=1,
        le=30 * 86_400,
        description="Seconds a finished run stays in the Redis live index and state.",
    )
    redis_idle_run_ttl_seconds: int = Field(
        default=3600,
        ge=1,
        le=30 * 86_400,
        description="Seconds an unfinished run with no new span stays in Redis.",
    )
    redis_timeout_seconds: float = Field(
        default=1.0,
        ge=0.01,
        le=60.0,
        description="Seconds a Redis connection or command may take before it counts as failed.",
    )
    max_receive_message_bytes: int = Field(
        default=16 * _MIB,
        ge=64 * 1024,
        le=1024 * _MIB,
        description=(
            "Largest OTLP request accepted, in bytes: gRPC answers RESOURCE_EXHAUSTED, HTTP 413 "
            "(checked on the compressed and on the decompressed body)."
        ),
    )
    retry_after_seconds: int = Field(
        default=1,
        ge=0,
        le=3600,
        description=(
            "Delay exporters are asked to wait when the ingest queue is full: HTTP 503 "
            "`Retry-After`, gRPC UNAVAILABLE with a `google.rpc.RetryInfo`."
        ),
    )
    decode_workers: int = Field(
        default=-1,
        ge=-1,
        le=64,
        description=(
            "Processes that decode OTLP/gRPC requests, so the collector's own process only "
            "builds graphs: -1 picks one per CPU (at most 4; none on a single CPU, where "
            "they would only add copying), 0 decodes in the collector process."
        ),
    )
    max_attributes_per_span: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Attributes kept per span, event or resource; the rest are dropped (counted).",
    )
    max_events_per_span: int = Field(
        default=128,
        ge=0,
        le=100_000,
        description="Events kept per span (the first ones); the rest are dropped (counted).",
    )
    max_attribute_value_bytes: int = Field(
        default=64 * 1024,
        ge=64,
        le=64 * _MIB,
        description=(
            "Longest attribute value in UTF-8 bytes; longer strings are truncated, longer "
            "arrays lose their last items (counted)."
        ),
    )
    max_attribute_depth: int = Field(
        default=8,
        ge=1,
        le=64,
        description=(
            "Deepest nesting of arrays and maps in an attribute value; deeper parts become null "
            "(counted)."
        ),
    )
    auth_bearer_tokens: SecretList = Field(
        default=[],
        description=(
            "Accepted `Authorization: Bearer` tokens, comma-separated or a JSON list; with this "
            "or `auth_api_keys` set, every OTLP request must carry one (off when both are empty)."
        ),
    )
    auth_api_keys: SecretList = Field(
        default=[],
        description="Accepted `x-api-key` header values, comma-separated or a JSON list.",
    )

    tls_cert_file: Path | None = Field(
        default=None,
        description=(
            "PEM certificate (chain) the OTLP/gRPC and OTLP/HTTP receivers serve TLS with, "
            "with `tls_key_file`; endpoints become `https://`. Plaintext when unset."
        ),
    )
    tls_key_file: Path | None = Field(
        default=None,
        description="PEM private key of `tls_cert_file`.",
    )
    tls_client_ca_file: Path | None = Field(
        default=None,
        description=(
            "PEM CA certificates: when set, every client must present a certificate one of "
            "them signed (mutual TLS). Needs `tls_cert_file`."
        ),
    )
    tls_reload_seconds: float = Field(
        default=60.0,
        ge=0.0,
        le=86_400.0,
        description=(
            "Least seconds between two looks at the TLS files for renewed certificates (taken "
            "on new connections without a restart); 0 never looks again."
        ),
    )

    queue_max_batches: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description=(
            "Span batches waiting to be processed before the receiver answers UNAVAILABLE "
            "(exporters then retry later)."
        ),
    )
    queue_max_spans: int = Field(
        default=100_000,
        ge=1,
        le=100_000_000,
        description=(
            "Spans waiting to be processed before the receiver answers UNAVAILABLE: bounds "
            "the queue's memory whatever the batch sizes."
        ),
    )
    pipeline_max_cycle_spans: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Most spans one pipeline cycle takes from the queue and writes in one call.",
    )
    graph_write_seconds: float = Field(
        default=1.0,
        ge=0,
        le=3_600,
        description=(
            "While batches wait, how long the stored graph of a run in progress may lag behind "
            "its live graph (complete runs are stored at once, everything when the queue "
            "empties; 0 stores every changed graph every cycle)."
        ),
    )
    max_live_traces: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Traces whose graph is kept in memory; the least recently updated is evicted.",
    )
    complete_trace_linger_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description=(
            "Seconds a complete trace (its root span arrived) stays in memory for late spans; "
            "then its graph is final and later spans are stored but not graphed."
        ),
    )
    trace_idle_timeout_seconds: float = Field(
        default=600.0,
        ge=0,
        le=604_800,
        description="Seconds an incomplete trace may go without new spans before it leaves memory.",
    )
    loop_max_repeats: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Times an agent cycle may repeat in a row; one more repetition is a loop.",
    )
    loop_max_cycle_length: int = Field(
        default=4,
        ge=2,
        le=64,
        description="Longest agent cycle (distinct agents) the loop rule looks for.",
    )
    grpc_grace_seconds: float = Field(
        default=5.0,
        ge=0.0,
        le=300.0,
        description="Seconds in-flight OTLP requests get to finish when the receiver stops.",
    )
    drain_timeout_seconds: float = Field(
        default=30.0,
        ge=0.0,
        le=3600.0,
        description="Seconds the pipeline gets to process queued batches on shutdown.",
    )
    forward_langsmith_api_key: SecretStr | None = Field(
        default=None,
        description=(
            "LangSmith API key (`x-api-key`); when set, accepted OTLP requests are also "
            "forwarded to `{forward_langsmith_endpoint}/otel/v1/traces`."
        ),
    )
    forward_langsmith_endpoint: str = Field(
        default="https://api.smith.langchain.com",
        pattern=r"^https?://\S+$",
        description="Base URL of LangSmith (`https://eu.api.smith.langchain.com` in the EU).",
    )
    forward_langsmith_project: str | None = Field(
        default=None,
        min_length=1,
        description="LangSmith project the traces go to (`Langsmith-Project`); default project "
        "when unset.",
    )
    forward_braintrust_api_key: SecretStr | None = Field(
        default=None,
        description=(
            "Braintrust API key (`Authorization: Bearer`); when set, accepted OTLP requests are "
            "also forwarded to `{forward_braintrust_endpoint}/otel/v1/traces`."
        ),
    )
    forward_braintrust_endpoint: str = Field(
        default="https://api.braintrust.dev",
        pattern=r"^https?://\S+$",
        description="Base URL of the Braintrust API.",
    )
    forward_braintrust_parent: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Where Braintrust files the traces (`x-bt-parent`), for example "
            "`project_name:my-agents`."
        ),
    )
    forward_otlp_endpoints: HttpUrlList = Field(
        default=[],
        description=(
            "URLs of other OTLP/HTTP trace endpoints (`https://host:4318/v1/traces`; one "
            "without a path gets `/v1/traces`), comma-separated or a JSON list; accepted OTLP "
            "requests are forwarded to each."
        ),
    )
    forward_otlp_headers: dict[str, SecretStr] = Field(
        default={},
        description=(
            'Headers sent to every `forward_otlp_endpoints` URL, as a JSON object (`{"x-api-key":'
            ' "…"}`); values are treated as secrets.'
        ),
    )
    forward_queue_max_requests: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description=(
            "OTLP requests each forwarder holds while its endpoint is slow or down; when full "
            "the oldest is dropped (counted) and ingestion is never blocked."
        ),
    )
    forward_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Requests each forwarder sends at the same time.",
    )
    forward_timeout_seconds: float = Field(
        default=10.0,
        ge=0.01,
        le=600.0,
        description="Seconds one forwarded request may take before it counts as failed (retried).",
    )
    forward_max_retry_seconds: float = Field(
        default=30.0,
        ge=0.0,
        le=3600.0,
        description=(
            "Seconds a forwarded request may spend in retries (connection errors, 429, 502, 503, "
            "504; `Retry-After` honoured) before it is given up (counted as failed)."
        ),
    )
    forward_flush_timeout_seconds: float = Field(
        default=5.0,
        ge=0.0,
        le=600.0,
        description="Seconds forwarders get on shutdown to send what they hold; the rest is "
        "dropped (counted).",
    )

    # --- router trainer ---------------------------------------------------------------------
    router_training: bool = Field(
        default=True,
        description=(
            "Learn from routed model calls (outcomes, feedback, detections) and publish the route "
            "table apps follow at `GET /v1/route-table` (and the Redis key "
            "`agentmesh:route_table` when a Redis URL is set). Off, nothing is learned, but the "
            "route table still carries `router_modes` and `router_tradeoffs` (published at start)."
        ),
    )
    router_publish_seconds: float = Field(
        default=2.0,
        ge=0.05,
        le=3600.0,
        description="Least seconds between two route table publications (when outcomes arrived).",
    )
    router_feedback_grace_seconds: float = Field(
        default=600.0,
        ge=1.0,
        le=86_400.0,
        description=(
            "Seconds the router trainer holds a feedback score whose routing decision it has not "
            "seen (the score came first, or the decision never comes): a decision arriving within "
            "them still gets the score; after them the score is an orphan, dropped "
            "(`agentmesh_feedback_orphans_expired_total`, one log line per sweep). At most 16,384 "
            "scores are held; beyond, the oldest is dropped "
            "(`agentmesh_feedback_orphans_evicted_total`)."
        ),
    )
    router_modes: dict[str, Literal["off", "shadow", "enforce"]] = Field(
        default_factory=dict,
        description=(
            'Routing mode per task class pushed to apps in the route table, as JSON: {"*": '
            '"shadow", "triage": "enforce"}; "*" is every other task class. Empty: each app keeps '
            "its `AGENTMESH_ROUTING_MODE`. Published with `router_training` off too."
        ),
    )
    router_tradeoffs: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description=(
            'Quality / cost / latency trade-off per task class, as JSON: {"*": {"cost_weight": '
            '200, "latency_weight": 0.01}}: utility = quality - cost_weight x USD - '
            "latency_weight x seconds. Published with `router_training` off too."
        ),
    )
    router_predictor_path: Path | None = Field(
        default=None,
        description=(
            "JSON predictor trained offline (`agentmesh router train`) to start from when the "
            "route table has none yet; later outcomes keep training it."
        ),
    )

    @field_validator("retention_days")
    @classmethod
    def _retention_of_an_hour_or_more(cls, days: float) -> float:
        if 0.0 < days < 1.0 / 24.0:
            raise ValueError("keep runs at least an hour (1/24 day), or 0 to keep everything")
        return days

    @field_validator("store_probe_seconds")
    @classmethod
    def _store_probe_off_or_sparing(cls, seconds: float) -> float:
        if 0.0 < seconds < 0.1:
            raise ValueError("check the store at most every 0.1 s, or 0 to turn the check off")
        return seconds

    @field_validator("redis_url")
    @classmethod
    def _redis_url_usable(cls, url: SecretStr | None) -> SecretStr | None:
        # redis-py refuses a wrong URL only when the collector connects, with a traceback, and
        # reads a database that is not a number as database 0
        if url is None:
            return None
        if not url.get_secret_value().strip():
            raise ValueError(
                "empty: give a URL like redis://host:6379/0, or unset it to run without Redis"
            )
        problem = redis_url_problem(url.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        from redis.asyncio.connection import parse_url  # what the collector's clients run

        parse_url(url.get_secret_value())  # a wrong query option: its ValueError says which
        return url

    @field_validator("postgres_dsn")
    @classmethod
    def _postgres_dsn_usable(cls, dsn: SecretStr, info: ValidationInfo) -> SecretStr:
        # asyncpg refuses a wrong DSN only when it connects, in words of a lost connection
        if info.data.get("store") == "postgres":
            problem = postgres_dsn_problem(dsn.get_secret_value())
            if problem is not None:
                raise ValueError(problem)
        return dsn

    @model_validator(mode="after")
    def _postgres_pool_sizes_fit(self) -> Self:
        if self.store == "postgres" and self.postgres_pool_min_size > self.postgres_pool_max_size:
            least = self.env_var("postgres_pool_min_size")
            most = self.env_var("postgres_pool_max_size")
            raise ValueError(
                f"{least} ({self.postgres_pool_min_size}) must not be above {most} "
                f"({self.postgres_pool_max_size}): the pool keeps at least the one open and "
                "opens at most the other"
            )
        return self

    @model_validator(mode="after")
    def _redis_state_needs_redis(self) -> Self:
        if self.detector_state == "redis" and self.redis_url is None:
            raise ValueError(
                f"{self.env_var('detector_state')}=redis needs {self.env_var('redis_url')}: "
                "detector state would otherwise not be saved at all (use `auto`, `file` or "
                "`off` without Redis)"
            )
        return self

    @model_validator(mode="after")
    def _tls_files_go_together(self) -> Self:
        cert, key, ca = (
            self.env_var(n) for n in ("tls_cert_file", "tls_key_file", "tls_client_ca_file")
        )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(f"{cert} and {key} go together: set both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError(f"{ca} needs {cert} and {key}")
        return self

    @model_validator(mode="after")
    def _receivers_on_different_ports(self) -> Self:
        wildcards = ("0.0.0.0", "::", "*")  # noqa: S104 - names compared, nothing bound
        if (
            self.http_enabled
            and self.grpc_port == self.http_port != 0
            and (
                self.grpc_host == self.http_host
                or self.grpc_host in wildcards
                or self.http_host in wildcards
            )
        ):
            grpc, http = self.env_var("grpc_port"), self.env_var("http_port")
            raise ValueError(
                f"{grpc} and {http} are both {self.grpc_port}: the OTLP/gRPC and OTLP/HTTP "
                "receivers need a port each (4317 and 4318 by default)"
            )
        return self

    @property
    def effective_decode_workers(self) -> int:
        """The decode worker processes to start: ``decode_workers`` with ``-1`` resolved."""
        if self.decode_workers >= 0:
            return self.decode_workers
        cpus = os.cpu_count() or 1
        return 0 if cpus < 2 else min(4, cpus)
