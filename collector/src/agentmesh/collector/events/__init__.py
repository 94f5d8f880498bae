"""Where detections go besides the store and Redis: OTLP, Prometheus metrics and webhooks.

:class:`DetectionFanout` is the pipeline's ``on_detection`` listener; it feeds
:class:`CollectorMetrics` (``agentmesh_detections_total``), :class:`DetectionExporter` (detection
spans, sent by the forwarders to LangSmith, Braintrust or any OTLP endpoint) and
:class:`WebhookNotifier` (JSON POSTs), never blocking the pipeline.
"""

from agentmesh.collector.events.batcher import Batcher
from agentmesh.collector.events.fanout import DetectionFanout, DetectionFanoutStats
from agentmesh.collector.events.metrics import METRICS_CONTENT_TYPE, METRICS_PATH, CollectorMetrics
from agentmesh.collector.events.otlp_export import (
    DETECTION_SPAN_PREFIX,
    DetectionExporter,
    DetectionExporterStats,
    detection_span,
    detection_span_id,
    detections_request,
)
from agentmesh.collector.events.webhooks import (
    WebhookNotifier,
    WebhookStats,
    WebhookTarget,
    webhook_targets,
)

__all__ = [
    "DETECTION_SPAN_PREFIX",
    "METRICS_CONTENT_TYPE",
    "METRICS_PATH",
    "Batcher",
    "CollectorMetrics",
    "DetectionExporter",
    "DetectionExporterStats",
    "DetectionFanout",
    "DetectionFanoutStats",
    "WebhookNotifier",
    "WebhookStats",
    "WebhookTarget",
    "detection_span",
    "detection_span_id",
    "detections_request",
    "webhook_targets",
]
