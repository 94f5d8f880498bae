"""``RouteTableClient``: the latest route table, kept in memory by a background long poll.

A daemon thread asks the collector ``GET <base>/v1/route-table?after=<version>&wait=<s>`` with
``If-None-Match: <etag of the table held>`` over one kept-alive HTTP connection (stdlib
:mod:`http.client`). The collector answers as soon as its table is newer, else ``304 Not
Modified`` after ``wait`` seconds; the client asks again at once. The first request (and the
first after an outage) has no ``after``: it is answered at once, ``304`` when the table held is
the collector's. Answers without a change are spaced by ``min_interval_s``.

The mechanism is :class:`~agentmesh.instrumentation.control._longpoll.LongPollClient`'s.
Fail-open: when the collector is unreachable or answers something that is not a route table
(a table whose predictor cannot be parsed included: it is parsed here, before the table is
taken), the last good table is kept, the failure is logged once per outage (the refusal with
its reason), the cache file is left as it is, and the thread waits a
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
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Unpack

from agentmesh.core.errors import RouteTableError
from agentmesh.core.log import get_logger
from agentmesh.instrumentation._failopen import report
from agentmesh.instrumentation.control._longpoll import (
    BadAnswerError,
    LongPollClient,
    LongPollOptions,
    PollStats,
)
from agentmesh.instrumentation.route_table._cache import load_table, read_table, save_table
from agentmesh.router.learned.parse_ahead import parse_ahead
from agentmesh.router.table import BUNDLED_TABLE, MAX_ROUTE_TABLE_BYTES, RouteTable

__all__ = ["ROUTE_TABLE_PATH", "RouteTableClient", "RouteTableStats", "route_table_url"]

_log = get_logger(__name__)

ROUTE_TABLE_PATH: Final = "/v1/route-table"
"""Path of the route table under the collector's OTLP/HTTP base."""


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


@dataclass(slots=True)
class RouteTableStats(PollStats):
    """What the client did since it started (for tests, logs and benchmarks).

    The counters of every long-poll client (``polls``, ``changes``: tables received that
    differ from the one held, ``not_modified``, ``failures``: also a table refused), and:

    Attributes:
        cache_loads: Tables read from the cache file (0 or 1).
        cache_writes: Tables written to the cache file.
    """

    cache_loads: int = 0
    cache_writes: int = 0


class RouteTableClient(LongPollClient[RouteTable, RouteTableStats]):
    """Keeps the latest route table of a collector in memory (and in a cache file).

    Call :meth:`start` once; read :attr:`table` as often as needed (a plain attribute read);
    call :meth:`stop` at shutdown. :meth:`poll` also raises
    :class:`~agentmesh.core.errors.RouteTableError` for a table the client refuses.

    Args:
        base_url: The collector's OTLP/HTTP base URL (``http://collector:4318``).
        cache_path: File keeping the last good table; ``None``: no cache.
        **options: How to poll, as for the control client: ``wait_s`` (25 s, at most 30 s),
            ``min_interval_s``, ``connect_timeout_s``, ``backoff`` and ``headers`` (see
            :class:`~agentmesh.instrumentation.control._longpoll.LongPollOptions`).

    Raises:
        ValueError: The URL is not ``http``/``https`` with a host, or a duration is invalid.
    """

    _NAME = "route table"
    _LOG = _log
    _MAX_BODY = MAX_ROUTE_TABLE_BYTES
    _RECEIVED = "agentmesh.route_table.received"

    def __init__(
        self,
        base_url: str,
        *,
        cache_path: Path | None = None,
        **options: Unpack[LongPollOptions],
    ) -> None:
        super().__init__(base_url, BUNDLED_TABLE, RouteTableStats(), **options)
        self._cache_path = cache_path
        self._cache_read = False  # read at most once (a refused file is then logged once)
        self._etag: str | None = None  # the ETag of the table held (None: not known yet)

    @property
    def cache_path(self) -> Path | None:
        """The cache file, if any."""
        return self._cache_path

    @property
    def table(self) -> RouteTable:
        """The latest good table (the cached one, else the bundled one, until one arrives)."""
        return self._document

    def load_cache(self) -> bool:
        """Take the cached table when nothing newer is held (the thread does it first).

        The file is read once per client: a later call (the thread's, after
        :func:`~agentmesh.instrumentation.route_table.configure_route_table` read it) does
        nothing.

        Returns:
            Whether the cached table was taken.
        """
        if self._cache_path is None or self._etag is not None or self._cache_read:
            return False
        self._cache_read = True
        table = load_table(self._cache_path)
        if table is None:
            return False
        self._stats.cache_loads += 1
        self._take(table, table.etag)
        _log.debug(
            "agentmesh.route_table.cache_loaded", path=str(self._cache_path), version=table.version
        )
        return True

    # --- the long poll's hooks ---------------------------------------------------------------

    def _url(self, after: int | None) -> str:
        return route_table_url(self._prefix, after=after, wait_s=self._wait_s)

    def _if_none_match(self, after: int | None) -> str | None:
        del after
        return self._etag

    def _not_modified(self) -> None:
        if self._etag is not None:
            self._known = self._document.version

    def _parse(self, body: bytes) -> RouteTable:
        return read_table(body)  # a predictor the policy could not use refuses the table

    def _accept(self, document: RouteTable, response: http.client.HTTPResponse) -> bool:
        etag = response.getheader("ETag") or document.etag
        if etag == self._etag:
            return False
        self._take(document, etag)
        if self._cache_path is not None and save_table(self._cache_path, document):
            self._stats.cache_writes += 1
        return True

    def _summary(self, document: RouteTable) -> dict[str, int]:
        return {"models": len(document.models), "breakers": len(document.breakers)}

    def _prepare(self) -> None:
        self.load_cache()

    def _refused(self, exc: Exception) -> bool:
        return isinstance(exc, RouteTableError | BadAnswerError)

    def _take(self, table: RouteTable, etag: str) -> None:
        try:  # here, in the client's thread, not on the first routed call after the change
            parse_ahead(table)
        except Exception as exc:  # noqa: BLE001 - fail-open: the policy then parses it itself
            report("route_table.parse_ahead", exc)
        with self._changed:  # reentrant: _hold takes it again
            self._etag = etag
            self._hold(table)
