"""TLS for the receivers: the certificate both serve, and the client certificates they may require.

With ``tls_cert_file`` and ``tls_key_file`` set, the OTLP/gRPC and OTLP/HTTP receivers (and so
the API, the dashboard and ``/metrics`` on the HTTP port) speak TLS only, and their endpoints
are ``https://``; with ``tls_client_ca_file`` too, a client must present a certificate signed
by one of those CAs (mutual TLS) before any request is read. The files are read and checked
when the receivers are built: a missing file, a key that is not the certificate's, or text
that is not PEM is a :class:`~agentmesh.core.errors.ConfigError` naming the setting, before
anything listens. TLS 1.2 is the oldest version accepted. Restart the collector to load
renewed certificates.

Example:
    >>> from agentmesh.collector.settings import CollectorSettings
    >>> ServerTls.from_settings(CollectorSettings.load()) is None  # plaintext by default
    True
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError

if TYPE_CHECKING:
    import grpc

__all__ = ["ServerTls"]


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The receivers' TLS material, read and checked.

    Attributes:
        cert_file: The PEM certificate chain served.
        key_file: Its PEM private key.
        client_ca_file: PEM CA certificates client certificates must be signed by (mutual
            TLS), or ``None``: clients need no certificate.
        certificate_chain: The certificate chain's bytes.
        private_key: The key's bytes.
        client_ca: The client CAs' bytes, or ``None``.
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    certificate_chain: bytes = field(repr=False)
    private_key: bytes = field(repr=False)  # never in a log line or a traceback
    client_ca: bytes | None = field(repr=False)

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> ServerTls | None:
        """Read the TLS files the settings name.

        Args:
            settings: The collector's settings.

        Returns:
            The material, or ``None`` when TLS is off (no ``tls_cert_file``).

        Raises:
            ConfigError: A file cannot be read, is not PEM, or the key is not the
                certificate's.
        """
        cert, key, client_ca = (
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_client_ca_file,
        )
        if cert is None or key is None:
            return None
        tls = cls(
            cert_file=cert,
            key_file=key,
            client_ca_file=client_ca,
            certificate_chain=_read("tls_cert_file", cert),
            private_key=_read("tls_key_file", key),
            client_ca=None if client_ca is None else _read("tls_client_ca_file", client_ca),
        )
        tls.ssl_context()  # checks the PEM and that the key matches, before anything listens
        return tls

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate."""
        return self.client_ca is not None

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """The gRPC server's credentials.

        Returns:
            Credentials for ``Server.add_secure_port``.
        """
        import grpc  # only the gRPC receiver needs it

        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.mutual,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side SSL context for the HTTP receiver.

        Returns:
            The context (TLS 1.2 or later; client certificates required when mutual).

        Raises:
            ConfigError: The files are not a PEM certificate and its key, or the client CA
                file holds no PEM certificate.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{_name('tls_cert_file')}={self.cert_file} and {_name('tls_key_file')}="
                f"{self.key_file}: not a PEM certificate and its private key ({exc})"
            ) from exc
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(
                    f"{_name('tls_client_ca_file')}={self.client_ca_file}: no PEM CA "
                    f"certificate in it ({exc})"
                ) from exc
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _name(setting: str) -> str:
    return CollectorSettings.env_var(setting)


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{_name(setting)}={path}: cannot read it ({exc.strerror or exc})"
        ) from exc
