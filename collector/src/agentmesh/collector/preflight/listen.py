"""Can the collector listen where it is told to? Each address is bound once, then let go."""

from __future__ import annotations

import errno
import socket

from agentmesh.collector.preflight.finding import Finding
from agentmesh.collector.receiver.base import hostport

__all__ = ["check_port"]


def check_port(check: str, host: str, port: int) -> Finding:
    """Bind ``host:port`` as the receiver would, and release it.

    Args:
        check: The finding's name (``grpc port``, ``http port``).
        host: The interface.
        port: The TCP port (0: any free port).

    Returns:
        ``ok`` when the address can be bound, ``fail`` with the reason otherwise.
    """
    address = hostport(host, port)
    if port == 0:
        return Finding(check, "ok", f"{host}: a free port is chosen at start")
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return Finding(check, "fail", f"{address}: unknown host ({exc.strerror})")
    family, kind, proto, _, sockaddr = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
            probe.listen(1)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        hint = " (a collector already running?)" if exc.errno == errno.EADDRINUSE else ""
        return Finding(check, "fail", f"cannot listen on {address}: {reason}{hint}")
    return Finding(check, "ok", f"{address} is free")
