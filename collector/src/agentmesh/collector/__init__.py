"""AgentMesh collector: receive OTLP spans, rebuild run graphs, detect failures, store it all.

The pieces, in the order a span meets them: :class:`OtlpGrpcReceiver` and
:class:`OtlpHttpReceiver` decode OTLP requests into :class:`SpanRecord` batches and offer them
to the :class:`Pipeline`, whose
worker stores them in a :class:`SpanStore` (:class:`DuckDBStore` by default,
:class:`MemoryStore` for tests), updates each run's :class:`RunGraph` through the
:class:`GraphBuilder`, and runs each detection :class:`Rule` (such as :class:`PingPongRule`)
on the graphs that changed and feeds every streaming :class:`Detector` the spans.
:class:`Collector` wires them together (with recovery, detection events and metrics) as one
async context manager.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.detection import Detection, JsonValue, Severity, detection_id
    from agentmesh.collector.detectors import (
        HANDOFF_LOOP,
        PING_PONG,
        CycleView,
        Detector,
        HandoffLoopRule,
        PingPongRule,
        Rule,
        StatefulDetector,
    )
    from agentmesh.collector.graph import (
        INFERRED,
        AgentInvocation,
        AgentNode,
        AgentVisit,
        GraphBuilder,
        HandoffEdge,
        RunGraph,
    )
    from agentmesh.collector.model import (
        Attributes,
        AttributeScalar,
        AttributeValue,
        SpanEventRecord,
        SpanKind,
        SpanRecord,
        StatusCode,
    )
    from agentmesh.collector.pipeline import DetectionListener, Pipeline, PipelineStats
    from agentmesh.collector.receiver import (
        DecodeResult,
        OtlpGrpcReceiver,
        OtlpHttpReceiver,
        ReceiverStats,
        SpanSink,
        decode_request,
    )
    from agentmesh.collector.service import Collector, CollectorStats
    from agentmesh.collector.settings import CollectorSettings
    from agentmesh.collector.store import (
        DuckDBStore,
        MemoryStore,
        RunSummary,
        SpanStore,
        StoredGraph,
    )

__all__ = [
    "HANDOFF_LOOP",
    "INFERRED",
    "PING_PONG",
    "AgentInvocation",
    "AgentNode",
    "AgentVisit",
    "AttributeScalar",
    "AttributeValue",
    "Attributes",
    "Collector",
    "CollectorSettings",
    "CollectorStats",
    "CycleView",
    "DecodeResult",
    "Detection",
    "DetectionListener",
    "Detector",
    "DuckDBStore",
    "GraphBuilder",
    "HandoffEdge",
    "HandoffLoopRule",
    "JsonValue",
    "MemoryStore",
    "OtlpGrpcReceiver",
    "OtlpHttpReceiver",
    "PingPongRule",
    "Pipeline",
    "PipelineStats",
    "ReceiverStats",
    "Rule",
    "RunGraph",
    "RunSummary",
    "Severity",
    "SpanEventRecord",
    "SpanKind",
    "SpanRecord",
    "SpanSink",
    "SpanStore",
    "StatefulDetector",
    "StatusCode",
    "StoredGraph",
    "decode_request",
    "detection_id",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "AgentInvocation": "agentmesh.collector.graph",
        "AgentNode": "agentmesh.collector.graph",
        "AgentVisit": "agentmesh.collector.graph",
        "AttributeScalar": "agentmesh.collector.model",
        "AttributeValue": "agentmesh.collector.model",
        "Attributes": "agentmesh.collector.model",
        "Collector": "agentmesh.collector.service",
        "CollectorSettings": "agentmesh.collector.settings",
        "CollectorStats": "agentmesh.collector.service",
        "CycleView": "agentmesh.collector.detectors",
        "DecodeResult": "agentmesh.collector.receiver",
        "Detection": "agentmesh.collector.detection",
        "DetectionListener": "agentmesh.collector.pipeline",
        "Detector": "agentmesh.collector.detectors",
        "DuckDBStore": "agentmesh.collector.store",
        "GraphBuilder": "agentmesh.collector.graph",
        "HANDOFF_LOOP": "agentmesh.collector.detectors",
        "HandoffEdge": "agentmesh.collector.graph",
        "HandoffLoopRule": "agentmesh.collector.detectors",
        "INFERRED": "agentmesh.collector.graph",
        "JsonValue": "agentmesh.collector.detection",
        "MemoryStore": "agentmesh.collector.store",
        "OtlpGrpcReceiver": "agentmesh.collector.receiver",
        "OtlpHttpReceiver": "agentmesh.collector.receiver",
        "PING_PONG": "agentmesh.collector.detectors",
        "PingPongRule": "agentmesh.collector.detectors",
        "Pipeline": "agentmesh.collector.pipeline",
        "PipelineStats": "agentmesh.collector.pipeline",
        "ReceiverStats": "agentmesh.collector.receiver",
        "Rule": "agentmesh.collector.detectors",
        "RunGraph": "agentmesh.collector.graph",
        "RunSummary": "agentmesh.collector.store",
        "Severity": "agentmesh.collector.detection",
        "SpanEventRecord": "agentmesh.collector.model",
        "SpanKind": "agentmesh.collector.model",
        "SpanRecord": "agentmesh.collector.model",
        "SpanSink": "agentmesh.collector.receiver",
        "SpanStore": "agentmesh.collector.store",
        "StatefulDetector": "agentmesh.collector.detectors",
        "StatusCode": "agentmesh.collector.model",
        "StoredGraph": "agentmesh.collector.store",
        "decode_request": "agentmesh.collector.receiver",
        "detection_id": "agentmesh.collector.detection",
    },
)
