"""The standard gRPC health protocol on the OTLP/gRPC port, asked with grpcio's own stub."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.collector import CollectorSettings
from agentmesh.collector.receiver import OtlpGrpcReceiver
from agentmesh.collector.receiver.grpc_health import GrpcHealth

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
OTLP = "opentelemetry.proto.collector.trace.v1.TraceService"


class _Switch:
    def __init__(self) -> None:
        self.on = True

    def __call__(self) -> bool:
        return self.on


def _receiver(ready: _Switch, grace: float = 30.0) -> OtlpGrpcReceiver:
    settings = CollectorSettings.load(grpc_port=0, grpc_grace_seconds=grace)
    return OtlpGrpcReceiver(lambda spans: True, settings, ready=ready)


def _channel(receiver: OtlpGrpcReceiver) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{receiver.port}")


def _request(service: str) -> health_pb2.HealthCheckRequest:
    return health_pb2.HealthCheckRequest(service=service)


async def test_check_follows_readiness_for_the_server_and_the_otlp_service() -> None:
    ready = _Switch()
    async with _receiver(ready) as receiver, _channel(receiver) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", OTLP):
            assert (await stub.Check(_request(service), timeout=10)).status == SERVING
        ready.on = False
        for service in ("", OTLP):
            assert (await stub.Check(_request(service), timeout=10)).status == NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.Check(_request("no.such.Service"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        listing = await stub.List(health_pb2.HealthListRequest(), timeout=10)
        assert {name: s.status for name, s in listing.statuses.items()} == {
            "": NOT_SERVING,
            OTLP: NOT_SERVING,
        }


async def test_a_watch_sees_each_change_and_ends_when_the_receiver_stops() -> None:
    ready = _Switch()
    receiver = _receiver(ready, grace=30.0)
    await receiver.start()
    try:
        channel = _channel(receiver)
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(_request(""))
        seen: list[int] = []
        stream = aiter(call)
        seen.append((await anext(stream)).status)
        ready.on = False
        seen.append((await asyncio.wait_for(anext(stream), 10)).status)
        ready.on = True
        seen.append((await asyncio.wait_for(anext(stream), 10)).status)
        assert seen == [SERVING, NOT_SERVING, SERVING]

        unknown = stub.Watch(_request("no.such.Service"))
        assert (await asyncio.wait_for(anext(aiter(unknown)), 10)).status == SERVICE_UNKNOWN
    finally:
        # the open watches must not hold the stop for the whole 30 s grace period
        await asyncio.wait_for(receiver.stop(), 10)
    rest = [answer.status async for answer in stream]
    assert rest == [NOT_SERVING]
    assert await call.code() == grpc.StatusCode.OK
    await channel.close()


async def test_health_answers_serving_while_running_by_default() -> None:
    settings = CollectorSettings.load(grpc_port=0)
    async with (
        OtlpGrpcReceiver(lambda spans: True, settings) as receiver,
        _channel(receiver) as channel,
    ):
        answer = await health_pb2_grpc.HealthStub(channel).Check(_request(""), timeout=10)
    assert answer.status == SERVING


def test_poll_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="poll_seconds"):
        GrpcHealth(lambda: True, [], poll_seconds=0)
