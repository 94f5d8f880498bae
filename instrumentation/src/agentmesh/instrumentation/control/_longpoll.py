"""``LongPollClient``: a versioned document, kept in memory by a background HTTP long poll.

The mechanism shared by :class:`~agentmesh.instrumentation.control.ControlClient` and
:class:`~agentmesh.instrumentation.route_table.RouteTableClient`. A daemon thread asks the
collector ``GET <base><path>?after=<version>&wait=<s>`` over one kept-alive HTTP connection
(stdlib :mod:`http.client`: no dependency). The collector answers as soon as its document is
newer than ``version``, else ``304 Not Modified`` after ``wait`` seconds; the client asks again
at once. A request that is not a long poll (the first one, the first after an outage) is
answered at once. Answers that come back without a change are spaced by ``min_interval_s``, so
a collector that does not hold long polls is not hammered.

Fail-open: when the collector is unreachable or answers garbage, the last document is kept
(and the connection dropped), the failure is logged once per outage, and the thread waits a
jittered, growing delay (:class:`~._backoff.Backoff`) before trying again. Readers never block
and never raise.

A subclass says what the document is (its class attributes name it, give its logger and its
largest body; its hooks build the URL of one poll and the ``If-None-Match`` to send, parse a
``200`` body and say whether it is new). Its constructor takes :class:`LongPollOptions`.

Example:
    >>> from agentmesh.instrumentation.control import ControlClient
    >>> client = ControlClient("http://127.0.0.1:1")  # not started: no thread, no request
    >>> client.stats, client.running
    (ControlStats(polls=0, changes=0, not_modified=0, failures=0), False)
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import ClassVar, Final, Generic, Protocol, TypedDict, TypeVar, Unpack
from urllib.parse import urlsplit

from agentmesh.core.log import Logger
from agentmesh.core.tls import client_ssl_context
from agentmesh.instrumentation.control._backoff import Backoff
from agentmesh.instrumentation.control._slot import note_change

__all__ = ["BadAnswerError", "LongPollClient", "LongPollOptions", "PollStats", "Versioned"]

_MAX_WAIT_S: Final = 30.0
"""The collector holds a long poll at most this long."""
_READ_MARGIN_S: Final = 10.0
"""How much longer than ``wait`` a read may take before the connection is dropped."""


_HTTP2_FRAME_HEADER_ZEROS: Final = "\x00\x00"
"""How a server's first HTTP/2 frame (its SETTINGS, 9-byte header) begins: a length < 65536."""


def _speaks_http2(exc: Exception) -> bool:
    """Whether an HTTP/1.1 request got HTTP/2 frames back (a gRPC-only port, say)."""
    if not isinstance(exc, http.client.BadStatusLine) or not exc.args:
        return False
    return str(exc.args[0]).startswith(_HTTP2_FRAME_HEADER_ZEROS)  # the line, as text


class BadAnswerError(ValueError):
    """The collector answered something else than a document or ``304``."""


class Versioned(Protocol):
    """A document with a version (increasing on every change)."""

    @property
    def version(self) -> int:
        """The document's version."""
        ...


@dataclass(slots=True)
class PollStats:
    """What a long-poll client did since it started (for tests, logs and benchmarks).

    Attributes:
        polls: Requests answered (``200`` or ``304``).
        changes: Documents received that differ from the one held.
        not_modified: ``304`` answers.
        failures: Requests that failed (connection error, timeout, bad status or body).
    """

    polls: int = 0
    changes: int = 0
    not_modified: int = 0
    failures: int = 0


class LongPollOptions(TypedDict, total=False):
    """How a long-poll client polls (the keyword arguments of its constructor).

    Attributes:
        wait_s: How long the collector may hold each long poll (at most 30 s; 25 s by default).
        min_interval_s: Least time between two requests that brought no change (0.5 s).
        connect_timeout_s: Longest time to open the connection (5 s).
        backoff: The delays after failures; 0.5 s doubling up to 30 s, jittered, by default.
        headers: Extra request headers (the collector's credentials: ``Authorization``,
            ``x-api-key``).
    """

    wait_s: float
    min_interval_s: float
    connect_timeout_s: float
    backoff: Backoff | None
    headers: Mapping[str, str] | None


DocT = TypeVar("DocT", bound=Versioned)
StatsT = TypeVar("StatsT", bound=PollStats)


class LongPollClient(Generic[DocT, StatsT]):
    """Keeps the latest document of a collector in memory, by a background long poll.

    Call :meth:`start` once; read the document as often as needed (a plain attribute read);
    call :meth:`stop` at shutdown.

    Args:
        base_url: The collector's OTLP/HTTP base URL (``http://collector:4318``).
        document: The document held until one arrives.
        stats: The counters to update.
        **options: How to poll (:class:`LongPollOptions`).

    Raises:
        ValueError: The URL is not ``http``/``https`` with a host, or a duration is invalid.
    """

    _NAME: ClassVar[str]
    """What is followed (``"route table"``): names the errors, the log events
    (``agentmesh.route_table.*``), the thread and the ``User-Agent``."""
    _LOG: ClassVar[Logger]
    """Where the events go."""
    _MAX_BODY: ClassVar[int]
    """Largest body accepted (bytes)."""
    _RECEIVED: ClassVar[str]
    """The event logged (debug) when a new document is taken."""

    def __init__(
        self, base_url: str, document: DocT, stats: StatsT, **options: Unpack[LongPollOptions]
    ) -> None:
        name = self._NAME
        wait_s = options.get("wait_s", 25.0)
        min_interval_s = options.get("min_interval_s", 0.5)
        connect_timeout_s = options.get("connect_timeout_s", 5.0)
        backoff = options.get("backoff")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: expected an http(s) URL with a host, got {base_url!r}")
        if not 0 <= wait_s <= _MAX_WAIT_S or min_interval_s < 0 or connect_timeout_s <= 0:
            raise ValueError(f"{name}: need 0 <= wait_s <= 30, min_interval_s >= 0, timeout > 0")
        self._event = "agentmesh." + name.replace(" ", "_")
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
            "User-Agent": "agentmesh-instrumentation/" + name.replace(" ", "-"),
            **(options.get("headers") or {}),
        }
        self._document: DocT = document
        self._known: int | None = None  # the version the collector last said it serves
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._thread: threading.Thread | None = None
        self._stats: StatsT = stats

    @property
    def base_url(self) -> str:
        """The collector's OTLP/HTTP base URL."""
        return self._base

    @property
    def stats(self) -> StatsT:
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
            thread_name = "agentmesh-" + self._NAME.replace(" ", "-")
            self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
            self._thread.start()
        self._LOG.debug(f"{self._event}.started", url=self._base)

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
            Whether a different document was received.

        Raises:
            OSError: The collector could not be reached or the connection broke.
            http.client.HTTPException: The answer was not valid HTTP.
            ValueError: The answer was neither a document nor ``304``.
            AgentMeshError: The answer was a document the client refuses.
        """
        after = self._known if long else None
        url = self._url(after)
        headers = self._headers
        tag = self._if_none_match(after)
        if tag is not None:
            headers = {**headers, "If-None-Match": tag}
        conn = self._connection()
        try:
            conn.request("GET", url, headers=headers)
            response = conn.getresponse()
            body = response.read(self._MAX_BODY + 1)
        except BaseException:
            self._drop_connection()
            raise
        if response.will_close:
            self._drop_connection()
        if response.status == http.client.NOT_MODIFIED:
            self._stats.polls += 1
            self._stats.not_modified += 1
            self._not_modified()
            return False
        if response.status != http.client.OK or len(body) > self._MAX_BODY:
            self._drop_connection()
            raise BadAnswerError(f"{self._NAME}: HTTP {response.status} from {self._base}")
        document = self._parse(body)
        self._stats.polls += 1
        # A 200 is the collector saying "this differs from what you hold": a smaller version
        # means it restarted (without shared state) and is followed too.
        self._known = document.version
        if not self._accept(document, response):
            return False
        self._stats.changes += 1
        self._LOG.debug(self._RECEIVED, version=document.version, **self._summary(document))
        return True

    # --- what a subclass says ----------------------------------------------------------------

    def _url(self, after: int | None) -> str:
        """The URL of one poll (``after``: the long poll's version, ``None``: ask at once)."""
        raise NotImplementedError

    def _if_none_match(self, after: int | None) -> str | None:
        """The ``If-None-Match`` of a poll (``after``: the long poll's), or ``None``."""
        raise NotImplementedError

    def _parse(self, body: bytes) -> DocT:
        """The document of a ``200`` body (raises when it is not one)."""
        raise NotImplementedError

    def _accept(self, document: DocT, response: http.client.HTTPResponse) -> bool:
        """Take a received document when it is new (:meth:`_hold`); whether it was."""
        raise NotImplementedError

    def _summary(self, document: DocT) -> dict[str, int]:
        """What the event logged for a new document says of it (beside its version)."""
        raise NotImplementedError

    def _not_modified(self) -> None:
        """Called on a ``304``."""

    def _prepare(self) -> None:
        """Called by the thread before its first request (a failure is logged)."""

    def _refused(self, exc: Exception) -> bool:
        """Whether a failure is a refused answer (logged ``.refused``, not ``.unreachable``)."""
        del exc
        return False

    # --- internals -------------------------------------------------------------------------

    def _hold(self, document: DocT) -> None:
        with self._changed:
            self._document = document
            note_change()  # after the document: a reader that saw the old one sees a change
            self._changed.notify_all()

    def _connection(self) -> http.client.HTTPConnection:
        with self._lock:
            conn = self._conn
        if conn is not None:
            return conn
        if self._https:  # the OTLP exporter's CA and client certificate (core.tls)
            conn = http.client.HTTPSConnection(
                self._host,
                self._port,
                timeout=self._connect_timeout_s,
                context=client_ssl_context(),
            )
        else:
            conn = http.client.HTTPConnection(
                self._host, self._port, timeout=self._connect_timeout_s
            )
        conn.connect()
        sock = conn.sock
        if isinstance(sock, socket.socket):
            sock.settimeout(self._wait_s + _READ_MARGIN_S)
        with self._lock:
            self._conn = conn
        if self._stopping.is_set():  # stop() ran while connecting: it saw no socket
            self._drop_connection()
            raise ConnectionAbortedError(f"{self._NAME}: client stopped")
        return conn

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def _run(self) -> None:
        try:
            self._prepare()
        except Exception as exc:  # noqa: BLE001 - fail-open: start from the document held
            self._failed(exc)
        resync = True  # the first request, and the first after an outage, asks at once
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                changed = self.poll(long=not resync)
            except Exception as exc:  # noqa: BLE001 - fail-open: keep the last document
                if self._stopping.is_set():
                    break
                self._drop_connection()
                self._failed(exc)
                resync = True
                self._stopping.wait(self._backoff.next_delay())
                continue
            if self._backoff.failures:
                self._LOG.info(f"{self._event}.reconnected", url=self._base)
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
                if _speaks_http2(exc):
                    self._LOG.warning(
                        f"{self._event}.wrong_port",
                        url=self._base,
                        error=(
                            f"{self._base} answered in HTTP/2 frames: it is an OTLP/gRPC port, "
                            "not the collector's OTLP/HTTP port; set AGENTMESH_CONTROL_URL to "
                            "the collector's OTLP/HTTP address (port 4318 unless it was moved)"
                        ),
                        version=self._document.version,
                    )
                    return
                self._LOG.warning(
                    f"{self._event}.refused"
                    if self._refused(exc)
                    else f"{self._event}.unreachable",
                    url=self._base,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    version=self._document.version,
                )
