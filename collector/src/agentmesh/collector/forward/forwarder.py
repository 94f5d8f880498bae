"""One forwarder: a bounded queue of accepted requests and workers that POST them elsewhere.

:meth:`Forwarder.offer` never blocks and never fails: it appends to a bounded queue and, when
the queue is full, drops the **oldest** request (counted; logged once when a streak of drops
starts and once when it ends). Dropping the oldest keeps what reaches the other backend as fresh
as possible while it recovers, and keeps memory bounded whatever it does.

``concurrency`` worker tasks take requests from the queue and POST them as gzipped OTLP/HTTP
protobuf with an aiohttp client. Connection errors, timeouts and HTTP 429/502/503/504 are
retried (see :mod:`agentmesh.collector.forward.retry`), honouring ``Retry-After``, for at most
``max_retry_seconds`` per request; any other answer outside 2xx is final (logged plainly, counted
as failed). Header values (API keys) are never logged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, Literal

import aiohttp

from agentmesh.collector.forward.payload import ForwardPayload
from agentmesh.collector.forward.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from agentmesh.collector.forward.stats import ForwarderStats
from agentmesh.collector.forward.targets import ForwardTarget
from agentmesh.core.errors import CollectorError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import finish_within

__all__ = ["Forwarder"]

log = get_logger(__name__)

_ERROR_BODY_BYTES: Final = 512
"""How much of an error answer's body goes into the log."""

_Outcome = Literal["sent", "retry", "final"]


class Forwarder:
    """Sends accepted OTLP requests to one endpoint, without ever holding up ingestion.

    Use it as an async context manager (or :meth:`start` / :meth:`stop`).

    Args:
        target: The endpoint and its headers.
        queue_max_requests: Requests held at most; the oldest is dropped beyond.
        concurrency: Requests sent at the same time.
        timeout_seconds: Longest time one attempt may take.
        retry: Backoff and total retry budget.
        flush_timeout_seconds: Time :meth:`stop` gives the workers to empty the queue.
    """

    def __init__(
        self,
        target: ForwardTarget,
        *,
        queue_max_requests: int = 1000,
        concurrency: int = 2,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        flush_timeout_seconds: float = 5.0,
    ) -> None:
        self._target = target
        self._max = queue_max_requests
        self._concurrency = concurrency
        self._timeout = timeout_seconds
        self._retry = retry if retry is not None else RetryPolicy(max_seconds=30.0)
        self._flush_timeout = flush_timeout_seconds
        self._queue: deque[ForwardPayload] = deque()
        self._ready = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._closing = False
        self._streak = 0
        self._last_failure: str | None = None
        self._offered = 0
        self._sent = 0
        self._sent_spans = 0
        self._retried = 0
        self._failed = 0
        self._failed_spans = 0
        self._dropped = 0
        self._dropped_spans = 0
        self._in_flight = 0

    @property
    def name(self) -> str:
        """The target's short name."""
        return self._target.name

    @property
    def target(self) -> ForwardTarget:
        """Where requests go."""
        return self._target

    @property
    def stats(self) -> ForwarderStats:
        """A snapshot of the counters."""
        return ForwarderStats(
            offered_requests=self._offered,
            sent_requests=self._sent,
            sent_spans=self._sent_spans,
            retried=self._retried,
            failed_requests=self._failed,
            failed_spans=self._failed_spans,
            dropped_requests=self._dropped,
            dropped_spans=self._dropped_spans,
            queued=len(self._queue),
            in_flight=self._in_flight,
        )

    def offer(self, payload: ForwardPayload) -> None:
        """Queue a request for sending; drop the oldest one when the queue is full.

        Args:
            payload: The accepted request.
        """
        self._offered += 1
        if self._closing or self._session is None:
            self._drop(payload)
            return
        if len(self._queue) >= self._max:
            self._drop(self._queue.popleft())
            if self._streak == 0:
                log.warning(
                    "forward queue full, dropping the oldest requests",
                    forwarder=self.name,
                    queue_max_requests=self._max,
                )
            self._streak += 1
        elif self._streak:
            log.info("forward queue has room again", forwarder=self.name, dropped=self._streak)
            self._streak = 0
        self._queue.append(payload)
        self._ready.set()

    async def start(self) -> None:
        """Open the HTTP client and start the workers.

        Raises:
            CollectorError: Already started.
        """
        if self._session is not None or self._closing:
            raise CollectorError(f"forwarder {self.name} was already started")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "gzip",
                **self._target.header_values(),
            },
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"agentmesh-forward-{self.name}-{i}")
            for i in range(self._concurrency)
        ]
        log.info("forwarder started", forwarder=self.name, url=self._target.url)

    async def stop(self) -> None:
        """Send what is queued for at most ``flush_timeout_seconds``, then drop the rest."""
        if self._closing:
            return
        self._closing = True
        self._ready.set()
        workers, self._workers = self._workers, []
        await finish_within(workers, self._flush_timeout)
        left = len(self._queue)
        while self._queue:
            self._drop(self._queue.popleft())
        if self._session is not None:
            await self._session.close()
        if left:
            log.warning("forwarder stopped before sending everything", forwarder=self.name)
        log.info("forwarder stopped", forwarder=self.name, **_public(self.stats))

    async def __aenter__(self) -> Forwarder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _work(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
            payload = self._queue.popleft()
            self._in_flight += 1
            try:
                await self._send(payload)
            except asyncio.CancelledError:
                self._drop(payload)
                raise
            except Exception:
                self._fail(payload)
                log.exception("forwarding failed unexpectedly", forwarder=self.name)
            finally:
                self._in_flight -= 1

    async def _send(self, payload: ForwardPayload) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry.max_seconds
        body = await payload.body()
        attempt = 0
        while True:
            attempt += 1
            outcome, retry_after, detail = await self._post(body)
            if outcome == "sent":
                self._sent += 1
                self._sent_spans += payload.spans
                if self._last_failure is not None:
                    log.info("forwarding works again", forwarder=self.name)
                    self._last_failure = None
                return
            if outcome == "final":
                self._fail(payload, detail)
                return
            delay = self._retry.delay(attempt, retry_after)
            if loop.time() + delay > deadline:
                self._fail(payload, f"{detail}; gave up after {attempt} attempts")
                return
            self._retried += 1
            log.debug("forward retry", forwarder=self.name, reason=detail, delay_s=delay)
            await asyncio.sleep(delay)

    async def _post(self, body: bytes) -> tuple[_Outcome, float | None, str]:
        session = self._session
        if session is None:
            return "final", None, "the forwarder is not running"
        try:
            async with session.post(self._target.url, data=body) as response:
                status = response.status
                if 200 <= status < 300:
                    await response.read()
                    return "sent", None, ""
                text = await response.content.read(_ERROR_BODY_BYTES)
                detail = f"HTTP {status}: {text.decode('utf-8', 'replace').strip()}"
                if status in RETRYABLE_STATUSES:
                    return "retry", parse_retry_after(response.headers.get("Retry-After")), detail
                return "final", None, detail
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return "retry", None, f"{type(exc).__name__}: {exc}".rstrip(": ")

    def _fail(self, payload: ForwardPayload, detail: str = "unexpected error") -> None:
        self._failed += 1
        self._failed_spans += payload.spans
        if detail != self._last_failure:
            log.warning(
                "forwarding failed, request dropped",
                forwarder=self.name,
                url=self._target.url,
                reason=detail,
            )
            self._last_failure = detail

    def _drop(self, payload: ForwardPayload) -> None:
        self._dropped += 1
        self._dropped_spans += payload.spans


def _public(stats: ForwarderStats) -> dict[str, int]:
    return {
        "sent": stats.sent_requests,
        "retried": stats.retried,
        "failed": stats.failed_requests,
        "dropped": stats.dropped_requests,
    }
