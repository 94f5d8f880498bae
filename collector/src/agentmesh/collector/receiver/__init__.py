"""The OTLP receivers: decode export requests (gRPC or HTTP) and hand span batches to a sink."""

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
