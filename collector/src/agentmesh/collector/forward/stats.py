"""Counters of one forwarder."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ForwarderStats"]


@dataclass(frozen=True, slots=True)
class ForwarderStats:
    """What a forwarder did since it started.

    Every offered request ends up in exactly one of ``sent_requests``, ``failed_requests`` and
    ``dropped_requests``, or is still ``queued`` or ``in_flight``.

    Attributes:
        offered_requests: Accepted OTLP requests handed to the forwarder.
        sent_requests: Requests the endpoint accepted (2xx).
        sent_spans: Spans in them.
        retried: Retries made (one per extra attempt).
        failed_requests: Requests given up: refused by the endpoint (4xx other than 429), or
            still failing when the retry budget ran out.
        failed_spans: Spans in them.
        dropped_requests: Requests dropped unsent: pushed out of a full queue, or still held
            when the shutdown flush time ran out.
        dropped_spans: Spans in them.
        queued: Requests waiting now.
        in_flight: Requests being sent (or waiting to be retried) now.
    """

    offered_requests: int = 0
    sent_requests: int = 0
    sent_spans: int = 0
    retried: int = 0
    failed_requests: int = 0
    failed_spans: int = 0
    dropped_requests: int = 0
    dropped_spans: int = 0
    queued: int = 0
    in_flight: int = 0
