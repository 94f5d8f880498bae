"""Detections POSTed as JSON to configured webhook URLs, without ever holding up the pipeline.

Each detection is sent as the JSON object it is published as on Redis
(:func:`~agentmesh.collector.hot_state.events.detection_to_json`) with ``Content-Type:
application/json``, ``X-AgentMesh-Event: detection`` and ``X-AgentMesh-Detection-Id`` (a
receiver can drop repeats by it), plus the URL's own headers (secrets: never logged).

Every URL has its own bounded queue and worker, so a slow or dead endpoint delays nobody else.
:meth:`WebhookNotifier.offer` never blocks: when a queue is full its oldest delivery is dropped
(counted). Connection errors, timeouts, HTTP 408, 429 and 5xx are retried with exponential
backoff and full jitter (``Retry-After`` honoured, up to ``max_backoff_seconds``) for at most
``max_attempts`` attempts; other answers outside 2xx are final. Webhook URLs often hold a token
(Slack, Teams), so logs name only their scheme and host.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Self
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from agentmesh.collector.detection import Detection
from agentmesh.collector.forward.retry import RetryPolicy, parse_retry_after
from agentmesh.collector.hot_state.events import detection_to_json
from agentmesh.core.errors import CollectorError, ConfigError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import finish_within

__all__ = [
    "EVENT_HEADER",
    "ID_HEADER",
    "WebhookNotifier",
    "WebhookStats",
    "WebhookTarget",
    "webhook_targets",
]

log = get_logger(__name__)

EVENT_HEADER: Final = "X-AgentMesh-Event"
"""Header naming the kind of event (``detection``)."""

ID_HEADER: Final = "X-AgentMesh-Detection-Id"
"""Header carrying the detection id (stable: the same finding has the same id)."""

_ERROR_BODY_BYTES: Final = 256

_Outcome = Literal["sent", "retry", "final"]


def _public_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A URL detections are POSTed to, and its extra headers.

    Attributes:
        url: ``http://`` or ``https://`` URL.
        headers: Extra request headers (secrets: kept as ``SecretStr``, never logged).
    """

    url: str
    headers: Mapping[str, SecretStr] = field(default_factory=dict[str, SecretStr])

    def __post_init__(self) -> None:
        """Check the URL.

        Raises:
            ConfigError: Not an absolute http(s) URL.
        """
        try:
            parts = urlsplit(self.url)
        except ValueError as exc:
            raise ConfigError(f"webhook URL is invalid: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"webhook URL must be an absolute http(s) URL, got {_public_url(self.url)!r}"
            )

    @property
    def public_url(self) -> str:
        """Scheme, host and port only: what logs show."""
        return _public_url(self.url)

    def header_values(self) -> dict[str, str]:
        """The headers with their secret values revealed, to put on the wire.

        Returns:
            Header name to value.
        """
        return {key: value.get_secret_value() for key, value in self.headers.items()}


def webhook_targets(
    urls: Sequence[str], headers: Mapping[str, Mapping[str, SecretStr]] | None = None
) -> list[WebhookTarget]:
    """Build targets from configured URLs and per-URL headers.

    Args:
        urls: The webhook URLs.
        headers: Extra headers by URL (exactly as in ``urls``).

    Returns:
        One target per URL, in order.

    Raises:
        ConfigError: A URL is invalid or listed twice, or headers name a URL not in ``urls``.
    """
    by_url = dict(headers or {})
    unknown = set(by_url) - set(urls)
    if unknown:
        raise ConfigError(
            "webhook headers are given for URLs that are not configured: "
            + ", ".join(sorted(_public_url(u) for u in unknown))
        )
    if len(set(urls)) != len(urls):
        raise ConfigError("a webhook URL is listed twice")
    return [WebhookTarget(url, dict(by_url.get(url, {}))) for url in urls]


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """What a notifier did since it started, over all its URLs.

    Every offered delivery (one per detection and URL) ends in exactly one of ``delivered``,
    ``failed`` and ``dropped``, or is still ``queued`` or ``in_flight``.

    Attributes:
        offered: Deliveries queued (detections times URLs).
        delivered: Deliveries the endpoint accepted (2xx).
        retried: Extra attempts made.
        failed: Deliveries given up: a final answer, or still failing after the last attempt.
        dropped: Deliveries dropped unsent: pushed out of a full queue, offered while not
            running, or still queued when the shutdown flush time ran out.
        queued: Deliveries waiting now.
        in_flight: Deliveries being sent (or waiting to be retried) now.
    """

    offered: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0
    queued: int = 0
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class _Delivery:
    detection_id: str
    body: bytes


class _Channel:
    """The queue and worker of one URL."""

    def __init__(self, target: WebhookTarget) -> None:
        self.target = target
        self.queue: deque[_Delivery] = deque()
        self.ready = asyncio.Event()
        self.worker: asyncio.Task[None] | None = None
        self.streak = 0
        self.in_flight = 0
        self.last_failure: str | None = None


class WebhookNotifier:
    """POSTs each detection to every configured URL, from tasks of its own.

    An async context manager: entering opens the HTTP client and starts one worker per URL;
    leaving gives the workers ``flush_timeout_seconds`` to empty their queues, then drops the
    rest (counted).

    Args:
        targets: The URLs and their headers.
        queue_max: Deliveries each URL holds at most; the oldest is dropped beyond.
        timeout_seconds: Longest time one attempt may take.
        max_attempts: Attempts per delivery (1: no retry).
        initial_backoff_seconds: Ceiling of the first wait between attempts.
        max_backoff_seconds: Largest wait between attempts (also caps ``Retry-After``).
        flush_timeout_seconds: Time leaving gives the queues to empty.

    Raises:
        CollectorError: A bound is below 1 or a time is not positive.
    """

    def __init__(
        self,
        targets: Sequence[WebhookTarget],
        *,
        queue_max: int = 1000,
        timeout_seconds: float = 5.0,
        max_attempts: int = 5,
        initial_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        flush_timeout_seconds: float = 5.0,
    ) -> None:
        if queue_max < 1 or max_attempts < 1:
            raise CollectorError("queue_max and max_attempts must be at least 1")
        if timeout_seconds <= 0 or initial_backoff_seconds < 0 or max_backoff_seconds < 0:
            raise CollectorError("webhook timeout must be positive and backoffs not negative")
        self._channels = [_Channel(t) for t in targets]
        self._queue_max = queue_max
        self._timeout = timeout_seconds
        self._max_attempts = max_attempts
        self._backoff = RetryPolicy(
            max_seconds=math.inf,
            initial_seconds=initial_backoff_seconds,
            max_backoff_seconds=max_backoff_seconds,
        )
        self._max_backoff = max_backoff_seconds
        self._flush_timeout = flush_timeout_seconds
        self._session: aiohttp.ClientSession | None = None
        self._closing = False
        self._offered = 0
        self._delivered = 0
        self._retried = 0
        self._failed = 0
        self._dropped = 0

    @property
    def targets(self) -> list[WebhookTarget]:
        """The URLs, in order."""
        return [c.target for c in self._channels]

    @property
    def stats(self) -> WebhookStats:
        """A snapshot of the counters."""
        return WebhookStats(
            offered=self._offered,
            delivered=self._delivered,
            retried=self._retried,
            failed=self._failed,
            dropped=self._dropped,
            queued=sum(len(c.queue) for c in self._channels),
            in_flight=sum(c.in_flight for c in self._channels),
        )

    def offer(self, detection: Detection) -> None:
        """Queue a detection for every URL (never blocks, never raises).

        Args:
            detection: The detection.
        """
        if not self._channels:
            return
        delivery = _Delivery(detection.id, detection_to_json(detection).encode())
        running = self._session is not None and not self._closing
        for channel in self._channels:
            self._offered += 1
            if not running:
                self._dropped += 1
                continue
            if len(channel.queue) >= self._queue_max:
                channel.queue.popleft()
                self._dropped += 1
                if channel.streak == 0:
                    log.warning(
                        "webhook queue full, dropping the oldest detections",
                        url=channel.target.public_url,
                        queue_max=self._queue_max,
                    )
                channel.streak += 1
            elif channel.streak:
                log.info(
                    "webhook queue has room again",
                    url=channel.target.public_url,
                    dropped=channel.streak,
                )
                channel.streak = 0
            channel.queue.append(delivery)
            channel.ready.set()

    async def start(self) -> None:
        """Open the HTTP client and start the workers.

        Raises:
            CollectorError: Already started.
        """
        if self._session is not None or self._closing:
            raise CollectorError("the webhook notifier was already started")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"Content-Type": "application/json", "User-Agent": "agentmesh-collector"},
        )
        for index, channel in enumerate(self._channels):
            channel.worker = asyncio.create_task(
                self._work(channel), name=f"agentmesh-webhook-{index}"
            )
        log.info("webhook notifier started", urls=[c.target.public_url for c in self._channels])

    async def stop(self) -> None:
        """Deliver what is queued within ``flush_timeout_seconds``, then drop the rest."""
        if self._closing:
            return
        self._closing = True
        workers = [c.worker for c in self._channels if c.worker is not None]
        for channel in self._channels:
            channel.ready.set()
            channel.worker = None
        await finish_within(workers, self._flush_timeout)
        for channel in self._channels:
            self._dropped += len(channel.queue)
            channel.queue.clear()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        s = self.stats
        log.info(
            "webhook notifier stopped",
            delivered=s.delivered,
            failed=s.failed,
            dropped=s.dropped,
            retried=s.retried,
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _work(self, channel: _Channel) -> None:
        while True:
            while not channel.queue:
                if self._closing:
                    return
                channel.ready.clear()
                await channel.ready.wait()
            delivery = channel.queue.popleft()
            channel.in_flight += 1
            try:
                await self._deliver(channel, delivery)
            except asyncio.CancelledError:
                self._dropped += 1
                raise
            except Exception:
                self._failed += 1
                log.exception("webhook delivery failed unexpectedly", url=channel.target.public_url)
            finally:
                channel.in_flight -= 1

    async def _deliver(self, channel: _Channel, delivery: _Delivery) -> None:
        attempt = 0
        while True:
            attempt += 1
            outcome, retry_after, detail = await self._post(channel.target, delivery)
            if outcome == "sent":
                self._delivered += 1
                if channel.last_failure is not None:
                    log.info("webhook delivery works again", url=channel.target.public_url)
                    channel.last_failure = None
                return
            if outcome == "retry" and attempt < self._max_attempts:
                self._retried += 1
                delay = self._backoff.delay(attempt, retry_after)
                log.debug(
                    "webhook retry", url=channel.target.public_url, reason=detail, delay_s=delay
                )
                await asyncio.sleep(min(delay, self._max_backoff))
                continue
            self._failed += 1
            if outcome == "retry":
                detail = f"{detail}; gave up after {attempt} attempts"
            if detail != channel.last_failure:
                log.warning(
                    "webhook delivery failed, detection dropped",
                    url=channel.target.public_url,
                    detection_id=delivery.detection_id,
                    reason=detail,
                )
                channel.last_failure = detail
            return

    async def _post(
        self, target: WebhookTarget, delivery: _Delivery
    ) -> tuple[_Outcome, float | None, str]:
        session = self._session
        if session is None:
            return "final", None, "the webhook notifier is not running"
        headers = {
            EVENT_HEADER: "detection",
            ID_HEADER: delivery.detection_id,
            **target.header_values(),
        }
        try:
            async with session.post(target.url, data=delivery.body, headers=headers) as response:
                status = response.status
                if 200 <= status < 300:
                    await response.read()
                    return "sent", None, ""
                text = await response.content.read(_ERROR_BODY_BYTES)
                detail = f"HTTP {status}: {text.decode('utf-8', 'replace').strip()}"
                if status in (408, 429) or status >= 500:
                    return "retry", parse_retry_after(response.headers.get("Retry-After")), detail
                return "final", None, detail
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return "retry", None, detail.replace(target.url, target.public_url)
