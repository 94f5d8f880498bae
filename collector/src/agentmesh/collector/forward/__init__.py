"""Forwarding: send what the collector accepted to LangSmith, Braintrust or any OTLP endpoint.

For teams without an OpenTelemetry Collector in front of AgentMesh. Each enabled target (see
:func:`targets_from_settings`) gets a :class:`Forwarder` with its own bounded queue and workers;
:class:`ForwardingSink` hooks them to the receivers so that ingestion never waits for them.
"""

from agentmesh.collector.forward.fanout import Forwarders, ForwardingSink
from agentmesh.collector.forward.forwarder import Forwarder
from agentmesh.collector.forward.payload import ForwardPayload
from agentmesh.collector.forward.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from agentmesh.collector.forward.stats import ForwarderStats
from agentmesh.collector.forward.targets import (
    OTEL_TRACES_PATH,
    ForwardTarget,
    targets_from_settings,
)

__all__ = [
    "OTEL_TRACES_PATH",
    "RETRYABLE_STATUSES",
    "ForwardPayload",
    "ForwardTarget",
    "Forwarder",
    "ForwarderStats",
    "Forwarders",
    "ForwardingSink",
    "RetryPolicy",
    "parse_retry_after",
    "targets_from_settings",
]
