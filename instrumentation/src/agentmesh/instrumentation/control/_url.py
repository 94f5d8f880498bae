"""Where the control document is: the collector's OTLP/HTTP base URL.

``AGENTMESH_CONTROL_URL`` names it; otherwise it is derived from the OTLP endpoint the spans go
to: gRPC's port 4317 becomes OTLP/HTTP's 4318 and a signal path (``/v1/traces``) is dropped.
Any other port (or none: the scheme's default) is kept.

Example:
    >>> control_base_url("http://collector:4317")
    'http://collector:4318'
    >>> control_base_url("https://otel.example.com:4318/v1/traces")
    'https://otel.example.com:4318'
    >>> control_base_url("collector:4317")
    'http://collector:4318'
    >>> control_document_url("http://collector:4318/", after=7, wait_s=25)
    'http://collector:4318/v1/control?after=7&wait=25'
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["CONTROL_PATH", "control_base_url", "control_document_url"]

CONTROL_PATH: Final = "/v1/control"
"""Path of the control document under the collector's OTLP/HTTP base."""

_GRPC_PORT: Final = 4317
_HTTP_PORT: Final = 4318
_SIGNAL_PATHS: Final = ("/v1/traces", "/v1/metrics", "/v1/logs", CONTROL_PATH)


def control_base_url(endpoint: str) -> str:
    """Derive the collector's OTLP/HTTP base URL from an OTLP endpoint.

    Args:
        endpoint: An OTLP endpoint (gRPC or HTTP, with or without scheme and signal path).

    Returns:
        ``scheme://host:port[/prefix]`` without trailing slash.

    Raises:
        ValueError: The endpoint names no host.
    """
    text = endpoint.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    host = parts.hostname
    if not host:
        raise ValueError(f"control: no host in endpoint {endpoint!r}")
    port = _HTTP_PORT if parts.port == _GRPC_PORT else parts.port
    name = f"[{host}]" if ":" in host else host
    netloc = name if port is None else f"{name}:{port}"
    path = parts.path.rstrip("/")
    for suffix in _SIGNAL_PATHS:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    scheme = parts.scheme if parts.scheme in ("http", "https") else "http"
    return urlunsplit((scheme, netloc, path.rstrip("/"), "", ""))


def control_document_url(base: str, *, after: int | None, wait_s: float) -> str:
    """Return the URL of one (long-)poll of the control document.

    Args:
        base: The collector's OTLP/HTTP base URL.
        after: The version already held (long poll), or ``None`` to ask at once.
        wait_s: Longest time the collector may hold the request (seconds).

    Returns:
        The URL.
    """
    url = f"{base.rstrip('/')}{CONTROL_PATH}"
    if after is None:
        return url
    return f"{url}?after={after}&wait={wait_s:g}"
