"""Every enabled forwarder as one unit, and the span sink that feeds them.

:class:`Forwarders` hands each accepted request to each forwarder (one shared, lazily encoded
:class:`ForwardPayload`). :class:`ForwardingSink` wraps the collector's span sink: the receivers
call it with decoded spans as before and, once the sink has accepted a request, with the request
itself (the :class:`~agentmesh.collector.receiver.ingest.RequestObserver` hook), so only what the
collector accepted is forwarded, once, and a request the sender must retry is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.batch import SpanBatch
from agentmesh.collector.forward.forwarder import Forwarder
from agentmesh.collector.forward.payload import ForwardPayload
from agentmesh.collector.forward.retry import RetryPolicy
from agentmesh.collector.forward.stats import ForwarderStats
from agentmesh.collector.forward.targets import targets_from_settings
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.receiver.ingest import SinkCapacity, SpanSink
from agentmesh.collector.settings import CollectorSettings

__all__ = ["Forwarders", "ForwardingSink"]


class Forwarders:
    """The forwarders of one collector, started, fed and stopped together.

    Args:
        forwarders: The forwarders (each to its own target).
    """

    def __init__(self, forwarders: Sequence[Forwarder]) -> None:
        self._forwarders = tuple(forwarders)

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> Forwarders:
        """One forwarder per target the settings enable (possibly none).

        Args:
            settings: The collector's configuration.

        Returns:
            The forwarders, not started.
        """
        retry = RetryPolicy(max_seconds=settings.forward_max_retry_seconds)
        return cls(
            [
                Forwarder(
                    target,
                    queue_max_requests=settings.forward_queue_max_requests,
                    concurrency=settings.forward_concurrency,
                    timeout_seconds=settings.forward_timeout_seconds,
                    retry=retry,
                    flush_timeout_seconds=settings.forward_flush_timeout_seconds,
                )
                for target in targets_from_settings(settings)
            ]
        )

    def __len__(self) -> int:
        return len(self._forwarders)

    @property
    def stats(self) -> dict[str, ForwarderStats]:
        """Each forwarder's counters, by name."""
        return {f.name: f.stats for f in self._forwarders}

    def offer(self, request: ExportTraceServiceRequest | bytes, spans: int) -> None:
        """Queue an accepted request on every forwarder (never blocks).

        Args:
            request: The request as received (parsed, or its protobuf bytes).
            spans: How many of its spans were accepted.
        """
        if not self._forwarders:
            return
        payload = ForwardPayload(request, spans)
        for forwarder in self._forwarders:
            forwarder.offer(payload)

    async def start(self) -> None:
        """Start every forwarder."""
        for forwarder in self._forwarders:
            await forwarder.start()

    async def stop(self) -> None:
        """Flush and stop every forwarder, at the same time (each within its flush timeout)."""
        await asyncio.gather(*(f.stop() for f in self._forwarders))

    async def __aenter__(self) -> Forwarders:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class ForwardingSink:
    """A span sink that also forwards each request its inner sink accepted.

    Args:
        sink: The sink that takes the decoded spans (the pipeline's ``offer``).
        forwarders: Where accepted requests go.
    """

    def __init__(self, sink: SpanSink, forwarders: Forwarders) -> None:
        self._sink = sink
        self._forwarders = forwarders

    def has_room(self) -> bool:
        """Whether the inner sink would take a batch now (``True`` when it cannot tell)."""
        return self._sink.has_room() if isinstance(self._sink, SinkCapacity) else True

    def __call__(self, spans: list[SpanRecord] | SpanBatch, /) -> bool | Awaitable[bool]:
        """Hand the spans to the inner sink.

        Args:
            spans: The decoded spans of one request.

        Returns:
            The inner sink's answer.
        """
        return self._sink(spans)

    def request_accepted(self, request: ExportTraceServiceRequest | bytes, spans: int, /) -> None:
        """Forward a request whose spans the inner sink accepted.

        Args:
            request: The request as received (parsed, or its protobuf bytes).
            spans: How many of its spans were accepted.
        """
        self._forwarders.offer(request, spans)
