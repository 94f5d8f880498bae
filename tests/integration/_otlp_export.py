"""Sending OTLP/gRPC requests the way an exporter does: a refusal to retry is kept, not raised."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


async def export(stub: trace_service_pb2_grpc.TraceServiceStub, body: bytes) -> bool:
    """Send one serialized request; False when the collector asked for it again later.

    Raises:
        grpc.aio.AioRpcError: Any answer but success or ``UNAVAILABLE``.
    """
    try:
        await stub.Export(trace_service_pb2.ExportTraceServiceRequest.FromString(body), timeout=10)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:  # retryable: the exporter keeps it
            raise
        return False
    return True
