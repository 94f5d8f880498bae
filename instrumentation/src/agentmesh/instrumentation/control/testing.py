"""``ControlServerThread``: the collector's ``/v1/control`` endpoint, alone, for tests.

A real HTTP server (stdlib :mod:`http.server`, one thread per request) on a free local port,
with the collector's semantics: ``ETag: "<version>"``, ``If-None-Match`` answered ``304``, and
long polling (``?after=<version>&wait=<s>`` answers as soon as the version is newer, else
``304`` after ``wait`` seconds, at most 30). Tests publish documents and read what was asked.

Example:
    >>> with ControlServerThread() as server:
    ...     server.publish(runs={"r1": {"action": "stop", "type": "ping_pong"}})
    1
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qs, urlsplit

from agentmesh.instrumentation.control._url import CONTROL_PATH

__all__ = ["ControlRequest", "ControlServerThread"]

_MAX_WAIT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One request the server answered.

    Attributes:
        after: The ``after`` parameter (``None``: not a long poll).
        wait_s: The ``wait`` parameter, if any.
        if_none_match: The ``If-None-Match`` header, if any.
        status: The status answered.
        version: The version held when answering.
        held: Whether the request waited for a change (a long poll that was held).
        authorization: The ``Authorization`` header, if any.
    """

    after: int | None
    wait_s: float | None
    if_none_match: str | None
    status: int
    version: int
    held: bool
    authorization: str | None = None


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # pyright: ignore[reportIncompatibleVariableOverride]
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing (tests stay quiet)."""

    def setup(self) -> None:
        """Track the connection, so stopping the server closes it."""
        super().setup()
        self.server.owner.opened(self.connection)

    def finish(self) -> None:
        """Forget the connection."""
        self.server.owner.closed(self.connection)
        super().finish()

    def do_GET(self) -> None:
        """Answer a read of the control document."""
        parts = urlsplit(self.path)
        if parts.path != CONTROL_PATH:
            self._send(HTTPStatus.NOT_FOUND, None)
            return
        query = parse_qs(parts.query)
        after = _int(query.get("after"))
        wait = _float(query.get("wait"))
        etag = self.headers.get("If-None-Match")
        status, body, version, held = self.server.owner.answer(after, wait, etag)
        auth = self.headers.get("Authorization")
        self.server.owner.record(ControlRequest(after, wait, etag, status, version, held, auth))
        self._send(status, body, version)

    def _send(self, status: int, body: bytes | None, version: int | None = None) -> None:
        self.send_response(status)
        if version is not None:
            self.send_header("ETag", f'"{version}"')
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if body is not None else 0))
        self.end_headers()
        if body is not None:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Ignore clients that went away (a stopped client, a stopped server)."""

    def __init__(self, address: tuple[str, int], owner: ControlServerThread) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


def _int(values: list[str] | None) -> int | None:
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


def _float(values: list[str] | None) -> float | None:
    try:
        return float(values[0]) if values else None
    except ValueError:
        return None


class ControlServerThread:
    """Serves a control document like the collector does, from a background thread.

    Args:
        host: The address to listen on.
        port: The port; a free one by default (``0``). Give the port of a stopped server to
            bring "the collector" back at the same address.
        version: The version of the initial (empty) document.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, version: int = 0) -> None:
        self._address = (host, port)
        self._changed = threading.Condition()
        self._version = version
        self._document: dict[str, Any] = {"version": version, "runs": {}, "breakers": {}}
        self._requests: list[ControlRequest] = []
        self._closing = False
        self._holding = 0
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (after :meth:`start`)."""
        return self._server.server_address[1] if self._server is not None else self._address[1]

    @property
    def base_url(self) -> str:
        """``http://host:port``: the OTLP/HTTP base a client is given."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def version(self) -> int:
        """The version served."""
        return self._version

    @property
    def requests(self) -> list[ControlRequest]:
        """The requests answered so far, in order (a copy)."""
        with self._changed:
            return list(self._requests)

    def record(self, request: ControlRequest) -> None:
        """Remember an answered request (the handler calls this).

        Args:
            request: The request.
        """
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def opened(self, connection: socket.socket) -> None:
        """Track a client connection (the handler calls this).

        Args:
            connection: The connection.
        """
        with self._changed:
            self._connections.add(connection)

    def closed(self, connection: socket.socket) -> None:
        """Forget a client connection (the handler calls this).

        Args:
            connection: The connection.
        """
        with self._changed:
            self._connections.discard(connection)

    def publish(
        self,
        runs: dict[str, dict[str, Any]] | None = None,
        breakers: dict[str, dict[str, Any]] | None = None,
        *,
        version: int | None = None,
    ) -> int:
        """Serve a new document and wake the long polls.

        Args:
            runs: Decisions by run id.
            breakers: Breakers by model.
            version: The new version; the next one by default (a smaller one simulates a
                collector that restarted without shared state).

        Returns:
            The version now served.
        """
        with self._changed:
            self._version = self._version + 1 if version is None else version
            self._document = {
                "version": self._version,
                "runs": runs or {},
                "breakers": breakers or {},
            }
            self._changed.notify_all()
            return self._version

    def publish_raw(self, body: object) -> None:
        """Serve any JSON value as the document, with the next version (for malformed answers).

        Args:
            body: The JSON value.
        """
        with self._changed:
            self._version += 1
            self._document = {"raw": body}
            self._changed.notify_all()

    def wait_for_requests(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` requests were answered.

        Args:
            count: How many.
            timeout_s: Longest wait.

        Returns:
            Whether they were.
        """
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= count, timeout_s)

    def wait_for_held_poll(self, timeout_s: float) -> bool:
        """Block until a long poll is being held (waiting for a change).

        Args:
            timeout_s: Longest wait.

        Returns:
            Whether one is.
        """
        with self._changed:
            return self._changed.wait_for(lambda: self._holding > 0, timeout_s)

    def answer(
        self, after: int | None, wait_s: float | None, etag: str | None
    ) -> tuple[int, bytes | None, int, bool]:
        """Decide the answer to one request (the handler calls this).

        Args:
            after: The ``after`` parameter.
            wait_s: The ``wait`` parameter.
            etag: The ``If-None-Match`` header.

        Returns:
            Status, body, version served and whether the request was held.
        """
        with self._changed:
            held = False
            if after is not None and self._version <= after and not self._closing:
                held = True
                wait = min(max(wait_s or 0.0, 0.0), _MAX_WAIT_S)
                self._holding += 1
                self._changed.notify_all()
                try:
                    self._changed.wait_for(
                        lambda: self._version > after or self._closing, timeout=wait
                    )
                finally:
                    self._holding -= 1
            if self._closing:
                return HTTPStatus.SERVICE_UNAVAILABLE, None, self._version, held
            if after is not None and self._version <= after:
                return HTTPStatus.NOT_MODIFIED, None, self._version, held
            if after is None and etag == f'"{self._version}"':
                return HTTPStatus.NOT_MODIFIED, None, self._version, held
            document = self._document.get("raw", self._document)
            return HTTPStatus.OK, json.dumps(document).encode(), self._version, held

    def start(self) -> None:
        """Listen and serve from a daemon thread."""
        self._closing = False
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="control-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: held long polls end, client connections and the port are closed."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server, self._server = self._server, None
        if server is not None:
            self._address = (self._address[0], server.server_address[1])
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
