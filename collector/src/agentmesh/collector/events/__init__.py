"""Where detections go besides the store and Redis: OTLP, Prometheus metrics and webhooks.

:class:`DetectionFanout` is the pipeline's ``on_detection`` listener; it feeds
:class:`CollectorMetrics` (``agentmesh_detections_total``), :class:`DetectionExporter` (detection
spans, sent by the forwarders to LangSmith, Braintrust or any OTLP endpoint) and
:class:`WebhookNotifier` (JSON POSTs), never blocking the pipeline.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.events.batcher import Batcher
    from agentmesh.collector.events.fanout import DetectionFanout, DetectionFanoutStats
    from agentmesh.collector.events.metrics import (
        METRICS_CONTENT_TYPE,
        METRICS_PATH,
        CollectorMetrics,
    )
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

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Batcher": "agentmesh.collector.events.batcher",
        "CollectorMetrics": "agentmesh.collector.events.metrics",
        "DETECTION_SPAN_PREFIX": "agentmesh.collector.events.otlp_export",
        "DetectionExporter": "agentmesh.collector.events.otlp_export",
        "DetectionExporterStats": "agentmesh.collector.events.otlp_export",
        "DetectionFanout": "agentmesh.collector.events.fanout",
        "DetectionFanoutStats": "agentmesh.collector.events.fanout",
        "METRICS_CONTENT_TYPE": "agentmesh.collector.events.metrics",
        "METRICS_PATH": "agentmesh.collector.events.metrics",
        "WebhookNotifier": "agentmesh.collector.events.webhooks",
        "WebhookStats": "agentmesh.collector.events.webhooks",
        "WebhookTarget": "agentmesh.collector.events.webhooks",
        "detection_span": "agentmesh.collector.events.otlp_export",
        "detection_span_id": "agentmesh.collector.events.otlp_export",
        "detections_request": "agentmesh.collector.events.otlp_export",
        "webhook_targets": "agentmesh.collector.events.webhooks",
    },
)
