"""The standard gRPC health service (``grpc.health.v1.Health``) on the OTLP/gRPC port.

Kubernetes' ``grpc:`` probes, ``grpc_health_probe``, Envoy and the gRPC load balancers ask a
server this service, not an HTTP path; a deployment that turns OTLP/HTTP off has no other
probe. :class:`GrpcHealth` answers it from the collector's readiness, read when asked:

- ``Check``: ``SERVING`` while the collector takes spans and can store them, else
  ``NOT_SERVING`` (the same verdict as ``GET /readyz``), for the service names ``""`` (the
  server) and ``opentelemetry.proto.collector.trace.v1.TraceService``; ``NOT_FOUND`` for any
  other name;
- ``Watch``: the status now, then each change (readiness is looked at every
  ``poll_seconds``); an unknown name gets ``SERVICE_UNKNOWN`` and the stream stays open, as the
  protocol asks;
- ``List``: every known service with its status.

When the receiver stops, every service turns ``NOT_SERVING`` at once and open watches end
with that status, so a shutdown is not held up by them. The service is public: probes carry no
token, and the answers say nothing about the data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Final

import grpc
from grpc_health.v1.health_pb2 import (
    HealthCheckRequest,
    HealthCheckResponse,
    HealthListRequest,
    HealthListResponse,
)

__all__ = ["HEALTH_SERVICE", "GrpcHealth"]

HEALTH_SERVICE: Final = "grpc.health.v1.Health"
"""The gRPC service name of the health protocol."""

SERVING: Final = HealthCheckResponse.SERVING
NOT_SERVING: Final = HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: Final = HealthCheckResponse.SERVICE_UNKNOWN

_Status = HealthCheckResponse.ServingStatus


class GrpcHealth:
    """The ``grpc.health.v1.Health`` service, answering from a readiness check.

    Args:
        ready: Whether the server is ready now; called on each ``Check`` and each poll of a
            ``Watch`` (keep it cheap).
        services: The service names besides ``""`` that share that status.
        poll_seconds: How often an open ``Watch`` looks at readiness.

    Example:
        >>> health = GrpcHealth(lambda: True, ["my.Service"])
        >>> health.status("") == SERVING, health.status("other") is None
        (True, True)
    """

    def __init__(
        self, ready: Callable[[], bool], services: Sequence[str], *, poll_seconds: float = 0.5
    ) -> None:
        if poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be positive, got {poll_seconds}")
        self._ready = ready
        self._services = ("", *services)
        self._poll = poll_seconds
        self._closing = asyncio.Event()

    def status(self, service: str) -> _Status | None:
        """The status of a service, or ``None`` when the name is not known.

        Args:
            service: The service name (``""`` for the server as a whole).

        Returns:
            ``SERVING`` or ``NOT_SERVING``; ``None`` for an unknown name.
        """
        if service not in self._services:
            return None
        if self._closing.is_set():
            return NOT_SERVING
        return SERVING if self._ready() else NOT_SERVING

    def close(self) -> None:
        """Answer ``NOT_SERVING`` from now on and end the open watches (at shutdown)."""
        self._closing.set()

    def handler(self) -> grpc.GenericRpcHandler:
        """The RPC handler to add to a ``grpc.aio`` server.

        Returns:
            A generic handler serving ``Check``, ``Watch`` and ``List``.
        """
        check: grpc.RpcMethodHandler[HealthCheckRequest, HealthCheckResponse]
        check = grpc.unary_unary_rpc_method_handler(  # pyright: ignore[reportUnknownVariableType]
            self._check,
            request_deserializer=HealthCheckRequest.FromString,
            response_serializer=HealthCheckResponse.SerializeToString,
        )
        watch: grpc.RpcMethodHandler[HealthCheckRequest, HealthCheckResponse]
        watch = grpc.unary_stream_rpc_method_handler(  # pyright: ignore[reportUnknownVariableType]
            self._watch,
            request_deserializer=HealthCheckRequest.FromString,
            response_serializer=HealthCheckResponse.SerializeToString,
        )
        listing: grpc.RpcMethodHandler[HealthListRequest, HealthListResponse]
        listing = grpc.unary_unary_rpc_method_handler(  # pyright: ignore[reportUnknownVariableType]
            self._list,
            request_deserializer=HealthListRequest.FromString,
            response_serializer=HealthListResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(
            HEALTH_SERVICE, {"Check": check, "Watch": watch, "List": listing}
        )

    async def _check(
        self,
        request: HealthCheckRequest,
        context: grpc.aio.ServicerContext[HealthCheckRequest, HealthCheckResponse],
    ) -> HealthCheckResponse:
        status = self.status(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return HealthCheckResponse(status=status)

    async def _watch(
        self,
        request: HealthCheckRequest,
        context: grpc.aio.ServicerContext[HealthCheckRequest, HealthCheckResponse],
    ) -> None:
        last: _Status | None = None
        while True:
            status = self.status(request.service)
            current = SERVICE_UNKNOWN if status is None else status
            if current != last:
                await context.write(HealthCheckResponse(status=current))
                last = current
            if self._closing.is_set():  # known services were just sent NOT_SERVING
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._poll)

    async def _list(
        self,
        request: HealthListRequest,
        context: grpc.aio.ServicerContext[HealthListRequest, HealthListResponse],
    ) -> HealthListResponse:
        del request, context
        response = HealthListResponse()
        for service in self._services:
            status = self.status(service)
            if status is not None:
                response.statuses[service].status = status
        return response
