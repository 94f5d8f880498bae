"""``ControlClient``: the latest control document, kept in memory by a background long poll.

A daemon thread asks the collector ``GET <base>/v1/control?after=<version>&wait=<s>`` over one
kept-alive HTTP connection (stdlib :mod:`http.client`: no dependency). The collector answers as
soon as its document is newer than ``version``, else ``304 Not Modified`` after ``wait``
seconds; the client asks again at once. A request that is not a long poll (the first one, the
first after an outage) sends ``If-None-Match: "<version>"`` instead, answered ``304`` when
nothing changed. Answers that come back without a change are spaced by ``min_interval_s``, so a
collector that does not hold long polls is not hammered.

The mechanism is :class:`~._longpoll.LongPollClient`'s. Fail-open: when the collector is
unreachable or answers garbage, the last document is kept, the failure is logged once per
outage, and the thread waits a jittered, growing delay (:class:`~._backoff.Backoff`) before
trying again. After an outage the first request asks
without ``after`` (answered at once), so a collector that restarted with a smaller version is
followed. Readers (:attr:`ControlClient.document`) never block and never raise.

Example:
    >>> client = ControlClient("http://127.0.0.1:1")  # not started: no thread, no request
    >>> client.document.version, client.running
    (0, False)
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Unpack

from agentmesh.core.log import get_logger
from agentmesh.instrumentation.control._document import EMPTY_DOCUMENT, ControlDocument
from agentmesh.instrumentation.control._longpoll import LongPollClient, LongPollOptions, PollStats
from agentmesh.instrumentation.control._url import control_document_url

__all__ = ["ControlClient", "ControlStats"]

_log = get_logger(__name__)


@dataclass(slots=True)
class ControlStats(PollStats):
    """What the client did since it started (for tests, logs and benchmarks).

    The counters of :class:`~._longpoll.PollStats`: ``polls``, ``changes`` (documents received
    with a new version), ``not_modified`` and ``failures``.
    """


class ControlClient(LongPollClient[ControlDocument, ControlStats]):
    """Keeps the latest control document of a collector in memory.

    Call :meth:`start` once; read :attr:`document` as often as needed (a plain attribute read);
    call :meth:`stop` at shutdown.

    Args:
        base_url: The collector's OTLP/HTTP base URL (``http://collector:4318``).
        **options: ``wait_s`` (the longest hold of a long poll: 25 s, at most 30 s),
            ``min_interval_s``, ``connect_timeout_s``, ``backoff``, ``headers`` (the
            collector's credentials): see :class:`~._longpoll.LongPollOptions`.

    Raises:
        ValueError: The URL is not ``http``/``https`` with a host, or a duration is invalid.
    """

    _NAME = "control"
    _LOG = _log
    _MAX_BODY = 8 * 1024 * 1024
    _RECEIVED = "agentmesh.control.document"

    def __init__(self, base_url: str, **options: Unpack[LongPollOptions]) -> None:
        super().__init__(base_url, EMPTY_DOCUMENT, ControlStats(), **options)

    @property
    def document(self) -> ControlDocument:
        """The latest document received (empty, version 0, until the first one arrives)."""
        return self._document

    # --- the long poll's hooks ---------------------------------------------------------------

    def _url(self, after: int | None) -> str:
        return control_document_url(self._prefix, after=after, wait_s=self._wait_s)

    def _if_none_match(self, after: int | None) -> str | None:
        # A long poll says it with ``after`` instead.
        known = self._known
        return f'"{known}"' if after is None and known is not None else None

    def _parse(self, body: bytes) -> ControlDocument:
        return ControlDocument.parse(body)

    def _accept(self, document: ControlDocument, response: http.client.HTTPResponse) -> bool:
        del response
        if document.version == self._document.version:
            return False
        self._hold(document)
        return True

    def _summary(self, document: ControlDocument) -> dict[str, int]:
        return {"runs": len(document.runs), "breakers": len(document.breakers)}
