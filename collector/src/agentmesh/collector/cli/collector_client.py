"""Reading a running collector's HTTP API from the command line (``--collector URL``).

With ``AGENTMESH_API_TOKEN`` set, requests carry ``Authorization: Bearer <token>``, for a
collector that requires credentials (``AGENTMESH_COLLECTOR_AUTH_BEARER_TOKENS``).
"""

from __future__ import annotations

import http.client
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

    def decode(answer: HTTPResponse) -> object:
        try:
            return json.loads(answer.read())
        except ValueError as exc:
            raise ConfigError(
                f"collector at {base} answered {path} with something that is not JSON: is "
                "this the collector's OTLP/HTTP endpoint (port 4318 by default)?"
            ) from exc

    return _fetch(base, path, query, _TIMEOUT_SECONDS, decode)


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
    except http.client.HTTPException as exc:  # not an HTTP server: gRPC's port, say
        raise ConfigError(
            f"collector at {base} did not answer in HTTP ({type(exc).__name__}): is this the "
            "OTLP/gRPC port? The query API is on the OTLP/HTTP port (4318 by default)"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        said = socket_reason(reason) if isinstance(reason, OSError) else str(reason)
        raise ConfigError(f"collector at {base} is unreachable: {said}") from exc


def _request(base: str, path: str, query: Mapping[str, str]) -> urllib.request.Request:
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"--collector {base!r}: expected an http:// or https:// URL")
    try:
        parts = urllib.parse.urlsplit(base)
        parts.port  # noqa: B018 - raises for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise ConfigError(f"--collector {base!r} is not a valid URL: {exc}") from exc
    if not parts.hostname:
        raise ConfigError(f"--collector {base!r} names no host")
    url = base.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url)  # noqa: S310 - http(s) checked above
    token = os.environ.get(TOKEN_ENV, "").strip()  # a secret file's trailing newline
    if token:
        if not token.isascii() or not token.isprintable():
            raise ConfigError(
                f"{TOKEN_ENV} holds characters an HTTP header cannot carry (non-ASCII or "
                "control characters): set it to the token alone"
            )
        request.add_header("Authorization", f"Bearer {token}")
    return request


def _detail(exc: urllib.error.HTTPError) -> str:
    """The ``error`` message of an error answer (else its text, else its reason), with a hint."""
    body = exc.read(4096)
    try:
        detail = str(json.loads(body).get("error", exc.reason))
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace").strip()
        detail = text if text and len(text) < 300 else str(exc.reason)
    if exc.code == 401:  # what to do about it, from the command line
        detail += (
            f"; {TOKEN_ENV} holds a token the collector does not accept"
            if os.environ.get(TOKEN_ENV, "").strip()
            else f"; set {TOKEN_ENV} to one of the collector's tokens"
        ) + " (AGENTMESH_COLLECTOR_AUTH_BEARER_TOKENS)"
    return detail
