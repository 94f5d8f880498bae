"""Sending OTLP/gRPC requests the way an exporter does: a refusal to retry is kept, not raised."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

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


async def send_each(
    stub: trace_service_pb2_grpc.TraceServiceStub, bodies: Iterable[bytes], pause: float = 0.02
) -> tuple[int, list[bytes]]:
    """Send requests one after another; return how many were accepted and those refused."""
    accepted, refused = 0, []
    for body in bodies:
        if await export(stub, body):
            accepted += 1
        else:
            refused.append(body)
        await asyncio.sleep(pause)
    return accepted, refused


async def resend(stub: trace_service_pb2_grpc.TraceServiceStub, bodies: Iterable[bytes]) -> int:
    """Send each refused request again until accepted (at most 200 tries, 50 ms apart)."""
    accepted = 0
    for body in bodies:
        for _ in range(200):
            if await export(stub, body):
                accepted += 1
                break
            await asyncio.sleep(0.05)
    return accepted
