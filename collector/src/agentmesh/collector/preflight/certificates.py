"""The receivers' TLS: files that load, a key that matches, a certificate not about to expire."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from agentmesh.collector.preflight.finding import Finding
from agentmesh.collector.receiver.tls import ServerTls
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError

__all__ = ["RENEW_DAYS", "check_tls"]

RENEW_DAYS: Final = 14
"""A certificate expiring within this many days is a warning."""

_LOOPBACK: Final = ("127.0.0.1", "::1", "localhost")


def check_tls(settings: CollectorSettings, *, now: float | None = None) -> Finding:
    """Check the TLS the receivers would serve.

    Args:
        settings: The collector's settings.
        now: The time to measure expiry from (Unix seconds); now by default.

    Returns:
        ``ok`` with the certificate's subject and days left; ``warn`` when it expires within
        :data:`RENEW_DAYS` days, or when TLS is off while tokens are required on an address
        other hosts reach; ``fail`` when a file is wrong or the certificate has expired.
    """
    try:
        tls = ServerTls.from_settings(settings)
    except ConfigError as exc:
        return Finding("tls", "fail", str(exc))
    if tls is None:
        guarded = bool(settings.auth_bearer_tokens or settings.auth_api_keys)
        exposed = any(h not in _LOOPBACK for h in (settings.grpc_host, settings.http_host))
        if guarded and exposed:
            return Finding(
                "tls",
                "warn",
                "off, while tokens are required on an address other hosts reach: they travel "
                "in clear (set AGENTMESH_COLLECTOR_TLS_CERT_FILE and _KEY_FILE)",
            )
        return Finding("tls", "ok", "off (plaintext)")
    mutual = "; client certificates required" if tls.mutual else ""
    expiry = _not_after(tls.cert_file)
    if expiry is None:
        return Finding("tls", "ok", f"{tls.cert_file}{mutual} (expiry not read)")
    subject, not_after = expiry
    days = (not_after - (time.time() if now is None else now)) / 86_400
    if days < 0:
        return Finding("tls", "fail", f"{tls.cert_file} ({subject}) expired {-days:.0f} days ago")
    detail = f"{tls.cert_file} ({subject}) expires in {days:.0f} days{mutual}"
    if days < RENEW_DAYS:
        return Finding("tls", "warn", detail + ": renew it (it is reloaded without a restart)")
    return Finding("tls", "ok", detail)


def _not_after(cert_file: Path) -> tuple[str, float] | None:
    """The first certificate's subject and expiry, read by the ``ssl`` module's decoder."""
    decode: Callable[[str], dict[str, Any]] | None = getattr(
        getattr(ssl, "_ssl", None), "_test_decode_cert", None
    )
    if decode is None:  # not every Python build has the decoder
        return None
    try:
        decoded = decode(str(cert_file))
        not_after = ssl.cert_time_to_seconds(str(decoded["notAfter"]))
    except (ssl.SSLError, OSError, KeyError, ValueError):
        return None
    names = [
        value for rdn in decoded.get("subject", ()) for key, value in rdn if key == "commonName"
    ]
    alt = [value for _, value in decoded.get("subjectAltName", ())]
    return (f"CN={names[0]}" if names else ", ".join(alt[:3]) or "no subject"), not_after
