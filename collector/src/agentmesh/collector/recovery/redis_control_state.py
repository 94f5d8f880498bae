"""The control document in Redis, shared by every collector: :class:`RedisControlState`.

- Key ``{prefix}control`` holds the document as JSON (with its version).
- Each change is a ``WATCH``/``GET``/``MULTI``/``SET``/``PUBLISH``/``EXEC`` transaction, retried
  when another collector changed the key in between: no update is ever lost.
- Channel ``{prefix}control`` carries the new version after each change; every collector
  subscribes, re-reads the key when a newer version is announced and wakes its long polls.
  The key is also re-read every ``refresh_seconds`` (a missed notice costs at most that).

Fail-open: when Redis cannot be reached the store keeps serving the last known document, logs
once, and applies changes locally (so this collector's applications still stop runs and skip
broken models); the changes are replayed on Redis, in order, when it answers again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, replace
from typing import Final, Self, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentmesh.collector.hot_state.redis_errors import redis_address, redis_error
from agentmesh.collector.recovery.control_state import Change, ControlState
from agentmesh.collector.recovery.document import ControlDocument
from agentmesh.core.errors import ConfigError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait

__all__ = ["ControlStateHealth", "RedisControlState"]

_log = get_logger(__name__)

_FAILURES: Final = (redis.exceptions.RedisError, OSError, TimeoutError)
_MAX_PENDING: Final = 10_000


@dataclass(frozen=True, slots=True)
class ControlStateHealth:
    """How the Redis behind a control state is doing.

    Attributes:
        available: Whether the last Redis call worked.
        failures: Redis calls that failed.
        pending_changes: Changes applied locally, waiting to be replayed on Redis.
        last_error: The latest failure, in plain words, or ``None``.
    """

    available: bool
    failures: int
    pending_changes: int
    last_error: str | None


class RedisControlState(ControlState):
    """A :class:`~agentmesh.collector.recovery.control_state.ControlState` in Redis.

    Args:
        url: ``redis://host:6379/0``.
        prefix: Start of the key and channel names.
        timeout_seconds: Connect and command timeout.
        retry_seconds: After a failure, how long changes stay local before Redis is tried
            again (the subscriber reconnects at this pace too).
        refresh_seconds: How often the key is re-read without a change notice.

    Raises:
        ConfigError: A duration is not positive or the prefix is empty.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "agentmesh:",
        timeout_seconds: float = 1.0,
        retry_seconds: float = 2.0,
        refresh_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        if not prefix:
            raise ConfigError("the Redis key prefix of the control document must not be empty")
        if min(timeout_seconds, retry_seconds, refresh_seconds) <= 0:
            raise ConfigError("the control document's Redis timeout and delays must be positive")
        self._url = url
        self._prefix = prefix
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._refresh = refresh_seconds
        self._address = redis_address(url)
        self._client: aioredis.Redis | None = None
        self._lock = asyncio.Lock()
        self._pending: deque[Change] = deque()
        self._floor = 0  # highest version served: a new version is always above it
        self._sync_task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()  # the subscriber made its first attempt
        self._retry_at: float | None = None  # down: Redis is not tried before this time
        self._failures = 0
        self._last_error: str | None = None

    @property
    def key(self) -> str:
        """The key holding the document."""
        return f"{self._prefix}control"

    @property
    def channel(self) -> str:
        """The channel of change notices (the new version, as text)."""
        return f"{self._prefix}control"

    @property
    def health(self) -> ControlStateHealth:
        """Whether Redis answers, failures, changes waiting to be replayed."""
        return ControlStateHealth(
            available=self._retry_at is None,
            failures=self._failures,
            pending_changes=len(self._pending),
            last_error=self._last_error,
        )

    async def open(self) -> Self:
        """Read the document and subscribe to change notices; a dead Redis is logged, not raised.

        Returns:
            The store.
        """
        if self._sync_task is not None:
            return self
        self._client = _client(self._url, self._timeout, self._timeout)
        self._sync_task = asyncio.create_task(self._sync(), name="agentmesh-control-sync")
        try:  # the first subscription, so no change made after open() is missed
            async with asyncio.timeout(self._timeout * 6):
                await self._synced.wait()
        except TimeoutError:
            _log.warning("control document subscription is slow; carrying on", at=self._address)
        return self

    async def close(self) -> None:
        """Stop the subscriber and close the connection."""
        task, self._sync_task = self._sync_task, None
        await cancel_and_wait(task)
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except _FAILURES as exc:
                _log.warning("Redis connection did not close cleanly", reason=str(exc))
        if self._pending:
            _log.warning("control document changes never reached Redis", changes=len(self._pending))

    async def get(self) -> ControlDocument:
        """Read the document from Redis (the last known one when Redis fails).

        Returns:
            The document.
        """
        async with self._lock:
            if self._due():
                try:
                    await self._flush()
                    await self._read()
                except _FAILURES as exc:
                    self._down(exc)
        return self._current

    async def update(self, change: Change) -> bool:
        """Apply a change in a Redis transaction (locally when Redis is down, replayed later).

        Args:
            change: The change function.

        Returns:
            Whether the document changed.
        """
        async with self._lock:
            if self._due():
                try:
                    await self._flush()
                    return await self._transact(change)
                except _FAILURES as exc:
                    self._down(exc)
            return self._apply_locally(change)

    # --- internals (called with the lock held) ----------------------------------------------

    def _due(self) -> bool:
        loop = asyncio.get_running_loop()
        return self._client is not None and (
            self._retry_at is None or loop.time() >= self._retry_at
        )

    def _apply_locally(self, change: Change) -> bool:
        current = self._current
        following = change(current)
        if following is None:
            return False
        if len(self._pending) >= _MAX_PENDING:
            self._pending.popleft()
            _log.warning("oldest local control change dropped", kept=_MAX_PENDING)
        self._pending.append(change)
        self._publish(replace(following, version=max(current.version, self._floor) + 1))
        return True

    async def _flush(self) -> None:
        while self._pending:
            await self._transact(self._pending[0])
            self._pending.popleft()

    async def _transact(self, change: Change) -> bool:
        client = self._connection()
        async with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self.key)
                    stored = self._decode(cast("str | None", await pipe.get(self.key)))  # pyright: ignore[reportUnknownMemberType]
                    following = change(stored)
                    if following is None:
                        await pipe.reset()
                        if not self._pending or self._pending[0] is not change:
                            self._publish(stored)
                        self._up()
                        return False
                    version = max(stored.version, self._floor) + 1
                    following = replace(following, version=version)
                    pipe.multi()
                    pipe.set(self.key, following.to_json())  # pyright: ignore[reportUnusedCallResult]
                    pipe.publish(self.channel, str(version))  # pyright: ignore[reportUnusedCallResult, reportUnknownMemberType]
                    await pipe.execute()
                except redis.exceptions.WatchError:
                    continue  # another collector changed it: apply the change to theirs
                break
        self._publish(following)
        self._up()
        _log.debug("control document changed", version=following.version)
        return True

    async def _read(self) -> None:
        if self._pending:
            return  # the local document is ahead until the changes are replayed
        client = self._connection()
        raw = cast("str | None", await client.get(self.key))  # pyright: ignore[reportUnknownMemberType]
        self._publish(self._decode(raw))
        self._up()

    def _decode(self, raw: str | None) -> ControlDocument:
        if raw is None:
            return ControlDocument()
        try:
            return ControlDocument.from_json(raw)
        except ValueError as exc:
            _log.error(
                "Redis control document unreadable; replacing it", key=self.key, reason=str(exc)
            )
            return ControlDocument()

    def _publish(self, document: ControlDocument) -> None:
        self._floor = max(self._floor, document.version)
        self._set_current(document)

    def _connection(self) -> aioredis.Redis:
        if self._client is None:
            raise redis.exceptions.ConnectionError("the control state is closed")
        return self._client

    def _up(self) -> None:
        if self._retry_at is not None:
            self._retry_at = None
            _log.info("Redis control document available again", at=self._address)

    def _down(self, exc: BaseException) -> None:
        reason = str(redis_error(exc, self._address, self._timeout))
        self._failures += 1
        self._last_error = reason
        first = self._retry_at is None
        self._retry_at = asyncio.get_running_loop().time() + self._retry
        if first:
            _log.warning(
                "Redis control document unavailable; serving the last known one",
                reason=reason,
                pending_changes=len(self._pending),
                retry_seconds=self._retry,
            )

    # --- the subscriber ---------------------------------------------------------------------

    async def _sync(self) -> None:
        while True:
            subscriber = _client(self._url, self._timeout, None)
            pubsub = subscriber.pubsub()  # pyright: ignore[reportUnknownMemberType]
            try:
                await pubsub.subscribe(self.channel)  # pyright: ignore[reportUnknownMemberType]
                async with asyncio.timeout(self._timeout * 5):
                    while True:  # confirmed: no notice published after this is missed
                        message = cast(
                            "dict[str, object] | None",
                            await pubsub.get_message(timeout=self._timeout),  # pyright: ignore[reportUnknownMemberType]
                        )
                        if message is not None and message.get("type") == "subscribe":
                            break
                await self._catch_up()
                self._synced.set()
                while True:
                    message = cast(
                        "dict[str, object] | None",
                        await pubsub.get_message(  # pyright: ignore[reportUnknownMemberType]
                            ignore_subscribe_messages=True, timeout=self._refresh
                        ),
                    )
                    if message is None or _announced(message) > self._current.version:
                        await self._catch_up()
            except _FAILURES as exc:
                async with self._lock:
                    self._down(exc)
            finally:
                try:
                    await pubsub.aclose()
                    await subscriber.aclose()
                except _FAILURES:
                    pass
            self._synced.set()
            await asyncio.sleep(self._retry)

    async def _catch_up(self) -> None:
        async with self._lock:
            await self._flush()
            await self._read()


def _announced(message: dict[str, object]) -> int:
    if message.get("type") != "message":
        return -1
    try:
        return int(str(message.get("data")))
    except ValueError:
        return 1 << 62  # not a version: re-read to be safe


def _client(url: str, connect_timeout: float, read_timeout: float | None) -> aioredis.Redis:
    return aioredis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
        url,
        decode_responses=True,
        socket_connect_timeout=connect_timeout,
        socket_timeout=read_timeout,
        retry=Retry(NoBackoff(), 1),
    )
