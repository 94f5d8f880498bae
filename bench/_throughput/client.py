"""A sending process: replays pre-serialised OTLP requests over gRPC, retrying when told to.

Each request is sent as raw bytes through ``TraceServiceStub.Export`` (no re-encoding in the
client); ``UNAVAILABLE`` and ``RESOURCE_EXHAUSTED`` answers are retried after a short pause,
as the OpenTelemetry exporters do. Several requests are kept in flight per process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import grpc

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
