"""Forwarding: send what the collector accepted to LangSmith, Braintrust or any OTLP endpoint.

For teams without an OpenTelemetry Collector in front of AgentMesh. Each enabled target (see
:func:`targets_from_settings`) gets a :class:`Forwarder` with its own bounded queue and workers;
:class:`ForwardingSink` hooks them to the receivers so that ingestion never waits for them.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "ForwardPayload": "agentmesh.collector.forward.payload",
        "ForwardTarget": "agentmesh.collector.forward.targets",
        "Forwarder": "agentmesh.collector.forward.forwarder",
        "ForwarderStats": "agentmesh.collector.forward.stats",
        "Forwarders": "agentmesh.collector.forward.fanout",
        "ForwardingSink": "agentmesh.collector.forward.fanout",
        "OTEL_TRACES_PATH": "agentmesh.collector.forward.targets",
        "RETRYABLE_STATUSES": "agentmesh.collector.forward.retry",
        "RetryPolicy": "agentmesh.collector.forward.retry",
        "parse_retry_after": "agentmesh.collector.forward.retry",
        "targets_from_settings": "agentmesh.collector.forward.targets",
    },
)
