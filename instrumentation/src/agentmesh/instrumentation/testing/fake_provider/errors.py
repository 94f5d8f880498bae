"""Error responses in each provider's shape (OpenAI and Anthropic)."""

from __future__ import annotations

from aiohttp import web

from agentmesh.instrumentation.testing.fake_provider.jsontypes import JSONObject
from agentmesh.instrumentation.testing.fake_provider.script import ErrorScript

__all__ = [
    "anthropic_error_response",
    "anthropic_error_type",
    "openai_error_response",
    "openai_error_type",
]

_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def openai_error_type(status: int) -> tuple[str, str | None]:
    """Return OpenAI's usual error ``type`` and ``code`` for an HTTP status.

    Args:
        status: The HTTP status.

    Returns:
        ``(type, code)``.
    """
    if status == 429:
        return "requests", "rate_limit_exceeded"
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


def anthropic_error_type(status: int) -> str:
    """Return Anthropic's usual error ``type`` for an HTTP status.

    Args:
        status: The HTTP status.

    Returns:
        The error type.
    """
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _headers(error: ErrorScript | None, request_id: str, id_header: str) -> dict[str, str]:
    headers = {id_header: request_id}
    retry_after = error.retry_after_header() if error is not None else None
    if retry_after is not None:
        headers["retry-after"] = retry_after
    return headers


def openai_error_response(
    status: int,
    message: str,
    *,
    request_id: str,
    error: ErrorScript | None = None,
    param: str | None = None,
) -> web.Response:
    """Build an OpenAI error response: ``{"error": {"message", "type", "param", "code"}}``.

    Args:
        status: The HTTP status.
        message: The message.
        request_id: Value of the ``x-request-id`` header.
        error: The scripted error, for its ``type`` and ``retry-after``.
        param: The request parameter at fault, if any.

    Returns:
        The response.
    """
    error_type, code = openai_error_type(status)
    if error is not None and error.type is not None:
        error_type = error.type
    body: JSONObject = {
        "error": {"message": message, "type": error_type, "param": param, "code": code}
    }
    return web.json_response(
        body, status=status, headers=_headers(error, request_id, "x-request-id")
    )


def anthropic_error_response(
    status: int,
    message: str,
    *,
    request_id: str,
    error: ErrorScript | None = None,
) -> web.Response:
    """Build an Anthropic error response: ``{"type": "error", "error": {"type", "message"}}``.

    Args:
        status: The HTTP status.
        message: The message.
        request_id: Value of the ``request-id`` header (and of the body's ``request_id``).
        error: The scripted error, for its ``type`` and ``retry-after``.

    Returns:
        The response.
    """
    error_type = error.type if error is not None and error.type else anthropic_error_type(status)
    body: JSONObject = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
    return web.json_response(body, status=status, headers=_headers(error, request_id, "request-id"))
