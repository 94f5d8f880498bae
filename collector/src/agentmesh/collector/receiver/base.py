"""What the OTLP/gRPC and OTLP/HTTP receivers share: settings, ingestor, auth, address, stats.

A receiver is an async context manager that owns its server: entering starts it, leaving stops
it. Subclasses bind the server (:meth:`start`, :meth:`stop`) and say which host they bind to
and whether they are running.
"""

from __future__ import annotations

import errno
import socket
from abc import ABC, abstractmethod
from types import TracebackType
from typing import ClassVar, Self

from agentmesh.collector.receiver.auth import Authenticator
from agentmesh.collector.receiver.decode_pool import DecodePool
from agentmesh.collector.receiver.ingest import Ingestor, ReceiverStats, SpanSink
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.receiver.tls import ReloadingTls
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ReceiverError

__all__ = ["OtlpReceiver", "bind_problem", "hostport"]


class OtlpReceiver(ABC):
    """The part every OTLP receiver has.

    Args:
        sink: Receives each decoded batch.
        settings: Defaults to :meth:`CollectorSettings.load`.
        decode_pool: Worker processes that decode requests; without one, requests are decoded
            in this process.
        tls: The TLS to serve, shared by the receivers of one collector (one look at the
            files per rotation); by default, loaded from the settings.
    """

    transport: ClassVar[str] = "OTLP"
    """How errors name the receiver (``OTLP/HTTP`` …)."""

    def __init__(
        self,
        sink: SpanSink,
        settings: CollectorSettings | None = None,
        *,
        decode_pool: DecodePool | None = None,
        tls: ReloadingTls | None = None,
    ) -> None:
        self._settings = settings if settings is not None else CollectorSettings.load()
        self._ingestor = Ingestor(sink, DecodeLimits.from_settings(self._settings), decode_pool)
        self._pooled = decode_pool is not None
        self._auth = Authenticator.from_settings(self._settings)
        self._tls = tls if tls is not None else ReloadingTls.from_settings(self._settings)
        self._port = 0

    @property
    @abstractmethod
    def host(self) -> str:
        """The interface the server binds to."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """Whether the server is started."""

    @property
    def port(self) -> int:
        """The bound TCP port (the free port chosen when configured with 0).

        Raises:
            ReceiverError: The receiver is not running.
        """
        if not self.running:
            raise ReceiverError(f"the {self.transport} receiver is not running")
        return self._port

    @property
    def endpoint(self) -> str:
        """The base URL, for example ``http://127.0.0.1:4317`` (``https://`` with TLS)."""
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{hostport(self.host, self.port)}"

    @property
    def tls(self) -> ReloadingTls | None:
        """The TLS the receiver serves, or ``None`` for plaintext."""
        return self._tls

    @property
    def stats(self) -> ReceiverStats:
        """A snapshot of the receiver's counters."""
        return self._ingestor.stats

    @abstractmethod
    async def start(self) -> None:
        """Bind and start the server."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the server, letting in-flight requests finish within the grace period."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def hostport(host: str, port: int) -> str:
    """Join a host and a port, bracketing an IPv6 address.

    Args:
        host: Host name or address.
        port: TCP port.

    Returns:
        ``host:port`` or ``[v6]:port``.
    """
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def bind_problem(host: str, port: int, *, reuse_address: bool = False) -> str | None:
    """Say in words why a TCP port cannot be listened on (gRPC only says that it failed).

    Args:
        host: The interface.
        port: The port.
        reuse_address: Bind as the servers do (``SO_REUSEADDR``): a port whose connections of
            a stopped collector linger (``TIME_WAIT``) counts as free.

    Returns:
        ``address already in use (…)``, ``no such address on this machine``, ``permission
        denied (…)`` or the system's message; ``None`` when a listener can be made now.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return f"unknown host {host!r}"
    family, kind, proto, _, sockaddr = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            if reuse_address:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
            probe.listen(1)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "address already in use (another collector, or another program, listens there)"
        if exc.errno == errno.EADDRNOTAVAIL:
            return "no such address on this machine"
        if exc.errno == errno.EACCES:
            return "permission denied (ports below 1024 need privileges)"
        return exc.strerror or str(exc)
    return None
