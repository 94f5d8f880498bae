"""``ControlClient``: the latest control document, kept in memory by a background long poll.

A daemon thread asks the collector ``GET <base>/v1/control?after=<version>&wait=<s>`` over one
kept-alive HTTP connection (stdlib :mod:`http.client`: no dependency). The collector answers as
soon as its document is newer than ``version``, else ``304 Not Modified`` after ``wait``
seconds; the client asks again at once. A request that is not a long poll (the first one, the
first after an outage) sends ``If-None-Match: "<version>"`` instead, answered ``304`` when
nothing changed. Answers that come back without a change are spaced by ``min_interval_s``, so a
collector that does not hold long polls is not hammered.

Fail-open: when the collector is unreachable or answers garbage, the last document is kept, the
failure is logged once per outage, and the thread waits a jittered, growing delay
(:class:`~._backoff.Backoff`) before trying again. After an outage the first request asks
without ``after`` (answered at once), so a collector that restarted with a smaller version is
followed. Readers (:attr:`ControlClient.document`) never block and never raise.

Example:
    >>> client = ControlClient("http://127.0.0.1:1")  # not started: no thread, no request
    >>> client.document.version, client.running
    (0, False)
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from agentmesh.core.log import get_logger
from agentmesh.instrumentation.control._backoff import Backoff
from agentmesh.instrumentation.control._document import EMPTY_DOCUMENT, ControlDocument
from agentmesh.instrumentation.control._url import control_document_url

__all__ = ["ControlClient", "ControlStats"]

_log = get_logger(__name__)

_MAX_WAIT_S: Final = 30.0
"""The collector holds a long poll at most this long."""
_READ_MARGIN_S: Final = 10.0
"""How much longer than ``wait`` a read may take before the connection is dropped."""
_MAX_BODY: Final = 8 * 1024 * 1024
_USER_AGENT: Final = "agentmesh-instrumentation/control"


class _BadAnswerError(ValueError):
    """The collector answered something else than a document or ``304``."""


@dataclass(slots=True)
class ControlStats:
    """What the client did since it started (for tests, logs and benchmarks).

    Attributes:
        polls: Requests answered (``200`` or ``304``).
        changes: Documents received with a new version.
        not_modified: ``304`` answers.
        failures: Requests that failed (connection error, timeout, bad status or body).
    """

    polls: int = 0
    changes: int = 0
    not_modified: int = 0
    failures: int = 0


class ControlClient:
    """Keeps the latest control document of a collector in memory.

    Call :meth:`start` once; read :attr:`document` as often as needed (a plain attribute read);
    call :meth:`stop` at shutdown.

    Args:
        base_url: The collector's OTLP/HTTP base URL (``http://collector:4318``).
        wait_s: How long the collector may hold each long poll (at most 30 s).
        min_interval_s: Least time between two requests that brought no change.
        connect_timeout_s: Longest time to open the connection.
        backoff: The delays after failures; 0.5 s doubling up to 30 s, jittered, by default.
        headers: Extra request headers (the collector's credentials: ``Authorization``,
            ``x-api-key``).

    Raises:
        ValueError: The URL is not ``http``/``https`` with a host, or a duration is invalid.
    """

    def __init__(
        self,
        base_url: str,
        *,
        wait_s: float = 25.0,
        min_interval_s: float = 0.5,
        connect_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"control: expected an http(s) URL with a host, got {base_url!r}")
        if not 0 <= wait_s <= _MAX_WAIT_S or min_interval_s < 0 or connect_timeout_s <= 0:
            raise ValueError("control: need 0 <= wait_s <= 30, min_interval_s >= 0, timeout > 0")
        self._base = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._wait_s = wait_s
        self._min_interval_s = min_interval_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff = backoff if backoff is not None else Backoff()
        self._headers = {
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            **(headers or {}),
        }
        self._document: ControlDocument = EMPTY_DOCUMENT
        self._known: int | None = None  # the version the collector last said it serves
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._thread: threading.Thread | None = None
        self._stats = ControlStats()

    @property
    def base_url(self) -> str:
        """The collector's OTLP/HTTP base URL."""
        return self._base

    @property
    def document(self) -> ControlDocument:
        """The latest document received (empty, version 0, until the first one arrives)."""
        return self._document

    @property
    def stats(self) -> ControlStats:
        """Counters of what the client did."""
        return self._stats

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the background thread (once; a stopped client is not restarted)."""
        with self._lock:
            if self._thread is not None or self._stopping.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="agentmesh-control", daemon=True)
            self._thread.start()
        _log.debug("agentmesh.control.started", url=self._base)

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the background thread, interrupting a long poll in flight (never raises).

        Args:
            timeout_s: Longest time to wait for the thread to end.
        """
        self._stopping.set()
        with self._lock:
            conn, thread = self._conn, self._thread
        sock = conn.sock if conn is not None else None
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        with self._changed:
            self._changed.notify_all()

    def wait_for_version(self, version: int, timeout_s: float) -> bool:
        """Block until a document of at least ``version`` is held (for tests and tools).

        Args:
            version: The version awaited.
            timeout_s: Longest wait.

        Returns:
            Whether the document's version reached ``version`` in time.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._document.version < version:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    return False
                self._changed.wait(left)
        return True

    def poll(self, *, long: bool = True) -> bool:
        """Ask the collector once, on the calling thread (not while the thread runs).

        Args:
            long: Long-poll (``after=<version>&wait=<wait_s>``) once a version is known;
                ``False`` asks for the current document at once.

        Returns:
            Whether a document with a new version was received.

        Raises:
            OSError: The collector could not be reached or the connection broke.
            http.client.HTTPException: The answer was not valid HTTP.
            ValueError: The answer was neither a control document nor ``304``.
        """
        known = self._known
        after = known if long else None
        url = control_document_url(self._prefix, after=after, wait_s=self._wait_s)
        headers = self._headers
        if after is None and known is not None:  # a long poll says it with ``after`` instead
            headers = {**headers, "If-None-Match": f'"{known}"'}
        conn = self._connection()
        try:
            conn.request("GET", url, headers=headers)
            response = conn.getresponse()
            body = response.read(_MAX_BODY + 1)
        except BaseException:
            self._drop_connection()
            raise
        if response.will_close:
            self._drop_connection()
        if response.status == http.client.NOT_MODIFIED:
            self._stats.polls += 1
            self._stats.not_modified += 1
            return False
        if response.status != http.client.OK or len(body) > _MAX_BODY:
            self._drop_connection()
            raise _BadAnswerError(f"control: HTTP {response.status} from {self._base}")
        document = ControlDocument.parse(body)
        self._stats.polls += 1
        return self._accept(document)

    # --- internals -------------------------------------------------------------------------

    def _accept(self, document: ControlDocument) -> bool:
        # A 200 is the collector saying "this differs from what you hold": a smaller version
        # means it restarted (without shared state) and is followed too.
        self._known = document.version
        if document.version == self._document.version:
            return False
        with self._changed:
            self._document = document
            self._changed.notify_all()
        self._stats.changes += 1
        _log.debug(
            "agentmesh.control.document",
            version=document.version,
            runs=len(document.runs),
            breakers=len(document.breakers),
        )
        return True

    def _connection(self) -> http.client.HTTPConnection:
        with self._lock:
            conn = self._conn
        if conn is not None:
            return conn
        factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = factory(self._host, self._port, timeout=self._connect_timeout_s)
        conn.connect()
        sock = conn.sock
        if isinstance(sock, socket.socket):
            sock.settimeout(self._wait_s + _READ_MARGIN_S)
        with self._lock:
            self._conn = conn
        if self._stopping.is_set():  # stop() ran while connecting: it saw no socket
            self._drop_connection()
            raise ConnectionAbortedError("control: client stopped")
        return conn

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def _run(self) -> None:
        resync = True  # the first request, and the first after an outage, asks at once
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                changed = self.poll(long=not resync)
            except Exception as exc:  # noqa: BLE001 - fail-open: keep the last document
                if self._stopping.is_set():
                    break
                self._failed(exc)
                resync = True
                self._stopping.wait(self._backoff.next_delay())
                continue
            if self._backoff.failures:
                _log.info("agentmesh.control.reconnected", url=self._base)
                self._backoff.reset()
            resync = False
            if not changed:
                rest = self._min_interval_s - (time.monotonic() - began)
                if rest > 0:
                    self._stopping.wait(rest)
        self._drop_connection()

    def _failed(self, exc: Exception) -> None:
        self._stats.failures += 1
        if self._backoff.failures == 0:  # once per outage
            with suppress(Exception):
                _log.warning(
                    "agentmesh.control.unreachable",
                    url=self._base,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    version=self._document.version,
                )
