"""Failure detection: graph rules and streaming detectors.

Graph rules (:class:`Rule`, evaluated on each changed run graph):

- :class:`PingPongRule` (``ping_pong``): two agents handing work back and forth;
- :class:`HandoffLoopRule` (``handoff_loop``): a cycle of three or more agents repeated.

Streaming detectors (:class:`Detector`, fed each pipeline cycle):

- :class:`ToolLoopDetector` (``tool_loop``): the same tool call with the same result repeated;
- :class:`ErrorCascadeDetector` (``error_cascade``): errors spreading across a run's agents;
- :class:`ContextLossDetector` (``context_loss``): a handoff received other context than sent;
- :class:`RunawayDetector` (``runaway``, a :class:`StatefulDetector`): a run over its budget
  or far over what its workflow's runs cost;
- :class:`StuckDetector` (``stuck``): a step that started (start marker) and did not end within
  its configured or learned bound;
- :class:`SpikeDetector` (``latency_spike``, ``token_spike``, ``cost_spike``): values far above
  the normal of their (agent, model, task class);
- :class:`RateLimitStormDetector` (``rate_limit_storm``): 429s for one model across runs;
- :class:`ProviderOutageDetector` (``provider_outage``, then ``provider_recovered``): errors or
  latency jumping for one model across runs.

:mod:`~agentmesh.collector.detectors.registry` builds the set from the collector's settings.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.detectors.base import CycleView, Detector, Rule, StatefulDetector
    from agentmesh.collector.detectors.context_loss import CONTEXT_LOSS, ContextLossDetector
    from agentmesh.collector.detectors.error_cascade import ERROR_CASCADE, ErrorCascadeDetector
    from agentmesh.collector.detectors.handoff_loop import (
        HANDOFF_LOOP,
        PING_PONG,
        HandoffLoopRule,
        PingPongRule,
    )
    from agentmesh.collector.detectors.node_feed import NodeFeed
    from agentmesh.collector.detectors.outage import (
        PROVIDER_OUTAGE,
        PROVIDER_RECOVERED,
        OutageEpisode,
        ProviderOutageDetector,
        is_client_error,
    )
    from agentmesh.collector.detectors.rate_limit import (
        RATE_LIMIT_STORM,
        RateLimitStormDetector,
        StormEpisode,
        is_rate_limited,
    )
    from agentmesh.collector.detectors.runaway import RUNAWAY, RunawayDetector, WorkflowNorm
    from agentmesh.collector.detectors.spikes import (
        COST_SPIKE,
        LATENCY_SPIKE,
        TOKEN_SPIKE,
        SpikeDetector,
    )
    from agentmesh.collector.detectors.stuck import STUCK, StuckDetector
    from agentmesh.collector.detectors.tool_loop import TOOL_LOOP, ToolLoopDetector

__all__ = [
    "CONTEXT_LOSS",
    "COST_SPIKE",
    "ERROR_CASCADE",
    "HANDOFF_LOOP",
    "LATENCY_SPIKE",
    "PING_PONG",
    "PROVIDER_OUTAGE",
    "PROVIDER_RECOVERED",
    "RATE_LIMIT_STORM",
    "RUNAWAY",
    "STUCK",
    "TOKEN_SPIKE",
    "TOOL_LOOP",
    "ContextLossDetector",
    "CycleView",
    "Detector",
    "ErrorCascadeDetector",
    "HandoffLoopRule",
    "NodeFeed",
    "OutageEpisode",
    "PingPongRule",
    "ProviderOutageDetector",
    "RateLimitStormDetector",
    "Rule",
    "RunawayDetector",
    "SpikeDetector",
    "StatefulDetector",
    "StormEpisode",
    "StuckDetector",
    "ToolLoopDetector",
    "WorkflowNorm",
    "is_client_error",
    "is_rate_limited",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "CONTEXT_LOSS": "agentmesh.collector.detectors.context_loss",
        "COST_SPIKE": "agentmesh.collector.detectors.spikes",
        "ContextLossDetector": "agentmesh.collector.detectors.context_loss",
        "CycleView": "agentmesh.collector.detectors.base",
        "Detector": "agentmesh.collector.detectors.base",
        "ERROR_CASCADE": "agentmesh.collector.detectors.error_cascade",
        "ErrorCascadeDetector": "agentmesh.collector.detectors.error_cascade",
        "HANDOFF_LOOP": "agentmesh.collector.detectors.handoff_loop",
        "HandoffLoopRule": "agentmesh.collector.detectors.handoff_loop",
        "LATENCY_SPIKE": "agentmesh.collector.detectors.spikes",
        "NodeFeed": "agentmesh.collector.detectors.node_feed",
        "OutageEpisode": "agentmesh.collector.detectors.outage",
        "PING_PONG": "agentmesh.collector.detectors.handoff_loop",
        "PROVIDER_OUTAGE": "agentmesh.collector.detectors.outage",
        "PROVIDER_RECOVERED": "agentmesh.collector.detectors.outage",
        "PingPongRule": "agentmesh.collector.detectors.handoff_loop",
        "ProviderOutageDetector": "agentmesh.collector.detectors.outage",
        "RATE_LIMIT_STORM": "agentmesh.collector.detectors.rate_limit",
        "RUNAWAY": "agentmesh.collector.detectors.runaway",
        "RateLimitStormDetector": "agentmesh.collector.detectors.rate_limit",
        "Rule": "agentmesh.collector.detectors.base",
        "RunawayDetector": "agentmesh.collector.detectors.runaway",
        "STUCK": "agentmesh.collector.detectors.stuck",
        "SpikeDetector": "agentmesh.collector.detectors.spikes",
        "StatefulDetector": "agentmesh.collector.detectors.base",
        "StormEpisode": "agentmesh.collector.detectors.rate_limit",
        "StuckDetector": "agentmesh.collector.detectors.stuck",
        "TOKEN_SPIKE": "agentmesh.collector.detectors.spikes",
        "TOOL_LOOP": "agentmesh.collector.detectors.tool_loop",
        "ToolLoopDetector": "agentmesh.collector.detectors.tool_loop",
        "WorkflowNorm": "agentmesh.collector.detectors.runaway",
        "is_client_error": "agentmesh.collector.detectors.outage",
        "is_rate_limited": "agentmesh.collector.detectors.rate_limit",
    },
)
