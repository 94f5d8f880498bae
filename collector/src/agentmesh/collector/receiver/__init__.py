"""The OTLP receivers: decode export requests (gRPC or HTTP) and hand span batches to a sink."""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.receiver.auth import Authenticator
    from agentmesh.collector.receiver.decode import DecodeResult, count_spans, decode_request
    from agentmesh.collector.receiver.grpc_server import OtlpGrpcReceiver
    from agentmesh.collector.receiver.http_server import TRACES_PATH, OtlpHttpReceiver
    from agentmesh.collector.receiver.ingest import ReceiverBusyError, ReceiverStats, SpanSink
    from agentmesh.collector.receiver.limits import DecodeLimits

__all__ = [
    "TRACES_PATH",
    "Authenticator",
    "DecodeLimits",
    "DecodeResult",
    "OtlpGrpcReceiver",
    "OtlpHttpReceiver",
    "ReceiverBusyError",
    "ReceiverStats",
    "SpanSink",
    "count_spans",
    "decode_request",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Authenticator": "agentmesh.collector.receiver.auth",
        "DecodeLimits": "agentmesh.collector.receiver.limits",
        "DecodeResult": "agentmesh.collector.receiver.decode",
        "OtlpGrpcReceiver": "agentmesh.collector.receiver.grpc_server",
        "OtlpHttpReceiver": "agentmesh.collector.receiver.http_server",
        "ReceiverBusyError": "agentmesh.collector.receiver.ingest",
        "ReceiverStats": "agentmesh.collector.receiver.ingest",
        "SpanSink": "agentmesh.collector.receiver.ingest",
        "TRACES_PATH": "agentmesh.collector.receiver.http_server",
        "count_spans": "agentmesh.collector.receiver.decode",
        "decode_request": "agentmesh.collector.receiver.decode",
    },
)
