"""Optional authentication of OTLP requests: bearer tokens and API keys.

Both transports ask the same :class:`Authenticator`: gRPC with the call's metadata, HTTP with
the request's headers. Secrets are compared in constant time (:func:`hmac.compare_digest`,
every configured secret tried whatever matched before) and never logged or put in a message.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Final

from pydantic import SecretStr

from agentmesh.collector.settings import CollectorSettings

__all__ = ["Authenticator"]

_BEARER: Final = "bearer "
_MISSING: Final = (
    "authentication required: send `Authorization: Bearer <token>` or `x-api-key: <key>`"
)
_WRONG: Final = "authentication failed: the token or API key is not accepted"


class Authenticator:
    """Checks a request's credentials against the configured secrets.

    With no secret configured every request passes (authentication is off).

    Args:
        bearer_tokens: Accepted ``Authorization: Bearer`` tokens.
        api_keys: Accepted ``x-api-key`` values.

    Example:
        >>> auth = Authenticator(["s3cret"], [])
        >>> auth.check("Bearer s3cret", None) is None
        True
        >>> auth.check(None, None)
        'authentication required: send `Authorization: Bearer <token>` or `x-api-key: <key>`'
    """

    def __init__(self, bearer_tokens: Iterable[str], api_keys: Iterable[str]) -> None:
        self._tokens = tuple(t.encode("utf-8") for t in bearer_tokens if t)
        self._keys = tuple(k.encode("utf-8") for k in api_keys if k)

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> Authenticator:
        """Build the authenticator the settings configure.

        Args:
            settings: The collector's settings.

        Returns:
            The authenticator (off when no token and no key is set).
        """
        return cls(_reveal(settings.auth_bearer_tokens), _reveal(settings.auth_api_keys))

    @property
    def enabled(self) -> bool:
        """Whether requests must carry credentials."""
        return bool(self._tokens or self._keys)

    def check(self, authorization: str | None, api_key: str | None) -> str | None:
        """Check the credentials of one request.

        Args:
            authorization: The ``Authorization`` header or metadata value, if any.
            api_key: The ``x-api-key`` header or metadata value, if any.

        Returns:
            ``None`` when the request may proceed, else a plain explanation without secrets.
        """
        if not self.enabled:
            return None
        token: bytes | None = None
        if authorization is not None and authorization[: len(_BEARER)].lower() == _BEARER:
            token = authorization[len(_BEARER) :].strip().encode("utf-8")
        key = api_key.strip().encode("utf-8") if api_key is not None else None
        if token is None and key is None:
            return _MISSING
        accepted = False
        if token is not None:
            accepted |= _matches(token, self._tokens)
        if key is not None:
            accepted |= _matches(key, self._keys)
        return None if accepted else _WRONG


def _matches(candidate: bytes, secrets: tuple[bytes, ...]) -> bool:
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(candidate, secret)
    return found


def _reveal(secrets: Iterable[SecretStr]) -> list[str]:
    return [s.get_secret_value() for s in secrets]
