"""TLS for the receivers: the certificate both serve, and the client certificates they may require.

With ``tls_cert_file`` and ``tls_key_file`` set, the OTLP/gRPC and OTLP/HTTP receivers (and so
the API, the dashboard and ``/metrics`` on the HTTP port) speak TLS only, and their endpoints
are ``https://``; with ``tls_client_ca_file`` too, a client must present a certificate signed
by one of those CAs (mutual TLS) before any request is read. The files are read and checked
when the receivers are built: a missing file, a key that is not the certificate's, or text
that is not PEM is a :class:`~agentmesh.core.errors.ConfigError` naming the setting, before
anything listens. TLS 1.2 is the oldest version accepted.

Renewed certificates are picked up without a restart (:class:`ReloadingTls`): when a client
connects, and at most every ``tls_reload_seconds`` (60 by default; 0: never), the files'
modification times and sizes are compared with those loaded; changed files are read and
checked, and the next handshakes use them (gRPC through its certificate fetcher, HTTP by
switching the connection's SSL context as its handshake starts). Connections already open keep
their session. Files caught half-written, or otherwise wrong, are logged and the certificate in
use stays until the files are right.

Example:
    >>> from agentmesh.collector.settings import CollectorSettings
    >>> ServerTls.from_settings(CollectorSettings.load()) is None  # plaintext by default
    True
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError
from agentmesh.core.log import get_logger

if TYPE_CHECKING:
    import grpc

__all__ = ["ReloadingTls", "ServerTls"]

log = get_logger(__name__)


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
        context: A server-side SSL context on the files for the HTTP receiver (TLS 1.2 or
            later; client certificates required when mutual), built when they were checked.
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    certificate_chain: bytes = field(repr=False)
    private_key: bytes = field(repr=False)  # never in a log line or a traceback
    client_ca: bytes | None = field(repr=False)
    context: ssl.SSLContext = field(repr=False, compare=False)

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
        return cls.load(cert, key, client_ca)

    @classmethod
    def load(cls, cert: Path, key: Path, client_ca: Path | None) -> ServerTls:
        """Read and check the TLS files.

        Args:
            cert: The PEM certificate chain.
            key: Its PEM private key.
            client_ca: PEM CA certificates for client certificates, or ``None``.

        Returns:
            The material.

        Raises:
            ConfigError: A file cannot be read, is not PEM, or the key is not the
                certificate's.
        """
        return cls(
            cert_file=cert,
            key_file=key,
            client_ca_file=client_ca,
            certificate_chain=_read("tls_cert_file", cert),
            private_key=_read("tls_key_file", key),
            client_ca=None if client_ca is None else _read("tls_client_ca_file", client_ca),
            # checks the PEM and that the key matches, before anything listens
            context=_server_context(cert, key, client_ca),
        )

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate."""
        return self.client_ca is not None

    def grpc_configuration(self) -> grpc.ServerCertificateConfiguration:
        """The material as a gRPC server certificate configuration.

        Returns:
            The configuration.
        """
        import grpc  # only the gRPC receiver needs it

        return grpc.ssl_server_certificate_configuration(
            [(self.private_key, self.certificate_chain)], root_certificates=self.client_ca
        )

    def files(self) -> tuple[Path, ...]:
        """The files the material was read from."""
        extra = () if self.client_ca_file is None else (self.client_ca_file,)
        return (self.cert_file, self.key_file, *extra)


def _name(setting: str) -> str:
    return CollectorSettings.env_var(setting)


def _server_context(cert_file: Path, key_file: Path, client_ca_file: Path | None) -> ssl.SSLContext:
    """A server-side SSL context on the files (the check that they are a certificate and its key).

    Returns:
        The context (TLS 1.2 or later; client certificates required when mutual).

    Raises:
        ConfigError: The files are not a PEM certificate and its key, or the client CA
            file holds no PEM certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{_name('tls_cert_file')}={cert_file} and {_name('tls_key_file')}="
            f"{key_file}: not a PEM certificate and its private key ({exc})"
        ) from exc
    if client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{_name('tls_client_ca_file')}={client_ca_file}: no PEM CA "
                f"certificate in it ({exc})"
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{_name(setting)}={path}: cannot read it ({exc.strerror or exc})"
        ) from exc


class ReloadingTls:
    """The receivers' TLS, read again when its files change (see the module).

    Args:
        tls: The material loaded at start.
        reload_seconds: Least time between two looks at the files (0: never look again).
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        tls: ServerTls,
        *,
        reload_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tls = tls
        self._reload = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()  # gRPC asks from its own threads
        self._stamp = _stamp(tls.files())
        self._next_look = clock() + reload_seconds
        self._context = tls.context
        self._generation = 0
        self._given_to_grpc = 0
        self.reloads = 0
        """Times new files were loaded."""

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> ReloadingTls | None:
        """Load the TLS files the settings name.

        Args:
            settings: The collector's settings.

        Returns:
            The TLS, or ``None`` when it is off.

        Raises:
            ConfigError: A file cannot be read, is not PEM, or the key is not the
                certificate's.
        """
        tls = ServerTls.from_settings(settings)
        if tls is None:
            return None
        return cls(tls, reload_seconds=settings.tls_reload_seconds)

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate."""
        return self._tls.mutual

    def refresh(self) -> bool:
        """Look at the files when a look is due; load them when they changed.

        Returns:
            Whether new files were loaded.
        """
        if self._reload <= 0:
            return False
        with self._lock:
            now = self._clock()
            if now < self._next_look:
                return False
            self._next_look = now + self._reload
            stamp = _stamp(self._tls.files())
            if stamp == self._stamp:
                return False
            self._stamp = stamp  # a wrong file is reported once, not at every connection
            old = self._tls
            try:
                tls = ServerTls.load(old.cert_file, old.key_file, old.client_ca_file)
            except ConfigError as exc:
                log.warning("new TLS files refused; the certificate in use stays", error=str(exc))
                return False
            self._tls, self._context = tls, tls.context
            self._generation += 1
            self.reloads += 1
        log.info("TLS certificate reloaded", cert_file=str(tls.cert_file))
        return True

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """GRPC server credentials that take the reloaded files on new connections.

        Returns:
            Credentials for ``Server.add_secure_port``.
        """
        import grpc  # only the gRPC receiver needs it

        return grpc.dynamic_ssl_server_credentials(
            self._tls.grpc_configuration(),
            self._grpc_fetch,  # pyright: ignore[reportArgumentType]  # None: documented, unstubbed
            require_client_authentication=self.mutual,
        )

    def _grpc_fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """GRPC's fetcher: a new configuration when the files changed since it last got one."""
        try:
            self.refresh()
            with self._lock:
                if self._given_to_grpc == self._generation:
                    return None
                self._given_to_grpc = self._generation
                tls = self._tls
            return tls.grpc_configuration()
        except Exception:  # never fail a handshake over a reload: the old certificate stays
            log.exception("TLS reload check failed")
            return None

    def ssl_context(self) -> ssl.SSLContext:
        """The HTTP receiver's SSL context: each handshake switches to the newest files.

        Returns:
            The context to serve with.
        """
        context = self._context  # the one built (and checked) at load
        context.sni_callback = self._switch
        return context

    def _switch(self, connection: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        try:
            self.refresh()
            if self._generation:  # files were reloaded: hand the connection the new context
                connection.context = self._context
        except Exception:
            log.exception("TLS reload check failed")


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    """Modification time and size of each file (zeros for one that cannot be read)."""
    stamps: list[tuple[int, int]] = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            stamps.append((0, 0))
        else:
            stamps.append((info.st_mtime_ns, info.st_size))
    return tuple(stamps)
