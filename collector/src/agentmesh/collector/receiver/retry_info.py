"""The gRPC trailers that tell an OTLP exporter when to retry.

A refused export carries a ``google.rpc.Status`` (with a ``google.rpc.RetryInfo`` packed in its
details) in ``grpc-status-details-bin``, the rich-status trailer the OpenTelemetry Collector and
gRPC's status libraries read, and the bare ``RetryInfo`` in ``google.rpc.retryinfo-bin``, the
trailer the OpenTelemetry Python SDK exporter reads. Built by hand: ``grpcio-status`` is not
needed.
"""

from __future__ import annotations

from typing import Final

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

__all__ = ["RETRY_INFO_KEY", "STATUS_DETAILS_KEY", "retry_trailers"]

STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
"""The trailer holding a serialized ``google.rpc.Status``."""

RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"
"""The trailer holding a serialized ``google.rpc.RetryInfo`` (read by the Python SDK)."""


def retry_trailers(
    code: grpc.StatusCode, message: str, delay_seconds: float
) -> tuple[tuple[str, bytes], ...]:
    """Build the trailing metadata of a retryable refusal.

    Args:
        code: The status the call ends with (``UNAVAILABLE`` for a full queue).
        message: The status message, in plain words.
        delay_seconds: How long the client should wait before retrying.

    Returns:
        The two trailers, ready for ``context.abort(..., trailing_metadata=...)``.

    Example:
        >>> trailers = dict(retry_trailers(grpc.StatusCode.UNAVAILABLE, "busy", 1))
        >>> info = RetryInfo.FromString(trailers[RETRY_INFO_KEY])
        >>> info.retry_delay.seconds
        1
    """
    whole = int(delay_seconds)
    delay = Duration(seconds=whole, nanos=round((delay_seconds - whole) * 1e9))
    retry_info = RetryInfo(retry_delay=delay)
    detail = AnyProto()
    detail.Pack(retry_info)
    status = Status(code=code.value[0], message=message, details=[detail])
    return (
        (STATUS_DETAILS_KEY, status.SerializeToString()),
        (RETRY_INFO_KEY, retry_info.SerializeToString()),
    )
