"""A sending process: replays pre-serialised OTLP requests over gRPC, retrying when told to.

Each request is sent as raw bytes through ``TraceServiceStub.Export`` (no re-encoding in the
client); ``UNAVAILABLE`` and ``RESOURCE_EXHAUSTED`` answers are retried after a short pause,
as the OpenTelemetry exporters do. Several requests are kept in flight per process.

:func:`soak` replays the requests over and over at a fixed pace for a given time, each replay
with fresh trace ids (``trace_ids.py``), so the collector sees a never-ending stream of new runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import grpc

from .trace_ids import TraceIdSites, patch_trace_ids

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


@dataclass
class SendReport:
    """What one sending process did.

    Attributes:
        requests: Requests accepted by the server.
        retries: Retryable refusals (each followed by a resend).
        failures: Requests given up on (a non-retryable error or the deadline).
        first_sent: ``time.time()`` of the first send.
        last_acked: ``time.time()`` of the last accepted answer.
    """

    requests: int = 0
    retries: int = 0
    failures: int = 0
    first_sent: float = 0.0
    last_acked: float = 0.0


def send_all(
    target: str,
    bodies: list[bytes],
    in_flight: int = 4,
    deadline_s: float = 600.0,
    retry_pause_s: float = 0.02,
    rate_rps: float | None = None,
) -> SendReport:
    """Send every body to ``target`` (``host:port``), ``in_flight`` at a time.

    Args:
        target: The OTLP/gRPC endpoint, without scheme.
        bodies: Serialised ``ExportTraceServiceRequest`` messages.
        in_flight: Concurrent requests.
        deadline_s: Give up on requests still unsent after this long.
        retry_pause_s: Pause before resending a refused request.
        rate_rps: Start requests at this pace (open loop) instead of as fast as answered.

    Returns:
        The counts.
    """
    report = SendReport(first_sent=time.time())
    lock = threading.Lock()
    queue = list(reversed(bodies))
    started = time.monotonic()
    sent = [0]
    stop_at = time.monotonic() + deadline_s
    options = [("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(target, options=options) as channel:
        export = cast(
            Callable[..., object],
            channel.unary_unary(_EXPORT),  # pyright: ignore[reportUnknownMemberType]
        )

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                    slot = sent[0]
                    sent[0] += 1
                if rate_rps is not None:
                    time.sleep(max(0.0, started + slot / rate_rps - time.monotonic()))
                while True:
                    try:
                        export(body, timeout=30)
                    except grpc.RpcError as exc:
                        code = exc.code()  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
                        if code in _RETRYABLE and time.monotonic() < stop_at:
                            with lock:
                                report.retries += 1
                            time.sleep(retry_pause_s)
                            continue
                        with lock:
                            report.failures += 1
                        break
                    with lock:
                        report.requests += 1
                        report.last_acked = time.time()
                    break

        threads = [threading.Thread(target=worker) for _ in range(in_flight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return report


@dataclass
class SoakReport:
    """What one soaking process did.

    Attributes:
        requests: Requests accepted by the server.
        spans: Spans in those requests.
        replays: Replays started (each with its own trace ids).
        retries: Retryable refusals (each followed by a resend).
        failures: Requests given up on.
        first_sent: ``time.time()`` of the first send.
        last_acked: ``time.time()`` of the last accepted answer.
        late_s: How far behind its schedule the last request started (0: on time).
    """

    requests: int = 0
    spans: int = 0
    replays: int = 0
    retries: int = 0
    failures: int = 0
    first_sent: float = 0.0
    last_acked: float = 0.0
    late_s: float = 0.0


def soak(
    target: str,
    bodies: list[bytes],
    sites: list[TraceIdSites],
    spans: list[int],
    seconds: float,
    rate_rps: float,
    replays: tuple[int, int],
    in_flight: int = 8,
    retry_pause_s: float = 0.02,
) -> SoakReport:
    """Replay ``bodies`` at ``rate_rps`` requests a second for ``seconds``, fresh trace ids each.

    Requests start on a fixed schedule (open loop: request ``k`` at ``k / rate_rps`` seconds);
    when the server is slower, they start as soon as a sender is free and ``late_s`` grows.

    Args:
        target: The OTLP/gRPC endpoint, without scheme.
        bodies: The stream's serialised requests, in order.
        sites: Each body's trace id offsets.
        spans: Each body's span count.
        seconds: How long to send.
        rate_rps: Requests a second.
        replays: ``(first, step)``: this process's replay numbers are ``first``,
            ``first + step``… (give each process a distinct ``first`` below ``step``, from 1).
        in_flight: Concurrent requests.
        retry_pause_s: Pause before resending a refused request.

    Returns:
        The counts.
    """
    report = SoakReport(first_sent=time.time())
    lock = threading.Lock()
    started = time.monotonic()
    stop_at = started + seconds
    slots = [0]
    options = [("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(target, options=options) as channel:
        export = cast(
            Callable[..., object],
            channel.unary_unary(_EXPORT),  # pyright: ignore[reportUnknownMemberType]
        )

        def worker() -> None:
            while True:
                with lock:
                    slot = slots[0]
                    slots[0] += 1
                due = started + slot / rate_rps
                if due >= stop_at:
                    return
                replay, index = divmod(slot, len(bodies))
                if index == 0:
                    with lock:
                        report.replays += 1
                number = replays[0] + replay * replays[1]
                body = patch_trace_ids(bodies[index], sites[index], number)
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                else:
                    with lock:
                        report.late_s = max(report.late_s, now - due)
                while True:
                    try:
                        export(body, timeout=30)
                    except grpc.RpcError as exc:
                        code = exc.code()  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
                        if code in _RETRYABLE and time.monotonic() < stop_at + 30:
                            with lock:
                                report.retries += 1
                            time.sleep(retry_pause_s)
                            continue
                        with lock:
                            report.failures += 1
                        break
                    with lock:
                        report.requests += 1
                        report.spans += spans[index]
                        report.last_acked = time.time()
                    break

        threads = [threading.Thread(target=worker) for _ in range(in_flight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return report
