"""The OTLP receiver: decode export requests and hand span batches to a sink."""

from agentmesh.collector.receiver.decode import DecodeResult, count_spans, decode_request
from agentmesh.collector.receiver.grpc_server import OtlpGrpcReceiver, ReceiverStats, SpanSink

__all__ = [
    "DecodeResult",
    "OtlpGrpcReceiver",
    "ReceiverStats",
    "SpanSink",
    "count_spans",
    "decode_request",
]
