"""``RouteTableClient``: the latest route table, kept in memory by a background long poll.

A daemon thread asks the collector ``GET <base>/v1/route-table?after=<version>&wait=<s>`` with
``If-None-Match: <etag of the table held>`` over one kept-alive HTTP connection (stdlib
:mod:`http.client`). The collector answers as soon as its table is newer, else ``304 Not
Modified`` after ``wait`` seconds; the client asks again at once. The first request (and the
first after an outage) has no ``after``: it is answered at once, ``304`` when the table held is
the collector's. Answers without a change are spaced by ``min_interval_s``.

Fail-open: when the collector is unreachable or answers something that is not a route table,
the last good table is kept, the failure is logged once per outage, and the thread waits a
jittered, growing delay (:class:`~agentmesh.instrumentation.control.Backoff`) before trying
again. Each new table is written to the cache file (atomically); the thread reads that file
before its first request, so an application started while the collector is away still has the
last table it saw (otherwise :data:`~agentmesh.router.table.BUNDLED_TABLE`). Readers
(:attr:`RouteTableClient.table`) never block and never raise.

Example:
    >>> client = RouteTableClient("http://127.0.0.1:1")  # not started: no thread, no request
    >>> client.table.version, client.running
    (0, False)
    >>> route_table_url("http://collector:4318/", after=7, wait_s=25)
    'http://collector:4318/v1/route-table?after=7&wait=25'
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from agentmesh.core.errors import RouteTableError
from agentmesh.core.log import get_logger
from agentmesh.instrumentation.control import Backoff
from agentmesh.instrumentation.route_table._cache import load_table, save_table
from agentmesh.router.table import BUNDLED_TABLE, MAX_ROUTE_TABLE_BYTES, RouteTable

__all__ = ["ROUTE_TABLE_PATH", "RouteTableClient", "RouteTableStats", "route_table_url"]

_log = get_logger(__name__)

ROUTE_TABLE_PATH: Final = "/v1/route-table"
"""Path of the route table under the collector's OTLP/HTTP base."""

_MAX_WAIT_S: Final = 30.0
"""The collector holds a long poll at most this long."""
_READ_MARGIN_S: Final = 10.0
"""How much longer than ``wait`` a read may take before the connection is dropped."""
_USER_AGENT: Final = "agentmesh-instrumentation/route-table"


def route_table_url(base: str, *, after: int | None, wait_s: float) -> str:
    """Return the URL of one (long-)poll of the route table.

    Args:
        base: The collector's OTLP/HTTP base URL (or its path prefix).
        after: The version already held (long poll), or ``None`` to ask at once.
        wait_s: Longest time the collector may hold the request (seconds).

    Returns:
        The URL.
    """
    url = f"{base.rstrip('/')}{ROUTE_TABLE_PATH}"
    if after is None:
        return url
    return f"{url}?after={after}&wait={wait_s:g}"


class _BadAnswerError(ValueError):
    """The collector answered something else than a route table or ``304``."""


@dataclass(slots=True)
class RouteTableStats:
    """What the client did since it started (for tests, logs and benchmarks).

    Attributes:
        polls: Requests answered (``200`` or ``304``).
        changes: Tables received that differ from the one held.
        not_modified: ``304`` answers.
        failures: Requests that failed (connection error, timeout, bad status or table).
        cache_loads: Tables read from the cache file (0 or 1).
        cache_writes: Tables written to the cache file.
    """

    polls: int = 0
    changes: int = 0
    not_modified: int = 0
    failures: int = 0
    cache_loads: int = 0
    cache_writes: int = 0


class RouteTableClient:
    """Keeps the latest route table of a collector in memory (and in a cache file).

    Call :meth:`start` once; read :attr:`table` as often as needed (a plain attribute read);
    call :meth:`stop` at shutdown.

    Args:
        base_url: The collector's OTLP/HTTP base URL (``http://collector:4318``).
        cache_path: File keeping the last good table; ``None``: no cache.
        wait_s: How long the collector may hold each long poll (at most 30 s).
        min_interval_s: Least time between two requests that brought no change.
        connect_timeout_s: Longest time to open the connection.
        backoff: The delays after failures; 0.5 s doubling up to 30 s, jittered, by default.
        headers: Extra request headers (the collector's credentials).

    Raises:
        ValueError: The URL is not ``http``/``https`` with a host, or a duration is invalid.
    """

    def __init__(
        self,
        base_url: str,
        *,
        cache_path: Path | None = None,
        wait_s: float = 25.0,
        min_interval_s: float = 0.5,
        connect_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"route table: expected an http(s) URL with a host, got {base_url!r}")
        if not 0 <= wait_s <= _MAX_WAIT_S or min_interval_s < 0 or connect_timeout_s <= 0:
            raise ValueError(
                "route table: need 0 <= wait_s <= 30, min_interval_s >= 0, timeout > 0"
            )
        self._base = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._cache_path = cache_path
        self._wait_s = wait_s
        self._min_interval_s = min_interval_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff = backoff if backoff is not None else Backoff()
        self._headers = {
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            **(headers or {}),
        }
        self._table: RouteTable = BUNDLED_TABLE
        self._etag: str | None = None  # the ETag of the table held (None: not known yet)
        self._known: int | None = None  # the version the collector last said it serves
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._thread: threading.Thread | None = None
        self._stats = RouteTableStats()

    @property
    def base_url(self) -> str:
        """The collector's OTLP/HTTP base URL."""
        return self._base

    @property
    def cache_path(self) -> Path | None:
        """The cache file, if any."""
        return self._cache_path

    @property
    def table(self) -> RouteTable:
        """The latest good table (the cached one, else the bundled one, until one arrives)."""
        return self._table

    @property
    def stats(self) -> RouteTableStats:
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
            self._thread = threading.Thread(
                target=self._run, name="agentmesh-route-table", daemon=True
            )
            self._thread.start()
        _log.debug("agentmesh.route_table.started", url=self._base)

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
        """Block until a table of at least ``version`` is held (for tests and tools).

        Args:
            version: The version awaited.
            timeout_s: Longest wait.

        Returns:
            Whether the table's version reached ``version`` in time.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._table.version < version:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    return False
                self._changed.wait(left)
        return True

    def load_cache(self) -> bool:
        """Take the cached table when nothing newer is held (the thread does it first).

        Returns:
            Whether the cached table was taken.
        """
        if self._cache_path is None or self._etag is not None:
            return False
        table = load_table(self._cache_path)
        if table is None:
            return False
        self._stats.cache_loads += 1
        self._hold(table, table.etag)
        _log.debug(
            "agentmesh.route_table.cache_loaded", path=str(self._cache_path), version=table.version
        )
        return True

    def poll(self, *, long: bool = True) -> bool:
        """Ask the collector once, on the calling thread (not while the thread runs).

        Args:
            long: Long-poll (``after=<version>&wait=<wait_s>``) once a version is known;
                ``False`` asks for the current table at once.

        Returns:
            Whether a different table was received.

        Raises:
            OSError: The collector could not be reached or the connection broke.
            http.client.HTTPException: The answer was not valid HTTP.
            ValueError: The answer was neither a table nor ``304``.
            RouteTableError: The answer was a table the client refuses.
        """
        after = self._known if long else None
        url = route_table_url(self._prefix, after=after, wait_s=self._wait_s)
        headers = self._headers
        if self._etag is not None:
            headers = {**headers, "If-None-Match": self._etag}
        conn = self._connection()
        try:
            conn.request("GET", url, headers=headers)
            response = conn.getresponse()
            body = response.read(MAX_ROUTE_TABLE_BYTES + 1)
        except BaseException:
            self._drop_connection()
            raise
        if response.will_close:
            self._drop_connection()
        if response.status == http.client.NOT_MODIFIED:
            self._stats.polls += 1
            self._stats.not_modified += 1
            if self._etag is not None:
                self._known = self._table.version
            return False
        if response.status != http.client.OK or len(body) > MAX_ROUTE_TABLE_BYTES:
            self._drop_connection()
            raise _BadAnswerError(f"route table: HTTP {response.status} from {self._base}")
        table = RouteTable.from_json(body)
        self._stats.polls += 1
        return self._accept(table, response.getheader("ETag") or table.etag)

    # --- internals -------------------------------------------------------------------------

    def _accept(self, table: RouteTable, etag: str) -> bool:
        # A 200 is the collector saying "this differs from what you hold": a smaller version
        # means it restarted (without shared state) and is followed too.
        self._known = table.version
        if etag == self._etag:
            return False
        self._hold(table, etag)
        self._stats.changes += 1
        _log.debug(
            "agentmesh.route_table.received",
            version=table.version,
            models=len(table.models),
            breakers=len(table.breakers),
        )
        if self._cache_path is not None and save_table(self._cache_path, table):
            self._stats.cache_writes += 1
        return True

    def _hold(self, table: RouteTable, etag: str) -> None:
        with self._changed:
            self._table = table
            self._etag = etag
            self._changed.notify_all()

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
            raise ConnectionAbortedError("route table: client stopped")
        return conn

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def _run(self) -> None:
        try:
            self.load_cache()
        except Exception as exc:  # noqa: BLE001 - fail-open: start from the bundled table
            self._failed(exc)
        resync = True  # the first request, and the first after an outage, asks at once
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                changed = self.poll(long=not resync)
            except Exception as exc:  # noqa: BLE001 - fail-open: keep the last table
                if self._stopping.is_set():
                    break
                self._drop_connection()
                self._failed(exc)
                resync = True
                self._stopping.wait(self._backoff.next_delay())
                continue
            if self._backoff.failures:
                _log.info("agentmesh.route_table.reconnected", url=self._base)
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
            refused = isinstance(exc, RouteTableError | _BadAnswerError)
            with suppress(Exception):
                _log.warning(
                    "agentmesh.route_table.refused"
                    if refused
                    else "agentmesh.route_table.unreachable",
                    url=self._base,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    version=self._table.version,
                )
