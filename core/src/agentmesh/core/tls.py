"""The TLS of HTTPS calls to a collector: the CA and client certificate the OTLP exporters use.

An app talks to an ``https://`` collector two ways: the OTLP/gRPC span exporter, and plain
HTTPS (the control and route-table long polls, ``resume`` plans); the ``agentmesh`` command
asks a running collector with ``--collector URL``. All follow the standard OpenTelemetry
variables, so one set configures them:

- ``OTEL_EXPORTER_OTLP_CERTIFICATE`` (or ``OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE``): PEM CA
  certificates the collector's certificate must chain to; the system's CAs when unset;
- ``OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`` and ``OTEL_EXPORTER_OTLP_CLIENT_KEY`` (or their
  ``TRACES_`` forms): the app's certificate and key, for a collector that requires one
  (mutual TLS).

A file that cannot be read surfaces as ``OSError`` where the connection is made, which the
callers treat like any network failure (logged, retried later, never raised into the app).
"""

from __future__ import annotations

import os
import ssl

__all__ = ["client_ssl_context"]


def _variable(name: str) -> str | None:
    value = os.environ.get(f"OTEL_EXPORTER_OTLP_{name}") or os.environ.get(
        f"OTEL_EXPORTER_OTLP_TRACES_{name}"
    )
    return value or None


def client_ssl_context() -> ssl.SSLContext:
    """Build the SSL context for HTTPS calls to the collector, from the OTLP variables.

    Returns:
        A verifying client context (hostname checked), with the app's certificate loaded
        when one is configured.

    Raises:
        OSError: A configured file cannot be read, or is not PEM (``ssl.SSLError``).
    """
    context = ssl.create_default_context(cafile=_variable("CERTIFICATE"))
    certificate = _variable("CLIENT_CERTIFICATE")
    if certificate is not None:
        context.load_cert_chain(certificate, _variable("CLIENT_KEY"))
    return context
