"""Reading a running collector's HTTP API from the command line (``--collector URL``).

With ``AGENTMESH_API_TOKEN`` set, requests carry ``Authorization: Bearer <token>``, for a
collector that requires credentials (``AGENTMESH_COLLECTOR_AUTH_BEARER_TOKENS``).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from http.client import HTTPResponse
from typing import BinaryIO, Final, TypeVar

from agentmesh.core import ConfigError
from agentmesh.core.socket_errors import socket_reason
from agentmesh.core.tls import client_ssl_context

__all__ = ["TOKEN_ENV", "get_file", "get_json"]

TOKEN_ENV: Final = "AGENTMESH_API_TOKEN"  # noqa: S105 - a variable name, not a secret
"""The environment variable holding the bearer token sent to the collector, if any."""

_T = TypeVar("_T")

_TIMEOUT_SECONDS: Final = 10.0
_FILE_TIMEOUT_SECONDS: Final = 600.0
"""Longest wait for a file's first byte (an export is written before it is sent)."""


def get_json(base: str, path: str, **query: str) -> object:
    """``GET`` a path of the collector's HTTP endpoint and return the JSON answer.

    Args:
        base: The collector's OTLP/HTTP endpoint (``http://127.0.0.1:4318``).
        path: The path, already quoted (``/v1/runs``).
        **query: Query parameters.

    Returns:
        The decoded JSON.

    Raises:
        ConfigError: The URL is not http(s), the collector is unreachable, or it answered an
            error (its ``error`` message is passed on).
    """
    return _fetch(base, path, query, _TIMEOUT_SECONDS, lambda answer: json.loads(answer.read()))


def get_file(base: str, path: str, dest: BinaryIO, **query: str) -> Mapping[str, str]:
    """``GET`` a file from the collector's HTTP endpoint into ``dest``, in chunks.

    Args:
        base: The collector's OTLP/HTTP endpoint (``http://127.0.0.1:4318``).
        path: The path, already quoted (``/v1/export``).
        dest: Where the body is written.
        **query: Query parameters.

    Returns:
        The answer's headers.

    Raises:
        ConfigError: As :func:`get_json`.
    """

    def save(answer: HTTPResponse) -> Mapping[str, str]:
        shutil.copyfileobj(answer, dest, 1 << 20)
        return dict(answer.headers.items())

    return _fetch(base, path, query, _FILE_TIMEOUT_SECONDS, save)


def _fetch(
    base: str,
    path: str,
    query: Mapping[str, str],
    timeout: float,
    read: Callable[[HTTPResponse], _T],
) -> _T:
    """``GET`` a path and ``read`` the answer, with errors in plain words."""
    request = _request(base, path, query)
    try:
        # https: the CA (and client certificate) of the OTLP variables, else the system's
        context = client_ssl_context() if base.startswith("https://") else None
        with urllib.request.urlopen(  # noqa: S310 - http(s) only, checked above
            request, timeout=timeout, context=context
        ) as answer:
            return read(answer)
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"collector at {base}: {_detail(exc)}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        said = socket_reason(reason) if isinstance(reason, OSError) else str(reason)
        raise ConfigError(f"collector at {base} is unreachable: {said}") from exc


def _request(base: str, path: str, query: Mapping[str, str]) -> urllib.request.Request:
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"--collector {base!r}: expected an http:// or https:// URL")
    url = base.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url)  # noqa: S310 - http(s) checked above
    token = os.environ.get(TOKEN_ENV)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    return request


def _detail(exc: urllib.error.HTTPError) -> str:
    """The ``error`` message of an error answer, else its reason."""
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError):
        return str(exc.reason)
